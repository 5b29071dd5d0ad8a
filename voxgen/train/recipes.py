"""Training recipes: a composed config in, a trained model + figures out.

Each recipe is a plain function ``(cfg, out, on_metrics) -> figures`` so Ray Tune / Ray Train
can call it unchanged; ``RECIPES`` maps ``cfg.model.name`` to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from voxgen.config import from_node
from voxgen.data.crops import CropSet, augment, crop_sets
from voxgen.io.atomic import write_text_atomic
from voxgen.train.generators2d import train_pixelcnn2d, train_vpsde2d, train_vqvae2d
from voxgen.train.generators3d import train_autoencoder3d, train_latent3d
from voxgen.train.loop import MetricsCallback, TrainerConfig, load_weights, resolve_device, seed_everything, train
from voxgen.train.ssnet3d import train_ssnet3d


def crop_batches(crops: CropSet, batch_size: int, seed: int, augmented: bool) -> Callable[[int], object]:
    """``batches(epoch)``: shuffled (images, labels) batches, deterministic per epoch."""
    images, labels = crops.tensors()

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            x, y = images[idx], labels[idx]
            yield augment(x, y, gen) if augmented else (x, y)

    return batches


@torch.no_grad()
def segmentation_scores(model, crops: CropSet, batch_size: int = 256) -> dict:
    """Per-pixel accuracy on charged pixels and per-class recall (shower, track) and confusion."""
    from voxgen.models.ssnet2d import predict_crops

    probs, _ = predict_crops(model, crops.images, batch_size)
    pred = probs.argmax(1)
    truth = crops.labels
    charged = truth > 0
    confusion = np.zeros((3, 3), np.int64)
    np.add.at(confusion, (truth[charged], pred[charged]), 1)
    recall = lambda c: float(confusion[c, c] / max(confusion[c].sum(), 1))
    return {"charged_pixel_accuracy": float((pred[charged] == truth[charged]).mean()),
            "all_pixel_accuracy": float((pred == truth).mean()),
            "shower_recall": recall(1), "track_recall": recall(2),
            "confusion_charged_true_x_pred": confusion.tolist(), "test_crops": len(crops)}


def train_ssnet2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train SSNet2D on labelled crops; score it on the held-out split; sample grid PNG."""
    from voxgen.models.ssnet2d import SSNet2D, predict_crops
    from voxgen.viz.display import crop_grid

    trainer = from_node(TrainerConfig, cfg.trainer)
    sets = crop_sets(cfg.data, ("train", "test"), out / "data", progress=trainer.progress)
    m = cfg.model
    seed_everything(trainer.seed)  # the initial weights too
    model = SSNet2D(base=m.base, depth=m.depth, charge_scale=m.charge_scale, class_weights=tuple(m.class_weights))
    last = train(model, crop_batches(sets["train"], cfg.batch_size, trainer.seed, cfg.augment),
                 trainer, out, on_metrics)
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    model.to(resolve_device(trainer.device)).eval()
    scores = segmentation_scores(model, sets["test"])
    probs, _ = predict_crops(model, sets["test"].images[:16])
    crop_grid(sets["test"].images[:16], probs.argmax(1), out_png=out / "test_predictions.png")
    crop_grid(sets["test"].images[:16], sets["test"].labels[:16], out_png=out / "test_truth.png")
    figures = {**scores, "train_crops": len(sets["train"]), "final_loss": last.get("loss"),
               "train_seconds": last.get("seconds")}
    write_text_atomic(out / "metrics.json", json.dumps(figures, indent=2) + "\n")
    return figures


RECIPES: dict[str, Callable[[DictConfig, Path, MetricsCallback | None], dict]] = {
    "ssnet2d": train_ssnet2d, "vqvae2d": train_vqvae2d, "pixelcnn2d": train_pixelcnn2d, "vpsde2d": train_vpsde2d,
    "ssnet3d": train_ssnet3d, "autoencoder3d": train_autoencoder3d, "flowmatch3d": train_latent3d, "diffusion3d": train_latent3d,
}


def run_recipe(cfg: DictConfig, on_metrics: MetricsCallback | None = None) -> dict:
    """Dispatch ``cfg.model.name`` to its recipe with output folder ``cfg.out``."""
    from voxgen.errors import ConfigError

    name = cfg.model.name
    if name not in RECIPES:
        raise ConfigError(f"model.name: no training recipe for '{name}' (have {', '.join(RECIPES)})")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return RECIPES[name](cfg, out, on_metrics)
