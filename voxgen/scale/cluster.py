"""Connecting to Ray: ``ray.address`` null (no Ray), ``local`` (a Ray instance started here),
``auto`` (the running cluster: ``ray start`` or ``RAY_ADDRESS``) or ``host:port`` (that cluster's
head). Unreachable clusters and requests larger than the cluster are one-line ConfigErrors."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from voxgen.errors import ConfigError, VoxgenError


def _check_reachable(address: str) -> None:
    """ConfigError unless a ``host:port`` address answers within 5 s."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray.address: '{address}' is not local, auto or host:port")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(f"ray.address: no Ray cluster answers at {address} ({err.strerror or err})") from None


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray connected to ``address`` (``local`` when None) for the block; a connection this call
    opened is closed after it (a Ray instance it started is stopped)."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or "local"
    if address not in ("local", "auto") and not address.startswith("ray://"):
        _check_reachable(address)
    if address == "auto" and not os.environ.get("RAY_ADDRESS") and not _running_cluster():
        raise ConfigError("ray.address: auto, but no Ray cluster runs here (start one: ray start --head)")
    try:
        if address == "local":  # a Ray instance of this command's own: its workers' warnings stay quiet
            quiet = {"env_vars": {"PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning"}}
            ray.init(include_dashboard=False, runtime_env=quiet)
        else:
            ray.init(address=address)
    except (ConnectionError, RuntimeError) as err:
        raise ConfigError(f"ray.address: cannot connect to Ray at {address} ({str(err).splitlines()[0]})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _running_cluster() -> bool:
    """Whether ``ray start`` left a cluster address for this machine (Ray's own record of it)."""
    from ray._private.services import find_bootstrap_address

    try:
        return bool(find_bootstrap_address(None))
    except Exception:  # Ray's record unreadable: let ray.init say what is wrong
        return True


def check_resources(cpus: float, gpus: float, what: str) -> None:
    """ConfigError naming ``what`` (the keys that asked) when the connected cluster has fewer
    than ``cpus`` CPUs or ``gpus`` GPUs in all."""
    import ray

    total = ray.cluster_resources()
    have_cpus, have_gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus > have_cpus or gpus > have_gpus:
        raise ConfigError(
            f"{what}: needs {cpus:g} CPUs and {gpus:g} GPUs; the Ray cluster has {have_cpus:g} CPUs and "
            f"{have_gpus:g} GPUs"
        )


def raise_cause(err: BaseException) -> None:
    """Re-raise the VoxgenError behind a Ray task or training failure as itself (one line)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        cause = getattr(err, "cause", None)
        if isinstance(err, VoxgenError) and type(err).__module__.startswith("voxgen"):
            raise type(err)(str(err).splitlines()[0]) from None
        err = cause or err.__cause__ or err.__context__
