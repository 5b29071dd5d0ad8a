"""Simulator throughput: single- and multi-particle events/s per core.

    python tools/bench_simulate.py --events 200 --workers 2

The baseline, measured in the same run, is the bare cost of drawing the primaries and their
CSDA ranges (no transport): the ratios say how many times that the full simulation costs.
Also prints the projected wall time of a 10,000-event single-particle set on ``--workers``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from voxgen.sim import argon
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import _draw_primary, simulate_dataset, simulate_event


def events_per_second(mode: str, n: int) -> tuple[float, float]:
    cfg = SimConfig(mode=mode)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    voxels = [len(simulate_event(cfg, rng)) for _ in range(n)]
    return n / (time.perf_counter() - t0), float(np.mean(voxels))


def baseline_per_second(n: int) -> float:
    cfg, rng = SimConfig(), np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(n):
        species, p = _draw_primary(cfg, rng)
        mass = argon.MASS[species]
        if mass > 0:
            argon.range_table(mass).range_of(argon.kinetic_from_momentum(p, mass))
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    base = baseline_per_second(args.events * 10)
    print(f"baseline (draw primary + CSDA lookup): {base:10.1f} /s per core")
    for mode in ("single", "multi"):
        rate, voxels = events_per_second(mode, args.events if mode == "single" else args.events // 4)
        print(
            f"{mode:<6} events: {rate:7.1f} events/s per core  ({voxels:.0f} voxels/event)  "
            f"cost {base / rate:.0f} x baseline"
        )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_dataset(SimConfig(), Path(tmp), n_events=args.events, seed=0, workers=args.workers, progress=False)
        rate = args.events / (time.perf_counter() - t0)
    print(
        f"dataset with {args.workers} workers (incl. writing h5): {rate:.1f} events/s -> "
        f"10,000 single-particle events in {10_000 / rate / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
