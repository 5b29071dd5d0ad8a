"""Benchmark the 2D evaluation: exact EMD vs Sinkhorn, and the full report at 1k and 10k images.

    python tools/bench_metrics.py --ssnet runs/ssnet2d --crops runs/ssnet2d/data/test_crops.npz

1. The same random pairs of real crops solved by POT's exact network simplex (``image_emd``)
   and by the debiased Sinkhorn divergence (``image_sinkhorn``, reg 1 px): time per pair, the
   time ratio, and their agreement (Pearson r, median relative difference).
2. ``evaluate_images`` + ``write_report`` with n = 1k and 10k images per set (candidate:
   blurred real crops), timed against the SSNet forward pass over the same images (the
   baseline: the work no metric can avoid). Crops are tiled with their flips and transposes
   when the file holds fewer than the 3n images a run needs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from voxgen.data.crops import CropSet
from voxgen.evaluate.degrade import DEGRADATIONS
from voxgen.evaluate.distances import image_emd, image_sinkhorn
from voxgen.evaluate.image_sets import evaluate_images, score_images
from voxgen.evaluate.report import write_report
from voxgen.runs import load_model


def symmetric_tiling(images: np.ndarray, n: int) -> np.ndarray:
    """``n`` images: the crops, then their flips and transposes (8 symmetries) as needed."""
    views = [images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]]
    views += [v.transpose(0, 2, 1) for v in views]
    tiled = np.concatenate(views)
    if len(tiled) < n:
        raise SystemExit(f"need {n} images; {len(images)} crops give at most {len(tiled)}")
    return np.ascontiguousarray(tiled[:n])


def bench_transport(images: np.ndarray, pairs: int, rng: np.random.Generator) -> None:
    i, j = rng.integers(0, len(images), (2, pairs))
    keep = i != j
    i, j = i[keep], j[keep]
    start = time.perf_counter()
    emd = np.array([image_emd(images[a], images[b]) for a, b in zip(i, j)])
    t_emd = (time.perf_counter() - start) / len(i)
    start = time.perf_counter()
    sink = np.array([image_sinkhorn(images[a], images[b]) for a, b in zip(i, j)])
    t_sink = (time.perf_counter() - start) / len(i)
    r = np.corrcoef(emd, sink)[0, 1]
    rel = np.median(np.abs(sink - emd) / np.maximum(emd, 1e-9))
    print(f"transport, {len(i)} pairs of real crops (median {np.median((images > 0).sum((1, 2))):.0f} charged pixels):")
    print(f"  exact EMD      {1e3 * t_emd:8.2f} ms/pair  (baseline, 1.00x)")
    print(f"  Sinkhorn reg 1 {1e3 * t_sink:8.2f} ms/pair  ({t_sink / t_emd:.1f}x the EMD time)")
    print(
        f"  agreement: Pearson r = {r:.4f}, median |S - W1| / W1 = {rel:.3f}, mean W1 {emd.mean():.2f} px, "
        f"mean S {sink.mean():.2f} px"
    )


def bench_report(model, images: np.ndarray, n: int, out: Path) -> None:
    reference = symmetric_tiling(images, 3 * n)
    candidate = DEGRADATIONS["gaussian_blur"](reference[2 * n :], 0.6, np.random.default_rng(0))
    reference = reference[: 2 * n]
    start = time.perf_counter()
    score_images(model, np.concatenate([reference, candidate]))
    t_ssnet = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate_images(model, reference, candidate, n=n, seed=0)
    write_report(out / f"report_{n}", result)
    t_report = time.perf_counter() - start
    print(f"full 2D report, n = {n} images per set (3n images through SSNet):")
    print(f"  SSNet forward over 3n images {t_ssnet:8.1f} s  (baseline, 1.00x)")
    print(f"  evaluate_images + report     {t_report:8.1f} s  ({t_report / t_ssnet:.2f}x)")
    print(
        f"  FID {result['candidate']['fid']:.2f} (floor {result['floor']['fid']:.2f}), "
        f"C2ST {result['candidate']['c2st_accuracy']:.3f} (floor {result['floor']['c2st_accuracy']:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ssnet", required=True, help="SSNet2D run folder (voxgen train conf=ssnet2d)")
    parser.add_argument("--crops", nargs="+", required=True, help="crop-set .npz files of real crops")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = np.concatenate([CropSet.load(Path(p)).images for p in args.crops])
    model, _ = load_model(args.ssnet, "ssnet2d", "cpu")
    bench_transport(images, args.pairs, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench_report(model, images, n, Path(tmp))


if __name__ == "__main__":
    main()
