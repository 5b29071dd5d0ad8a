"""Event generation: single-particle and multi-particle events, datasets written as v2 shards.

Deterministic for a seed: event i of a dataset uses ``SeedSequence(seed).spawn(n)[i]``, so
it is the same whatever the number of worker processes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from voxgen.errors import ConfigError, VoxgenError
from voxgen.events import Event
from voxgen.io.pilarnet import write_events
from voxgen.sim.config import SimConfig
from voxgen.sim.transport import Transport, TransportParams, isotropic
from voxgen.sim.voxelize import segment_points, voxelize

MAX_DRAWS = 100
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _transport_params(cfg: SimConfig) -> TransportParams:
    return TransportParams(
        step_cm=cfg.step_mm / 10.0,
        delta_threshold_mev=cfg.delta_threshold_mev,
        muon_capture_fraction=cfg.muon_capture_fraction,
        brems_cut_mev=cfg.brems_cut_mev,
        lowe_threshold_mev=cfg.lowe_threshold_mev,
        tracking_cut_mev=cfg.tracking_cut_mev,
    )


def _draw_primary(cfg: SimConfig, rng: np.random.Generator) -> tuple[str, float]:
    species = cfg.species[rng.integers(len(cfg.species))]
    lo, hi = cfg.momentum_mev[species]
    return species, float(rng.uniform(lo, hi))


def contained_offset(points: np.ndarray, energy: np.ndarray, size_cm: float, rng: np.random.Generator) -> np.ndarray:
    """Shift (3,) cm placing the deposits in [0, size_cm)^3 with the most energy contained.

    Per axis: a trajectory that fits is placed at a random position inside; a longer one gets
    the window of length size_cm holding the most energy (the box choice of
    Lutkus et al., arXiv:2204.02496, A.3).
    """
    offset = np.zeros(3)
    margin = 1e-3
    for axis in range(3):
        x = points[:, axis]
        lo, hi = x.min(), x.max()
        if hi - lo < size_cm - 2 * margin:
            offset[axis] = rng.uniform(margin, size_cm - margin - (hi - lo)) - lo
            continue
        order = np.argsort(x)
        xs, cum = x[order], np.concatenate([[0.0], np.cumsum(energy[order])])
        stop = np.searchsorted(xs, xs + size_cm - 2 * margin, side="right")
        best = int(np.argmax(cum[stop] - cum[np.arange(len(xs))]))
        offset[axis] = margin - xs[best]
    return offset


def _simulate_once(cfg: SimConfig, rng: np.random.Generator, mode: str) -> Event:
    transport = Transport(rng, _transport_params(cfg))
    size_cm = cfg.grid * cfg.voxel_mm / 10.0
    origin = np.zeros(3)
    if mode == "single":
        species, momentum = _draw_primary(cfg, rng)
        transport.add_primary(species, momentum, origin, isotropic(rng))
    else:
        lo, hi = cfg.n_primaries
        for _ in range(rng.integers(lo, hi + 1)):
            species, momentum = _draw_primary(cfg, rng)
            transport.add_primary(species, momentum, origin, isotropic(rng))
    transport.run()
    if not transport.energy:
        return Event(coords=np.zeros((0, 3)), energy=np.zeros(0), grid=cfg.grid)
    if mode == "single":
        pts = segment_points(transport, cfg.voxel_mm / 20.0)
        offset = contained_offset(pts["points"], pts["energy"], size_cm, rng)
    else:
        offset = rng.uniform(0.25 * size_cm, 0.75 * size_cm, size=3)
    return voxelize(transport, offset, cfg)


def simulate_event(cfg: SimConfig, rng: np.random.Generator, mode: str | None = None) -> Event:
    """One event (``mode`` single | multi, default ``cfg.mode``) with at least ``cfg.min_voxels``."""
    mode = cfg.mode if mode is None else mode
    for _ in range(MAX_DRAWS):
        event = _simulate_once(cfg, rng, mode)
        if len(event) >= cfg.min_voxels:
            return event
    raise ConfigError(f"sim.min_voxels: no event with {cfg.min_voxels} voxels in {MAX_DRAWS} draws; lower it")


def _simulate_chunk(args: tuple[SimConfig, list[np.random.SeedSequence], str]) -> list[Event]:
    cfg, seeds, mode = args
    return [simulate_event(cfg, np.random.default_rng(s), mode) for s in seeds]


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker ends when ``parent_pid`` does, however that ends.

    On Linux the kernel SIGKILLs the worker when its parent exits (prctl PR_SET_PDEATHSIG):
    immediate, whatever the worker is doing (blocked on its task pipe, or deep in numpy), no
    thread or polling; the check of the parent pid afterwards covers a parent that died before
    the prctl. Elsewhere a daemon thread polls ``os.getppid()`` once a second. The worker
    ignores Ctrl-C and SIGTERM: the parent handles them and stops its workers (workers write
    no files, so nothing is left half-written).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes that never outlive this one (``_die_with_parent``).

    Started with ``spawn``: the same on every platform, safe beside threads (the progress bar's
    monitor), and each worker's parent is this process (a fork server would stand between).
    """
    return ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_die_with_parent, initargs=(os.getpid(),)
    )


