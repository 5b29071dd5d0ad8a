"""Does a conditional generator obey its condition? SSNet-based checks against real crops of
the same particle species and momenta."""

from __future__ import annotations

import numpy as np

from voxgen.evaluate.image_sets import ScoredImages

SHOWER, TRACK = 1, 2


def class_dominance(scored: ScoredImages) -> dict[str, float]:
    """Fractions of images SSNet calls track-dominated (more track than shower pixels) and
    shower-dominated (the reverse), and the mean track share of labelled pixels."""
    track = (scored.labels == TRACK).sum(axis=(1, 2))
    shower = (scored.labels == SHOWER).sum(axis=(1, 2))
    labelled = np.maximum(track + shower, 1)
    return {
        "track_dominated": float((track > shower).mean()),
        "shower_dominated": float((shower > track).mean()),
        "track_share": float((track / labelled).mean()),
        "n": len(scored),
    }


def binned_mean(values: np.ndarray, keys: np.ndarray, edges: np.ndarray) -> dict[str, list[float]]:
    """Mean, standard error and count of finite ``values`` (N,) in bins of ``keys`` (N,) with
    ``edges`` (K + 1,); NaN where a bin is empty."""
    values, keys = np.asarray(values, float), np.asarray(keys, float)
    mean, sem, count = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        v = values[(keys >= lo) & (keys < hi) & np.isfinite(values)]
        count.append(int(len(v)))
        mean.append(float(v.mean()) if len(v) else float("nan"))
        sem.append(float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan"))
    return {"centre": list(0.5 * (edges[:-1] + edges[1:])), "mean": mean, "sem": sem, "n": count}


def track_length_by_momentum(scored: ScoredImages, momentum: np.ndarray, edges: np.ndarray) -> dict[str, list[float]]:
    """Mean SSNet track length (pixels) per momentum bin (MeV/c) of a set of crops."""
    return binned_mean(scored.observables()["track_length"], momentum, edges)
