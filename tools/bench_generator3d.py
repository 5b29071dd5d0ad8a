"""3D generator costs: time and peak memory per event against the crop size (128^3 to 768^3), and
generated events/s against the built-in simulator's events/s, both measured in the same run.

    python tools/bench_generator3d.py --events 8 --run runs/flowmatch3d

Scale: multi-particle events of the built-in simulator (one vertex, 2-5 primaries, in the full
768^3 volume), cropped to 128^3, 256^3, 512^3 and 768^3 around their energy centre. For each size a
cascade of that grid (``conf/model/flowmatch3d.yaml`` with ``grid``; untrained weights, since the
cost and not the quality is measured) solves every level with the run's default sampler over the
parents the event itself has at that level: the children a perfect model would make, so the cost
is that of generating this very event. Each size runs in a fresh process, so that the peak
resident memory it reports is its own (above the process's resident memory before the batch
of ``--events`` events, generated together as ``voxgen sample`` does). Ratios against 128^3,
with the voxels per event beside them: the cost should follow the occupied voxels, not the
volume, which grows 216x from 128^3 to 768^3.

Speed (with ``--run``, a trained flowmatch3d run): single-particle events sampled with the run's
requests by Euler at 4, 10, 20 and 40 network evaluations per level, against the simulator's
single-particle events on one core. Quality against evaluations: ``tools/study_generators3d.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch
from omegaconf import OmegaConf

from voxgen.config import compose_config
from voxgen.events import centred_crop, collate_sparse
from voxgen.runs import model_spec
from voxgen.sample import generate_events
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event

GRIDS = (128, 256, 512, 768)


def _status_mib(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS: resident now, VmHWM: its peak) in MiB."""
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith(key + ":"))
    return int(kib) / 1024


def _reset_peak() -> None:
    """Start VmHWM afresh from the resident memory now (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def scale_point(grid: int, n_events: int, seed: int) -> dict:
    """Seconds per event, network evaluations per event and peak memory of generating
    ``n_events`` multi-particle events in one batch on a ``grid``^3 crop with their own
    occupancy at every level."""
    torch.manual_seed(seed)
    cfg = compose_config("flowmatch3d", [f"model.grid={grid}"])
    model = model_spec("flowmatch3d").build(cfg.model).eval()
    sampler = model.process.sampler_settings(OmegaConf.to_container(cfg.sampler))
    rng = np.random.default_rng(seed)
    events = [centred_crop(simulate_event(SimConfig(mode="multi"), rng), grid) for _ in range(n_events)]
    pid, momentum = torch.full((n_events,), 2), torch.full((n_events,), 500.0)
    gen = torch.Generator().manual_seed(seed)
    coords, feats = (torch.from_numpy(a) for a in collate_sparse(events))
    energy = feats[:, 0]
    with torch.no_grad():
        warm = model.level_targets(coords[coords[:, 0] == 0], energy[coords[:, 0] == 0], 1, 0)
        model.solve_level(warm, pid[:1], momentum[:1], sampler, gen)  # first calls build kernels and caches
        _reset_peak()
        before, start, nfe = _status_mib("VmRSS"), time.perf_counter(), 0
        for level in reversed(range(model.levels)):
            batch = model.level_targets(coords, energy, n_events, level)
            nfe += model.solve_level(batch, pid, momentum, sampler, gen)[1]
        seconds = (time.perf_counter() - start) / n_events
    voxels = [len(e) for e in events]
    return {
        "grid": grid,
        "levels": model.levels,
        "voxels": float(np.mean(voxels)),
        "seconds": seconds,
        "nfe": nfe,
        "peak_mib": _status_mib("VmHWM") - before,
    }


def scale_table(n_events: int, seed: int) -> None:
    rows = []
    for grid in GRIDS:
        command = [sys.executable, __file__, "--point", str(grid), "--events", str(n_events), "--seed", str(seed)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"\nscale: {n_events} multi-particle events per size, occupancy of the events themselves")
    print("| crop | levels | voxels/event | s/event | peak MiB | time | memory | voxels | volume |  (ratios to 128^3)")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['grid']}^3 | {r['levels']} | {r['voxels']:.0f} | {r['seconds']:.3f} | {r['peak_mib']:.0f} | "
            f"{r['seconds'] / base['seconds']:.2f}x | {r['peak_mib'] / max(base['peak_mib'], 1e-9):.2f}x | "
            f"{r['voxels'] / base['voxels']:.2f}x | {(r['grid'] / base['grid']) ** 3:.0f}x |"
        )


def speed_table(run: str, n_events: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(n_events):
        simulate_event(SimConfig(), rng)
    simulated = n_events / (time.perf_counter() - start)
    print(f"\nspeed: simulator {simulated:.1f} single-particle events/s on one core (baseline)")
    print(f"| sampler | NFE per event | events/s ({torch.get_num_threads()} threads) | / simulator |")
    print("|---|---|---|---|")
    for steps in (4, 10, 20, 40):
        euler = {"method": "euler", "steps": steps}
        made = generate_events(run, n_events, seed=seed, device="cpu", sampler=euler, progress=False)
        rate = n_events / made.seconds
        print(f"| euler {steps} steps per level | {made.nfe} | {rate:.1f} | {rate / simulated:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8, help="events per crop size (speed: x10)")
    parser.add_argument("--run", default=None, help="a trained flowmatch3d run for the speed table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--point", type=int, default=None, help=argparse.SUPPRESS)  # one size, in a child process
    args = parser.parse_args()
    if args.point is not None:
        print(json.dumps(scale_point(args.point, args.events, args.seed)))
        return
    scale_table(args.events, args.seed)
    if args.run:
        speed_table(args.run, args.events * 10, args.seed)


if __name__ == "__main__":
    main()
