"""The 2D generator recipes as jobs: the training stage (``voxgen.train.generators2d``), then
``cfg.preview.n`` samples of the just-trained run into ``<out>/preview.png``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from voxgen.sample import generate
from voxgen.train import generators2d
from voxgen.train.loop import MetricsCallback, write_metrics
from voxgen.viz.display import crop_grid


def preview(cfg: DictConfig, out: Path, figures: dict) -> dict:
    """Sample ``cfg.preview.n`` images of the run at ``out`` into ``<out>/preview.png``; adds
    ``preview_seconds_per_image`` to ``figures`` and writes them to ``metrics.json``."""
    if cfg.preview.n > 0:
        result = generate(
            out, cfg.preview.n, seed=cfg.seed, device=cfg.trainer.device, steps=cfg.preview.steps, progress=False
        )
        crop_grid(result.crops.images, out_png=out / "preview.png")
        figures["preview_seconds_per_image"] = result.seconds / cfg.preview.n
    return write_metrics(out, figures)


def train_pixelcnn2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """The PixelCNN prior on a VQ-VAE's code maps, then its preview samples."""
    return preview(cfg, out, generators2d.train_pixelcnn2d(cfg, out, on_metrics))


def train_vpsde2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """The VP-SDE score model, then its preview samples."""
    return preview(cfg, out, generators2d.train_vpsde2d(cfg, out, on_metrics))
