"""Torch Datasets over an event source, one per view.

An event source is any random-access sequence of Events: a ``PilarnetReader`` over one split
of a PILArNet-M folder or of the simulator's output (same layout, ``root/<split>/*.h5``; see
``open_split``), a Parquet reader, or a plain list. Readers open their files lazily per
process, so the datasets can be used with DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from voxgen.detector.planes import PlaneGeometry, apply_dead_channels, dead_channel_mask, project_to_planes
from voxgen.errors import ConfigError
from voxgen.events import Event, collate_sparse
from voxgen.io.pilarnet import PilarnetReader, find_split_files
from voxgen.views import sample_crops

VOXEL_LABELS = ("semantic", "pid", "instance")
SparseItem = tuple[np.ndarray, np.ndarray, np.ndarray]


def open_split(root: str | os.PathLike, split: str, min_points: int = 0,
               energy_threshold: float = 0.0, drop_lowe: bool = False) -> PilarnetReader:
    """Reader over the ``root/<split>/*.h5`` shards (PILArNet-M or simulator output)."""
    return PilarnetReader(find_split_files(root, split), min_points=min_points,
                          energy_threshold=energy_threshold, drop_lowe=drop_lowe)


def voxel_labels(event: Event, label: str = "semantic") -> np.ndarray:
    """(N,) int64 per-voxel ``label`` (semantic, pid or instance); -1 when unlabelled."""
    if label not in VOXEL_LABELS:
        raise ConfigError(f"label must be one of {VOXEL_LABELS}, got '{label}'")
    values = getattr(event, label)
    return np.full(len(event), -1, np.int64) if values is None else values.astype(np.int64)


def source_name(source: Sequence[Event]) -> str:
    """A name for error messages: the folder of a reader's files, else the source's type."""
    paths = getattr(source, "paths", None)
    return str(Path(paths[0]).parent) if paths else type(source).__name__


def _event_arrays(event: Event, features: Sequence[str], label: str) -> SparseItem:
    feats = np.stack([getattr(event, f) for f in features], axis=1).astype(np.float32)
    return event.coords, feats, voxel_labels(event, label)


class SparseEventDataset(Dataset):
    """Events as sparse 3D voxels.

    Item ``i``: the Event itself when ``as_event``, else ``(coords (N, 3) int32,
    feats (N, C) float32 with C = len(features), labels (N,) int64 per-voxel ``label``)``.
    """

    def __init__(self, source: Sequence[Event], features: Sequence[str] = ("energy",),
                 label: str = "semantic", as_event: bool = False) -> None:
        if label not in VOXEL_LABELS:
            raise ConfigError(f"label must be one of {VOXEL_LABELS}, got '{label}'")
        self.source, self.features, self.label, self.as_event = source, tuple(features), label, as_event

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Event | SparseItem:
        event = self.source[i]
        return event if self.as_event else _event_arrays(event, self.features, self.label)


def collate_sparse_batch(items: Sequence[Event] | Sequence[SparseItem]
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch sparse items: ``coords`` (M, 4) int32 (batch, x, y, z), ``feats`` (M, C) float32,
    ``labels`` (M,) int64. Events contribute their energy as the one feature and their
    semantic labels; array items their own columns."""
    if items and isinstance(items[0], Event):
        coords, feats = collate_sparse(list(items), features=("energy",))
        labels = np.concatenate([voxel_labels(e) for e in items])
    else:
        coords = np.concatenate([np.concatenate([np.full((len(c), 1), b, np.int32), c], axis=1)
                                 for b, (c, _, _) in enumerate(items)]).astype(np.int32)
        feats = np.concatenate([f for _, f, _ in items]).astype(np.float32)
        labels = np.concatenate([lab for _, _, lab in items]).astype(np.int64)
    return torch.from_numpy(coords), torch.from_numpy(feats), torch.from_numpy(labels)


class CropDataset(Dataset):
    """2D crops of one projection with per-pixel SSNet labels.

    ``crops_per_event`` items per event; item ``i`` is crop ``i % crops_per_event`` of event
    ``i // crops_per_event``, drawn with a generator seeded by ``(seed, i)``, so an index
    always gives the same crop. Item: ``(image (1, size, size) float32 MeV,
    labels (size, size) int64 SSNet classes)``.
    """

    def __init__(self, source: Sequence[Event], plane: str = "zx", size: int = 64,
                 crops_per_event: int = 1, seed: int = 0, min_pixels: int = 10,
                 pixel_voxels: int = 1) -> None:
        self.source, self.plane, self.size = source, plane, size
        self.crops_per_event, self.seed = crops_per_event, seed
        self.min_pixels, self.pixel_voxels = min_pixels, pixel_voxels

    def __len__(self) -> int:
        return len(self.source) * self.crops_per_event

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        index = i // self.crops_per_event
        rng = np.random.default_rng([self.seed, i])
        [(image, labels)] = sample_crops(self.source[index], self.plane, self.size, n=1, rng=rng,
                                         min_pixels=self.min_pixels, pixel_voxels=self.pixel_voxels,
                                         where=f"{source_name(self.source)} event {index}")
        return torch.from_numpy(image)[None], torch.from_numpy(labels)


class WirePlaneDataset(Dataset):
    """Wire-plane images: item ``i`` is {plane name: (n_wires, n_ticks) float32 MeV}.

    ``dead`` (as in ``dead_channel_mask``: wire lists or random fractions per plane) blanks
    wires; random fractions are drawn with a generator seeded by ``(seed, i)``.
    """

    def __init__(self, source: Sequence[Event], geometry: PlaneGeometry | None = None,
                 dead: Mapping[str, Sequence[int] | float] | None = None, seed: int = 0) -> None:
        self.source = source
        self.geometry = PlaneGeometry() if geometry is None else geometry
        self.dead, self.seed = dead, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        event = self.source[i]
        images = {name: image[0] for name, image in
                  project_to_planes(event.coords, event.energy, self.geometry).items()}
        if self.dead:
            masks = dead_channel_mask(self.geometry, self.dead, rng=np.random.default_rng([self.seed, i]))
            images = apply_dead_channels(images, masks)
        return images
