"""Sparse against dense 3D convolution, and spconv against MinkowskiEngine, on simulated events.

    python tools/bench_sparse.py                      # 128^3 and 256^3, one multi-particle event
    python tools/bench_sparse.py --sizes 128 --events 4 --repeat 5

One forward + backward pass of the same residual U-Net (``voxgen.nn.sparse.unet.SparseUNet``
widths; a dense ``Conv3d`` twin with the same layers) on the same events, voxelised into a
``size``^3 grid. Figures are ratios against the dense network measured in the same run (time,
peak memory). Each case runs in its own process, so peak resident memory is its own (on CUDA:
``torch.cuda.max_memory_allocated``). A dense case that does not fit in ``--max-dense-gb``
(estimated from the activations) is skipped, not run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxgen.events import centred_crop, collate_sparse
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event


class DenseResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
            nn.ReLU(),
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
        )
        self.shortcut = nn.Conv3d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class DenseUNet(nn.Module):
    """The dense twin of ``SparseUNet``: the same layers as Conv3d on the full grid."""

    def __init__(self, c_in: int, c_out: int, widths: tuple[int, ...], blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(c_in, widths[0], 3, padding=1, bias=False), nn.BatchNorm3d(widths[0]), nn.ReLU()
        )
        self.encoder, self.down, self.up, self.decoder = (nn.ModuleList() for _ in range(4))
        for w, w_next in zip(widths[:-1], widths[1:]):
            self.encoder.append(nn.Sequential(*[DenseResBlock(w, w) for _ in range(blocks)]))
            self.down.append(nn.Sequential(nn.Conv3d(w, w_next, 2, 2, bias=False), nn.BatchNorm3d(w_next), nn.ReLU()))
            self.up.append(nn.Sequential(nn.ConvTranspose3d(w_next, w, 2, 2, bias=False), nn.BatchNorm3d(w), nn.ReLU()))
            self.decoder.append(
                nn.Sequential(DenseResBlock(2 * w, w), *[DenseResBlock(w, w) for _ in range(blocks - 1)])
            )
        self.bottleneck = nn.Sequential(*[DenseResBlock(widths[-1], widths[-1]) for _ in range(blocks)])
        self.head = nn.Conv3d(widths[0], c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for encode, down in zip(self.encoder, self.down):
            x = encode(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for level in reversed(range(len(skips))):
            x = self.decoder[level](torch.cat([self.up[level](x), skips[level]], dim=1))
        return self.head(x)


def simulated_batch(size: int, events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(coords (N, 4), energy feats (N, 1)): ``events`` multi-particle events simulated in the full
    768^3 detector grid, each cropped to the size^3 cube around its energy centre."""
    rng = np.random.default_rng(seed)
    cfg = SimConfig(mode="multi")
    return collate_sparse([centred_crop(simulate_event(cfg, rng), size) for _ in range(events)])


class PeakRSS:
    """Peak growth (bytes) of this process's resident memory while the block runs: Linux's
    high-water mark (VmHWM), reset on entry through /proc/self/clear_refs. A CPU stand-in for
    ``torch.cuda.max_memory_allocated`` that needs no polling thread to disturb the timing."""

    def __enter__(self) -> PeakRSS:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.growth = self._status("VmHWM") - self.base

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as fh:
            line = next(line for line in fh if line.startswith(key + ":"))
        return int(line.split()[1]) * 1024


def run_case(
    kind: str,
    size: int,
    coords: np.ndarray,
    feats: np.ndarray,
    events: int,
    widths: tuple[int, ...],
    repeat: int,
    device: str,
    queue,
) -> None:
    """Time forward+backward of one case; put (seconds per pass, peak bytes) on ``queue``."""
    torch.manual_seed(0)
    dev = torch.device(device)
    c = torch.from_numpy(coords).to(dev)
    f = torch.from_numpy(np.log1p(feats)).to(dev)
    if kind == "dense":
        net = DenseUNet(1, 5, widths).to(dev)
        dense = torch.zeros(events, 1, size, size, size, device=dev)
        dense[c[:, 0].long(), 0, c[:, 1].long(), c[:, 2].long(), c[:, 3].long()] = f[:, 0]

        def step():
            net(dense).square().mean().backward()
    else:
        from voxgen.nn.sparse import get_backend
        from voxgen.nn.sparse.unet import SparseUNet

        backend = get_backend(kind)
        net = SparseUNet(backend, 1, 5, widths).to(dev)

        def step():
            out, _ = net(backend.tensor(f, c, (size, size, size), events))
            backend.feats(out).square().mean().backward()

    step()  # warm-up: kernel maps, allocator
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    with PeakRSS() as rss:
        for _ in range(repeat):
            net.zero_grad(set_to_none=True)
            t = time.perf_counter()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else rss.growth
    queue.put((float(np.median(times)), int(peak)))


def measure(kind: str, *args) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_case, args=(kind, *args, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{kind} case failed (exit {proc.exitcode})")
    return queue.get()


def dense_bytes(size: int, events: int, widths: tuple[int, ...]) -> float:
    """Rough activation memory of the dense U-Net's pass: about 12 tensors of each level's width."""
    return sum(12 * events * (size >> level) ** 3 * w * 4 for level, w in enumerate(widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--backends", nargs="+", default=["spconv", "minkowski"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-dense-gb", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    widths = tuple(args.widths)
    from voxgen.errors import ConfigError
    from voxgen.nn.sparse import get_backend

    backends = []
    for name in args.backends:
        try:
            get_backend(name)
            backends.append(name)
        except ConfigError as err:
            print(f"skipping {name}: {err}")
    rows = []
    for size in args.sizes:
        coords, feats = simulated_batch(size, args.events, args.seed)
        common = (size, coords, feats, args.events, widths, args.repeat, args.device)
        occupancy = len(coords) / (args.events * size**3)
        print(f"{size}^3: {len(coords)} voxels in {args.events} event(s), occupancy {occupancy:.2e}", flush=True)
        if dense_bytes(size, args.events, widths) > args.max_dense_gb * 2**30:
            dense = None
            print(f"  dense: skipped (needs ~{dense_bytes(size, args.events, widths) / 2**30:.0f} GB)")
        else:
            dense = measure("dense", *common)
            print(f"  dense    {dense[0]:8.3f} s/pass  peak {dense[1] / 2**20:8.1f} MiB", flush=True)
        row = {"size": size, "voxels": len(coords), "dense": dense}
        for name in backends:
            t, mem = measure(name, *common)
            ratio = (
                f"  dense/{name}: time x{dense[0] / t:.0f}, memory x{dense[1] / max(mem, 2**20):.0f}" if dense else ""
            )
            print(f"  {name:9s}{t:8.3f} s/pass  peak {mem / 2**20:8.1f} MiB{ratio}", flush=True)
            row[name] = (t, mem)
        if "spconv" in row and "minkowski" in row:
            print(
                f"  spconv/minkowski: time x{row['spconv'][0] / row['minkowski'][0]:.2f}, "
                f"memory x{max(row['spconv'][1], 2**20) / max(row['minkowski'][1], 2**20):.2f} (1 MiB floor)"
            )
        rows.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": args.device, "widths": widths, "events": args.events, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
