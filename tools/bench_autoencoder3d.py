"""The 3D autoencoder's training step against the width of its decoder's dense stack.

    python tools/bench_autoencoder3d.py                       # widths 64 (the baseline), 32, 16
    python tools/bench_autoencoder3d.py --widths 64 32 --batch 8 --repeat 5

One forward + backward pass of ``SparseAutoencoder3D.loss`` (the CPU preset's layout: widths
16-32-64-64, 16 features, 128^3 crops) on the same batch of built-in single-particle events for
each ``context_width``; the dense stack alone is timed too. The cases are interleaved, the first
pass of each dropped, and the figures are ratios against the first width, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from voxgen.data.batches import sparse_batch
from voxgen.events import centred_crop
from voxgen.models.sparse_ae import SparseAutoencoder3D
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", default="spconv")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    config = SimConfig()
    events = [centred_crop(simulate_event(config, rng), 128) for _ in range(args.batch)]
    coords, energy, labels, n = sparse_batch(events)
    batch = (coords.to(args.device), energy.to(args.device), labels.to(args.device), n)
    torch.manual_seed(0)
    models = {
        w: SparseAutoencoder3D(args.backend, widths=(16, 32, 64, 64), feature_channels=16, context_width=w).to(
            args.device
        )
        for w in args.widths
    }
    step, dense = {w: [] for w in models}, {w: [] for w in models}
    z = models[args.widths[0]].encode(*batch[:2], n).detach()
    for _ in range(args.repeat + 1):
        for w, model in models.items():
            start = time.perf_counter()
            model.loss(batch)["loss"].backward()
            sync(args.device)
            step[w].append(time.perf_counter() - start)
            start = time.perf_counter()
            model.dense(z).sum().backward()
            sync(args.device)
            dense[w].append(time.perf_counter() - start)
    base = args.widths[0]
    print(
        f"{args.batch} events of {len(coords) / args.batch:.0f} voxels, {args.backend} on {args.device}, "
        f"median of {args.repeat} passes (first dropped)"
    )
    print("context_width | s / training step | ratio | dense stack s | share of the step")
    for w in models:
        s, d = statistics.median(step[w][1:]), statistics.median(dense[w][1:])
        print(f"{w} | {s:.3f} | {s / statistics.median(step[base][1:]):.2f} | {d:.3f} | {d / s:.0%}")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
