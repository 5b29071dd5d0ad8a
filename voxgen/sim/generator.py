"""Event generation: single-particle and multi-particle events, datasets written as v2 shards.

Deterministic for a seed: event i of a dataset uses ``SeedSequence(seed).spawn(n)[i]``, so
it is the same whatever the number of worker processes.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from voxgen.events import Event
from voxgen.io.pilarnet import write_events
from voxgen.sim.config import SimConfig
from voxgen.sim.transport import Transport, TransportParams, isotropic
from voxgen.sim.voxelize import segment_points, voxelize

MAX_DRAWS = 100


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
    raise RuntimeError(f"no event with {cfg.min_voxels} voxels in {MAX_DRAWS} draws; check sim settings")


def _simulate_chunk(args: tuple[SimConfig, list[np.random.SeedSequence], str]) -> list[Event]:
    cfg, seeds, mode = args
    return [simulate_event(cfg, np.random.default_rng(s), mode) for s in seeds]


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
) -> list[Path]:
    """Simulate ``n_events`` into ``out_dir/{name}_{mode}_{shard:03d}.h5``; returns the shards.

    Each shard is written atomically; stale shards of the same name from an earlier, larger run
    are removed once the new ones exist.
    """
    out_dir = Path(out_dir)
    seeds = np.random.SeedSequence(seed).spawn(n_events)
    tasks = [(cfg, seeds[i : i + chunk], cfg.mode) for i in range(0, n_events, chunk)]
    shards: list[Path] = []
    pending: list[Event] = []
    bar = tqdm(total=n_events, desc=f"simulate {name}", unit="ev", disable=not progress)
    pool = ProcessPoolExecutor(workers) if workers > 0 else None
    try:
        results = pool.map(_simulate_chunk, tasks) if pool else map(_simulate_chunk, tasks)
        for events in results:
            pending.extend(events)
            bar.update(len(events))
            while len(pending) >= events_per_shard or (
                pending and len(shards) * events_per_shard + len(pending) == n_events
            ):
                batch, pending = pending[:events_per_shard], pending[events_per_shard:]
                shards.append(write_events(out_dir / f"{name}_{cfg.mode}_{len(shards):03d}.h5", batch))
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
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
            )
    return shards