def _stop_pool(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Shut the pool down; unless the work ``finished``, kill the workers at once rather than
    wait for the chunks they are on (``kill_workers`` is public from Python 3.14)."""
    if not finished:
        if hasattr(pool, "kill_workers"):
            pool.kill_workers()
        else:
            for process in list(pool._processes.values()):
                process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def shard_sizes(n_events: int, events_per_shard: int) -> list[int]:
    """Events in each shard of a dataset: full shards, then the remainder."""
    full, rest = divmod(n_events, events_per_shard)
    return [events_per_shard] * full + ([rest] if rest else [])


def is_complete_shard(path: Path, n_events: int) -> bool:
    """Whether ``path`` is a readable PILArNet-M shard (either layout) of exactly ``n_events`` events."""
    try:
        with h5py.File(path, "r") as f:
            if "point" not in f or any(getattr(f[name], "shape", None) != (n_events,) for name in f):
                return False
            f["point"][n_events - 1]  # the data are there, not only the header
            return True
    except (OSError, KeyError, ValueError):
        return False


def _chunks(first: int, n_events: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) event ranges of at most ``chunk`` covering ``first .. first + n_events``."""
    stop = first + n_events
    return [(i, min(i + chunk, stop)) for i in range(first, stop, chunk)]


def simulate_dataset(
    cfg: SimConfig,
    out_dir: Path,
    n_events: int,
    seed: int,
    workers: int = 0,
    events_per_shard: int = 1000,
    progress: bool = True,
    name: str = "sim",
    chunk: int = 8,
    resume: bool = False,
    layout: str = "v2",
) -> list[Path]:
    """Simulate ``n_events`` into ``out_dir/{name}_{mode}_{shard:03d}.h5`` (PILArNet-M ``layout``
    v1 or v2); returns the shards.

    Each shard is written atomically. With ``resume`` the complete shards already there are
    kept (the caller vouches they come from the same settings: shards are deterministic) and
    only the others are simulated. Stale shards of the same name from an earlier, larger run
    and temporary files of a killed one are removed.
    """
    out_dir = Path(out_dir)
    sizes = shard_sizes(n_events, events_per_shard)
    shards = [out_dir / f"{name}_{cfg.mode}_{k:03d}.h5" for k in range(len(sizes))]
    todo = [k for k in range(len(sizes)) if not (resume and is_complete_shard(shards[k], sizes[k]))]
    if len(todo) < len(sizes):
        print(f"resuming: {len(sizes) - len(todo)} of {len(sizes)} shards of {name} already done")
    for stale in out_dir.glob(f".{name}_{cfg.mode}_*.h5.*.tmp"):
        stale.unlink()
    seeds = np.random.SeedSequence(seed).spawn(n_events)
    tasks = [(cfg, seeds[i:j], cfg.mode) for k in todo for i, j in _chunks(k * events_per_shard, sizes[k], chunk)]
    pool = _start_pool(min(workers, len(tasks))) if workers > 0 and tasks else None
    bar = tqdm(total=sum(sizes[k] for k in todo), desc=f"simulate {name}", unit="ev", disable=not progress)
    pending: list[Event] = []
    finished = False
    try:
        if pool:  # futures in order, never cancelled here: Executor.map cancels them when interrupted,
            # which races the pool's own failing of them once its workers are killed (Python < 3.12)
            futures = [pool.submit(_simulate_chunk, task) for task in tasks]
            results = (f.result() for f in futures)
        else:
            results = map(_simulate_chunk, tasks)
        for events in results:
            pending.extend(events)
            bar.update(len(events))
            if len(pending) == sizes[todo[0]]:
                write_events(shards[todo.pop(0)], pending, layout=layout)
                pending = []
        finished = True
    except BrokenProcessPool:
        raise VoxgenError(f"{out_dir}: a simulation worker died (killed? out of memory?); rerun to resume") from None
    finally:
        bar.close()
        if pool:
            _stop_pool(pool, finished)
    for stale in out_dir.glob(f"{name}_{cfg.mode}_*.h5"):
        if stale not in shards:
            stale.unlink()
    return shards


def simulate_splits(
    cfg: SimConfig,
    root: Path,
    splits: dict[str, int],
    seed: int,
    workers: int = 0,
    events_per_shard: int = 1000,
    progress: bool = True,
    resume: bool = False,
    layout: str = "v2",
) -> list[Path]:
    """``simulate_dataset`` for each split into ``root/<split>/``; split i uses the seed
    ``SeedSequence([seed, i])`` so splits are independent. Splits of 0 events are skipped."""
    shards: list[Path] = []
    for i, (split, n_events) in enumerate(splits.items()):
        if n_events > 0:
            split_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
            shards += simulate_dataset(
                cfg,
                Path(root) / split,
                n_events=n_events,
                seed=split_seed,
                workers=workers,
                events_per_shard=events_per_shard,
                progress=progress,
                name=split,
                resume=resume,
                layout=layout,
            )
    return shards
