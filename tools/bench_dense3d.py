"""The dense 3D convolution stacks of the 3D generator: training-step time against width and
memory layout.

    python tools/bench_dense3d.py                  # latent U-Net widths 48 (baseline) and 32
    python tools/bench_dense3d.py --bases 48 32 24 --repeat 8

Latent generator: one flow-matching training step (forward, backward, Adam) of
``LatentGenerator3D`` on 16 latents of 17 x 16^3 (the CPU preset's shape) for each U-Net
``base`` width, with its 3D convolutions in channels-last (NDHWC, voxgen's layout) and in the
default NCDHW layout (the baseline). Autoencoder: forward + backward of the decoder's dense stack on 8 latents
for each ``context_width``, in both layouts. Cases are interleaved, the first pass of each is
dropped, and every figure is a ratio against the first case of its table (the first width
given, in NCDHW), measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from voxgen.models.latent3d import LatentGenerator3D
from voxgen.models.sparse_ae import SparseAutoencoder3D

LAYOUTS = {"NCDHW": torch.contiguous_format, "NDHWC": torch.channels_last_3d}


def _median_times(cases: dict, run, repeat: int) -> dict:
    times = {key: [] for key in cases}
    for _ in range(repeat + 1):
        for key, case in cases.items():
            start = time.perf_counter()
            run(*case)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t[1:]) for key, t in times.items()}


def _print(title: str, medians: dict) -> None:
    base = next(iter(medians.values()))
    print(f"\n{title}\nsetting | layout | s / step | ratio")
    for (setting, layout), s in medians.items():
        print(f"{setting} | {layout} | {s:.3f} | {s / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, nargs="+", default=[48, 32])
    parser.add_argument("--context-widths", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    z = torch.randn(16, 17, 16, 16, 16)
    z[:, 0] = torch.where(torch.rand(16, 16, 16, 16) < 0.013, 1.0, -1.0)
    pid, momentum = torch.randint(0, 5, (16,)), 100 + 800 * torch.rand(16)

    generators = {}
    for base in args.bases:
        for layout, fmt in LAYOUTS.items():
            model = LatentGenerator3D("flow", 17, 16, base=base, mults=(1, 2), blocks=1, patch=2)
            model.net.to(memory_format=fmt)
            generators[(f"U-Net base {base}", layout)] = (model, torch.optim.Adam(model.parameters(), lr=1e-4), fmt)

    def generator_step(model, opt, fmt):
        opt.zero_grad()
        model.loss((z.contiguous(memory_format=fmt), pid, momentum))["loss"].backward()
        opt.step()

    stacks = {}
    for width in args.context_widths:
        for layout, fmt in LAYOUTS.items():
            dense = SparseAutoencoder3D("spconv", feature_channels=16, context_width=width).dense.to(memory_format=fmt)
            stacks[(f"context_width {width}", layout)] = (dense, z[:8].contiguous(memory_format=fmt))

    print(f"{torch.get_num_threads()} threads, median of {args.repeat} passes (first dropped)")
    _print("latent generator, training step of 16 latents", _median_times(generators, generator_step, args.repeat))
    _print(
        "autoencoder's dense stack, forward + backward of 8 latents",
        _median_times(stacks, lambda dense, x: dense(x).sum().backward(), args.repeat),
    )


if __name__ == "__main__":
    main()
