"""Classifier two-sample test (C2ST): how well a small network tells generated from real."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from voxgen.evaluate.distances import pooled_pixels

IMAGE_GRID = 16  # images are average-pooled onto a 16x16 grid before the classifier


def _features(x: np.ndarray) -> np.ndarray:
    """(N, D) float64 rows: feature arrays as given, (N, H, W) images pooled onto 16x16."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        return pooled_pixels(x, IMAGE_GRID)
    return x.reshape(len(x), -1)


def c2st_accuracy(
    x_ref: np.ndarray,
    x_cand: np.ndarray,
    seed: int = 0,
    folds: int = 5,
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
) -> float:
    """Cross-validated accuracy of an MLP trained to separate ``x_ref`` from ``x_cand``.

    Inputs are feature sets (N, D) / (M, D), or image sets (N, H, W) (H, W multiples of 16),
    which are average-pooled onto a 16x16 grid of charge and flattened. Both sets are cut to
    the smaller size n (balanced classes) and shuffled into ``folds`` folds; each fold is
    predicted by a classifier trained on the others (features standardised with that training
    split's mean and std; D -> hidden -> hidden -> 1, ReLU, full-batch Adam for ``steps`` steps
    on the binary cross-entropy). The result is the accuracy over all 2n held-out predictions:
    0.5 means indistinguishable, 1.0 perfectly separated; its statistical error is about
    sqrt(0.25 / 2n). Averaging over folds also averages out the run-to-run spread of one
    classifier's training, which on a single split exceeded that error. Deterministic for a
    ``seed``.
    """
    rng = np.random.default_rng(seed)
    ref, cand = _features(x_ref), _features(x_cand)
    if ref.shape[1] != cand.shape[1]:
        raise ValueError(f"c2st: feature sizes differ ({ref.shape[1]} vs {cand.shape[1]})")
    n = min(len(ref), len(cand))
    if n < folds:
        raise ValueError(f"c2st needs at least {folds} samples per set for {folds} folds, got {n}")
    x = np.concatenate([ref[rng.permutation(len(ref))[:n]], cand[rng.permutation(len(cand))[:n]]])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    correct = 0
    for k, test in enumerate(np.array_split(order, folds)):
        train = np.setdiff1d(order, test)
        correct += _fit_and_count_correct(x, y, train, test, seed + k, hidden, steps, lr, weight_decay)
    return correct / (2 * n)


def _fit_and_count_correct(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    hidden: int,
    steps: int,
    lr: float,
    weight_decay: float,
) -> int:
    """Train the MLP on rows ``train`` of (x, y); the number of rows ``test`` it gets right."""
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    xt = torch.as_tensor((x - mean) / np.where(std > 0, std, 1.0), dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn(model(xt[train]).squeeze(1), yt[train]).backward()
        optimiser.step()
    with torch.no_grad():
        predicted = (model(xt[test]).squeeze(1) > 0).float()
    return int((predicted == yt[test]).sum())
