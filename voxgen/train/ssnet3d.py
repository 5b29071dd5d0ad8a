"""Training recipe of SSNet3D: per-voxel semantic segmentation of 3D events (sparse U-Net)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from voxgen.config import from_node
from voxgen.data.batches import event_batches
from voxgen.data.event_crops import event_crops
from voxgen.events import SEMANTIC_NAMES, Clusters, Event
from voxgen.models.ssnet3d import N_CLASSES, build_ssnet3d, predict_events
from voxgen.runs import load_weights, resolve_device
from voxgen.train.loop import MetricsCallback, TrainerConfig, seed_everything, train, write_metrics
from voxgen.viz.display import show_event


def segmentation_scores_3d(events: list[Event], predicted: list[np.ndarray]) -> dict:
    """Voxel accuracy, per-class recall and the confusion matrix (true x predicted) of the
    per-voxel class ``predicted`` for each of ``events`` (``predict_events``)."""
    confusion = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    for event, pred in zip(events, predicted):
        known = event.semantic >= 0
        np.add.at(confusion, (event.semantic[known], pred[known]), 1)
    recall = {
        f"{SEMANTIC_NAMES[c]}_recall": float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None
        for c in range(N_CLASSES)
    }
    return {
        "voxel_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        **recall,
        "confusion_true_x_pred": confusion.tolist(),
        "test_events": len(events),
    }


def fit_on_event_crops(cfg: DictConfig, out: Path, model, on_metrics: MetricsCallback | None = None):
    """Train ``model`` (``loss`` of sparse batches) on the ``cfg.model.grid``^3 centred crops of
    the training split and reload its final (EMA) weights: (model in eval mode, training crops,
    held-out crops, last logged metrics)."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    size = cfg.model.grid
    train_events = event_crops(cfg.data, "train", size, trainer.progress)
    test_events = event_crops(cfg.data, "test", size, trainer.progress)
    last = train(
        model, event_batches(train_events, cfg.batch_size, trainer.seed, size, cfg.augment), trainer, out, on_metrics
    )
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    return model.to(resolve_device(trainer.device)).eval(), train_events, test_events, last


def train_ssnet3d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train SSNet3D on centred crops of 3D events; score per-class recall on the test split."""
    seed_everything(cfg.trainer.seed)  # the initial weights too
    model, train_events, test_events, last = fit_on_event_crops(cfg, out, build_ssnet3d(cfg.model), on_metrics)
    predicted, _ = predict_events(model, test_events)
    scores = segmentation_scores_3d(test_events, predicted)
    shown = test_events[0]
    by_class = Clusters.build(semantic=np.arange(N_CLASSES), pid=np.full(N_CLASSES, -1))
    show_event(shown, out / "test_truth.png", title="held-out event: true labels")
    show_event(
        replace(shown, cluster=predicted[0], clusters=by_class),
        out / "test_prediction.png",
        title="held-out event: SSNet3D labels",
    )
    figures = {
        **scores,
        "train_events": len(train_events),
        "final_loss": last.get("loss"),
        "train_seconds": last.get("seconds"),
    }
    return write_metrics(out, figures)
