"""Training recipe of SSNet3D: per-voxel semantic segmentation of 3D events (sparse U-Net)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from voxgen.config import from_node
from voxgen.data.crops import event_splits
from voxgen.events import SEMANTIC_NAMES, Clusters, Event, centred_crop
from voxgen.io.atomic import write_text_atomic
from voxgen.models.ssnet3d import N_CLASSES, build_ssnet3d, predict_events, sparse_batch
from voxgen.train.loop import MetricsCallback, TrainerConfig, load_weights, resolve_device, seed_everything, train


def event_crops(data: DictConfig, split: str, size: int, progress: bool = True) -> list[Event]:
    """The ``size``^3 centred crops of a split's events (``data.max_events`` of them; 0 = all),
    keeping those with at least ``data.min_voxels`` voxels."""
    from voxgen.data.datasets import open_split

    source = open_split(event_splits(data), split, min_points=data.min_points)
    n = len(source) if data.max_events == 0 else min(len(source), data.max_events)
    crops = (centred_crop(source[i], size) for i in tqdm(range(n), desc=f"{split} crops", disable=not progress))
    return [c for c in crops if len(c) >= data.min_voxels]


def flip_events(events: list[Event], size: int, generator: torch.Generator) -> list[Event]:
    """Each event mirrored along random axes and its axes randomly permuted (a detector-free
    symmetry of the voxel grid), drawn from ``generator``."""
    out = []
    for e in events:
        flips = torch.rand(3, generator=generator) < 0.5
        order = torch.randperm(3, generator=generator).numpy()
        c = e.coords.copy()
        c[:, flips.numpy()] = size - 1 - c[:, flips.numpy()]
        out.append(replace(e, coords=np.ascontiguousarray(c[:, order])))
    return out


def event_batches(events: list[Event], batch_size: int, seed: int, size: int, augmented: bool) -> Callable[[int], object]:
    """``batches(epoch)``: shuffled sparse batches of events, deterministic per epoch."""

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(events), generator=gen).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chunk = [events[i] for i in order[start:start + batch_size]]
            yield sparse_batch(flip_events(chunk, size, gen) if augmented else chunk)

    return batches


def segmentation_scores_3d(events: list[Event], predicted: list[np.ndarray]) -> dict:
    """Voxel accuracy, per-class recall and the confusion matrix (true x predicted) of the
    per-voxel class ``predicted`` for each of ``events`` (``predict_events``)."""
    confusion = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    for event, pred in zip(events, predicted):
        known = event.semantic >= 0
        np.add.at(confusion, (event.semantic[known], pred[known]), 1)
    recall = {f"{SEMANTIC_NAMES[c]}_recall": float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None
              for c in range(N_CLASSES)}
    return {"voxel_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)), **recall,
            "confusion_true_x_pred": confusion.tolist(), "test_events": len(events)}


def fit_on_event_crops(cfg: DictConfig, out: Path, model, on_metrics: MetricsCallback | None = None):
    """Train ``model`` (``loss`` of sparse batches) on the ``cfg.model.grid``^3 centred crops of
    the training split and reload its final (EMA) weights: (model in eval mode, training crops,
    held-out crops, last logged metrics)."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    size = cfg.model.grid
    train_events = event_crops(cfg.data, "train", size, trainer.progress)
    test_events = event_crops(cfg.data, "test", size, trainer.progress)
    last = train(model, event_batches(train_events, cfg.batch_size, trainer.seed, size, cfg.augment), trainer, out, on_metrics)
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    return model.to(resolve_device(trainer.device)).eval(), train_events, test_events, last


def train_ssnet3d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train SSNet3D on centred crops of 3D events; score per-class recall on the test split."""
    from voxgen.viz.display import show_event

    seed_everything(cfg.trainer.seed)  # the initial weights too
    model, train_events, test_events, last = fit_on_event_crops(cfg, out, build_ssnet3d(cfg.model), on_metrics)
    predicted, _ = predict_events(model, test_events)
    scores = segmentation_scores_3d(test_events, predicted)
    shown = test_events[0]
    by_class = Clusters.build(semantic=np.arange(N_CLASSES), pid=np.full(N_CLASSES, -1))
    show_event(shown, out / "test_truth.png", title="held-out event: true labels")
    show_event(replace(shown, cluster=predicted[0], clusters=by_class), out / "test_prediction.png",
               title="held-out event: SSNet3D labels")
    figures = {**scores, "train_events": len(train_events), "final_loss": last.get("loss"),
               "train_seconds": last.get("seconds")}
    write_text_atomic(out / "metrics.json", json.dumps(figures, indent=2) + "\n")
    return figures
