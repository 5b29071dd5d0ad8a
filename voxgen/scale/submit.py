"""``voxgen submit [ray.dashboard=URL] [ray.working_dir=DIR] -- voxgen <command> ...``: a voxgen
command line run as a Ray job on a cluster (Ray's job API, as ``ray job submit``), its log
streamed here; the exit code is 0 when the job succeeds, 1 otherwise.

voxgen runs from its installation on the cluster's nodes, and the job's paths (data, run folders)
name shared storage, so nothing is uploaded by default; ``ray.working_dir`` uploads a folder
(as ``--working-dir``) for jobs that need local files."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from voxgen.errors import ConfigError

USAGE = (
    "usage: voxgen submit [ray.dashboard=http://HEAD:8265] [ray.working_dir=DIR] -- voxgen <command> [key=value ...]"
)
# never uploaded with the working directory: environments, outputs, data and history
EXCLUDES = [".venv", ".git", "runs", "data", "__pycache__", "*.h5", "*.parquet", "*.pt"]


def submit(options: list[str], command: list[str]) -> int:
    """Submit ``command`` (``voxgen ...``) with the ``ray.dashboard`` / ``ray.working_dir`` ``options``."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    settings = {"ray.dashboard": None, "ray.working_dir": None}
    for option in options:
        key, sep, value = option.partition("=")
        if key not in settings or not sep:
            raise ConfigError(f"unknown config key '{key}' (voxgen submit takes {', '.join(settings)})")
        settings[key] = value
    if not command or command[0] != "voxgen":
        raise ConfigError(f"submit: after -- comes a voxgen command line (voxgen train ...), not {command[:1]}")
    runtime_env = None
    if settings["ray.working_dir"]:
        working_dir = Path(settings["ray.working_dir"])
        if not working_dir.is_dir():
            raise ConfigError(f"ray.working_dir: {working_dir} is not a folder")
        runtime_env = {"working_dir": str(working_dir), "excludes": EXCLUDES}
    try:
        client = JobSubmissionClient(settings["ray.dashboard"])
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = settings["ray.dashboard"] or "RAY_ADDRESS / http://127.0.0.1:8265"
        raise ConfigError(f"ray.dashboard: no Ray job server at {where} ({str(err).splitlines()[0]})") from None
    job = client.submit_job(
        entrypoint=shlex.join(command),
        runtime_env=runtime_env,
    )
    print(f"submitted {job}: {shlex.join(command)}", file=sys.stderr)

    async def stream() -> None:
        async for lines in client.tail_job_logs(job):
            print(lines, end="", flush=True)

    asyncio.run(stream())
    status = client.get_job_status(job)
    print(f"job {job}: {status.value}", file=sys.stderr)
    return 0 if status == JobStatus.SUCCEEDED else 1
