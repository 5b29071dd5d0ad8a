"""The 2D generator recipes as jobs: the training stage (``voxgen.train.generators2d``), then
``cfg.preview.n`` samples of the just-trained run beside held-out crops of the same requests
(particle and momentum) in ``<out>/preview.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from voxgen.data.crops import CropSet, crop_sets
from voxgen.generative.conditioning import PARTICLES
from voxgen.runs import run_config
from voxgen.sample import generate
from voxgen.train import generators2d
from voxgen.train.loop import MetricsCallback, write_metrics
from voxgen.viz.display import crop_comparison

PARTICLE_NAMES = {pid: name for name, pid in PARTICLES.items()}


def held_out_crops(cfg: DictConfig, out: Path) -> CropSet:
    """The held-out (test) crops of the run's data: its VQ-VAE's (``cfg.vqvae``) for a PixelCNN
    prior, else its own, cached in the run's ``data`` folder."""
    if cfg.get("vqvae") is not None:
        vq_run, vq_cfg = run_config(cfg.vqvae)
        return crop_sets(vq_cfg.data, ("test",), vq_run / "data", progress=cfg.trainer.progress)["test"]
    return crop_sets(cfg.data, ("test",), out / "data", progress=cfg.trainer.progress)["test"]


def preview_requests(crops: CropSet, n: int) -> np.ndarray:
    """Indices of up to ``n`` crops with particle truth, the species taking turns (crop order within each)."""
    turns = [
        (turn, index)
        for pid in sorted(set(crops.pid[crops.pid >= 0].tolist()))
        for turn, index in enumerate(np.flatnonzero(crops.pid == pid).tolist())
    ]
    return np.array([index for _, index in sorted(turns, key=lambda t: t[0])[:n]], np.int64)


def preview(cfg: DictConfig, out: Path, figures: dict) -> dict:
    """Sample one image per request of ``cfg.preview.n`` held-out crops (their particle and
    momentum) from the run at ``out`` and draw them beside those crops, real | generated, into
    ``<out>/preview.png``; adds ``preview_requests`` (one name per cell) and
    ``preview_seconds_per_image`` to ``figures`` and writes them to ``metrics.json``."""
    real = held_out_crops(cfg, out) if cfg.preview.n > 0 else None
    chosen = preview_requests(real, cfg.preview.n) if real is not None else np.zeros(0, np.int64)
    if len(chosen):
        requests = list(zip(real.pid[chosen].tolist(), real.momentum[chosen].tolist()))
        generated, seconds = np.zeros_like(real.images[chosen]), 0.0
        for k, (pid, momentum) in enumerate(dict.fromkeys(requests)):
            cells = [i for i, request in enumerate(requests) if request == (pid, momentum)]
            result = generate(
                out,
                len(cells),
                seed=cfg.seed + k,
                device=cfg.trainer.device,
                particle=PARTICLE_NAMES[pid],
                momentum=momentum,
                steps=cfg.preview.steps,
                progress=False,
            )
            generated[cells], seconds = result.crops.images, seconds + result.seconds
        labels = [f"{PARTICLE_NAMES[pid]} {momentum:.0f} MeV/c" for pid, momentum in requests]
        crop_comparison(real.images[chosen], generated, labels, out / "preview.png")
        figures["preview_requests"] = labels
        figures["preview_seconds_per_image"] = seconds / len(chosen)
    elif real is not None:
        print(f"preview: no held-out crop of {out} carries a particle and momentum to request; no preview.png")
    return write_metrics(out, figures)


def train_pixelcnn2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """The PixelCNN prior on a VQ-VAE's code maps, then its preview samples."""
    return preview(cfg, out, generators2d.train_pixelcnn2d(cfg, out, on_metrics))


def train_vpsde2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """The VP-SDE score model, then its preview samples."""
    return preview(cfg, out, generators2d.train_vpsde2d(cfg, out, on_metrics))
