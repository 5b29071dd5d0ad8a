"""Where a recipe's events come from: ``data.root`` or the built-in simulator's cached output,
one reader per split (``root/<split>/*.h5``, PILArNet-M or ``voxgen simulate`` output)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from voxgen.io.pilarnet import PilarnetReader, find_split_files


def event_splits(data: DictConfig) -> Path:
    """Folder with the data splits: ``data.root``, or the built-in simulator's cached output."""
    if data.root is not None:
        return Path(data.root)
    from voxgen.data.builtin import builtin_dataset
    from voxgen.sim.config import SimConfig

    b = data.builtin
    sim = SimConfig(mode=b.mode)
    return builtin_dataset(sim, {k: int(v) for k, v in b.splits.items()}, b.seed, workers=data.workers)


def open_split(
    root: str | os.PathLike, split: str, min_points: int = 0, energy_threshold: float = 0.0, drop_lowe: bool = False
) -> PilarnetReader:
    """Reader over the ``root/<split>/*.h5`` shards (PILArNet-M or simulator output)."""
    return PilarnetReader(
        find_split_files(root, split), min_points=min_points, energy_threshold=energy_threshold, drop_lowe=drop_lowe
    )
