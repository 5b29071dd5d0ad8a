"""The run record written next to every command's outputs: resolved config + manifest.json."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import voxgen
from voxgen.io.atomic import write_text_atomic


def record_paths(out: Path, beside: bool = False) -> tuple[Path, Path]:
    """Where the config and manifest of an output go: inside a folder, or beside a file.

    ``beside`` puts them beside a folder too (``<name>.config.yaml``), for folders that
    must hold data files only (Parquet shard folders).
    """
    if beside or (out.suffix and not out.is_dir()):
        return out.with_name(f"{out.stem}.config.yaml"), out.with_name(f"{out.stem}.manifest.json")
    return out / "config.yaml", out / "manifest.json"


def write_run_record(
    out: Path,
    command: str,
    cfg: DictConfig,
    figures: dict[str, Any],
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    beside: bool = False,
) -> Path:
    """Write ``config.yaml`` (resolved) and ``manifest.json`` for one command's output ``out``.

    Returns the manifest path. ``figures`` are the headline numbers of the run.
    """
    config_path, manifest_path = record_paths(Path(out), beside)
    write_text_atomic(config_path, OmegaConf.to_yaml(cfg, resolve=True))
    manifest = {
        "command": command,
        "voxgen_version": voxgen.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "seed": cfg.get("seed"),
        "inputs": inputs or [],
        "outputs": outputs or [],
        "figures": figures,
        "argv": sys.argv[1:],
    }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest_path
