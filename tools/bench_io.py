"""I/O throughput: voxgen's PILArNet-M reader against raw h5py reads of the same arrays,
and Parquet write throughput against h5 write of the same events.

    python tools/bench_io.py --events 500 --mode multi

Prints ratios against baselines measured in the same run (aim: reader/raw >= 0.8).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from voxgen.io.parquet import write_parquet
from voxgen.io.pilarnet import PilarnetReader, write_events
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event


def best_of(repeats: int, fn) -> float:
    """Shortest wall time (s) of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--mode", default="multi", choices=["single", "multi"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    cfg = SimConfig(mode=args.mode)
    events = [simulate_event(cfg, rng, mode=args.mode) for _ in range(args.events)]
    n_points = sum(len(e) for e in events)
    print(f"{args.events} {args.mode}-particle events, {n_points / args.events:.0f} voxels/event")

    with tempfile.TemporaryDirectory() as tmp:
        h5_path = Path(tmp) / "bench.h5"
        t_h5_write = best_of(args.repeats, lambda: write_events(h5_path, events))
        t_pq_write = best_of(args.repeats, lambda: write_parquet(events, Path(tmp) / "bench.parquet"))
        pq_mb = (Path(tmp) / "bench.parquet").stat().st_size / 1e6

        def raw_read():
            with h5py.File(h5_path, "r") as f:
                datasets = [f[name] for name in ("point", "cluster", "cluster_extra", "particle")]
                for i in range(len(events)):
                    for d in datasets:
                        d[i]

        def voxgen_read():
            reader = PilarnetReader(h5_path)
            for i in range(len(reader)):
                reader[i]
            reader.close()

        t_raw = best_of(args.repeats, raw_read)
        t_vox = best_of(args.repeats, voxgen_read)

    n = args.events
    print(f"raw h5py read      : {n / t_raw:9.1f} events/s (baseline)")
    print(f"voxgen reader      : {n / t_vox:9.1f} events/s  ratio {t_raw / t_vox:.2f} x raw")
    print(f"h5 (v2) write      : {n / t_h5_write:9.1f} events/s (baseline)")
    print(
        f"parquet write      : {n / t_pq_write:9.1f} events/s  ratio {t_h5_write / t_pq_write:.2f} x h5 write, "
        f"{pq_mb / t_pq_write:.1f} MB/s ({pq_mb:.2f} MB)"
    )


if __name__ == "__main__":
    main()
