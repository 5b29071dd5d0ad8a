"""3D events as the generators and SSNet3D see them: centred crops of a split, and their
particle/momentum conditions."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from voxgen.data.splits import event_splits, open_split
from voxgen.events import Event, centred_crop


def event_crops(data: DictConfig, split: str, size: int, progress: bool = True) -> list[Event]:
    """The ``size``^3 centred crops of a split's events (``data.max_events`` of them; 0 = all),
    keeping those with at least ``data.min_voxels`` voxels."""
    source = open_split(event_splits(data), split, min_points=data.min_points)
    n = len(source) if data.max_events == 0 else min(len(source), data.max_events)
    crops = (centred_crop(source[i], size) for i in tqdm(range(n), desc=f"{split} crops", disable=not progress))
    return [c for c in crops if len(c) >= data.min_voxels]


def event_conditions(events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """(pid (E,) int64, momentum (E,) float32 MeV/c) of each event's first particle; pid -1
    (the null condition) and momentum 0 where an event carries no truth."""
    first = [e.particles[0] if e.particles else None for e in events]
    pid = np.array([p.pid if p else -1 for p in first], np.int64)
    momentum = np.array([p.momentum if p and np.isfinite(p.momentum) else 0.0 for p in first], np.float32)
    return pid, momentum
