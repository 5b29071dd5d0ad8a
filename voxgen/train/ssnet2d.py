"""Training recipe of SSNet2D: track/shower segmentation of 64x64 charge crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from voxgen.config import from_node
from voxgen.data.batches import crop_batches
from voxgen.data.crops import CropSet, crop_sets
from voxgen.models.ssnet2d import build_ssnet2d, predict_crops
from voxgen.runs import load_weights, resolve_device
from voxgen.train.loop import MetricsCallback, TrainerConfig, seed_everything, train, write_metrics
from voxgen.viz.display import crop_grid


@torch.no_grad()
def segmentation_scores(model, crops: CropSet, batch_size: int = 256) -> dict:
    """Per-pixel accuracy on charged pixels and per-class recall (shower, track) and confusion."""
    probs, _ = predict_crops(model, crops.images, batch_size)
    pred = probs.argmax(1)
    truth = crops.labels
    charged = truth > 0
    confusion = np.zeros((3, 3), np.int64)
    np.add.at(confusion, (truth[charged], pred[charged]), 1)
    recall = lambda c: float(confusion[c, c] / max(confusion[c].sum(), 1))
    return {
        "charged_pixel_accuracy": float((pred[charged] == truth[charged]).mean()),
        "all_pixel_accuracy": float((pred == truth).mean()),
        "shower_recall": recall(1),
        "track_recall": recall(2),
        "confusion_charged_true_x_pred": confusion.tolist(),
        "test_crops": len(crops),
    }


def train_ssnet2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train SSNet2D on labelled crops; score it on the held-out split; sample grid PNG."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    sets = crop_sets(cfg.data, ("train", "test"), out / "data", progress=trainer.progress)
    seed_everything(trainer.seed)  # the initial weights too
    model = build_ssnet2d(cfg.model)
    last = train(
        model,
        crop_batches(*sets["train"].tensors(), cfg.batch_size, trainer.seed, cfg.augment),
        trainer,
        out,
        on_metrics,
    )
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    model.to(resolve_device(trainer.device)).eval()
    scores = segmentation_scores(model, sets["test"])
    probs, _ = predict_crops(model, sets["test"].images[:16])
    crop_grid(sets["test"].images[:16], probs.argmax(1), out_png=out / "test_predictions.png")
    crop_grid(sets["test"].images[:16], sets["test"].labels[:16], out_png=out / "test_truth.png")
    figures = {
        **scores,
        "train_crops": len(sets["train"]),
        "final_loss": last.get("loss"),
        "train_seconds": last.get("seconds"),
    }
    return write_metrics(out, figures)
