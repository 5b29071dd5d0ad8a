"""Fixed sets of labelled 64x64 crops, built once from an event source and cached as .npz."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from voxgen.data.splits import event_splits, open_split
from voxgen.errors import BadInput
from voxgen.events import Event
from voxgen.io.atomic import atomic_path
from voxgen.views import sample_crops


@dataclass
class CropSet:
    """``images`` (N, H, W) float32 MeV per pixel; ``labels`` (N, H, W) int64 SSNet classes;
    ``event`` (N,) index of the source event; ``pid`` (N,) PID of its first particle (-1 none);
    ``momentum`` (N,) MeV/c of that particle."""

    images: np.ndarray
    labels: np.ndarray
    event: np.ndarray
    pid: np.ndarray
    momentum: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> Path:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **self.__dict__)
        return path

    @classmethod
    def load(cls, path: Path) -> CropSet:
        try:
            with np.load(path) as data:
                return cls(**{k: data[k] for k in ("images", "labels", "event", "pid", "momentum")})
        except (OSError, KeyError, ValueError) as exc:
            raise BadInput(f"{path}: not a voxgen crop set ({exc})") from None

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (N, 1, H, W) float32, labels (N, H, W) int64)."""
        return torch.from_numpy(self.images)[:, None], torch.from_numpy(self.labels)


def make_crop_set(
    source: Sequence[Event],
    crops_per_event: int,
    seed: int,
    plane: str = "zx",
    size: int = 64,
    min_pixels: int = 10,
    pixel_voxels: int = 1,
    max_events: int = 0,
    progress: bool = True,
) -> CropSet:
    """``crops_per_event`` crops from each event (events with no valid crop are skipped)."""
    n_events = len(source) if max_events <= 0 else min(max_events, len(source))
    images, labels, index, pid, momentum = [], [], [], [], []
    for i in tqdm(range(n_events), desc="crops", unit="ev", disable=not progress):
        event = source[i]
        rng = np.random.default_rng([seed, i])
        try:
            crops = sample_crops(
                event, plane, size, n=crops_per_event, rng=rng, min_pixels=min_pixels, pixel_voxels=pixel_voxels
            )
        except BadInput:
            continue
        first = event.particles[0] if event.particles else None
        for image, label in crops:
            images.append(image)
            labels.append(label)
            index.append(i)
            pid.append(first.pid if first else -1)
            momentum.append(first.momentum if first else np.nan)
    if not images:
        raise BadInput(f"no {size}x{size} crop with {min_pixels} non-zero pixels in {n_events} events")
    return CropSet(
        np.stack(images).astype(np.float32),
        np.stack(labels).astype(np.int64),
        np.asarray(index),
        np.asarray(pid),
        np.asarray(momentum, dtype=np.float32),
    )


def crop_sets(data: DictConfig, splits: tuple[str, ...], cache: Path, progress: bool = True) -> dict[str, CropSet]:
    """Labelled crops per split, built once and cached in ``cache/<split>_crops.npz``."""
    root = event_splits(data)
    out = {}
    for split in splits:
        path = cache / f"{split}_crops.npz"
        if path.exists():
            out[split] = CropSet.load(path)
            continue
        source = open_split(root, split, min_points=data.min_points)
        out[split] = crops = make_crop_set(
            source,
            data.crops_per_event,
            seed=data.seed * 1000 + zlib.crc32(split.encode()) % 1000,
            plane=data.plane,
            size=data.size,
            min_pixels=data.min_pixels,
            pixel_voxels=data.pixel_voxels,
            max_events=data.max_events,
            progress=progress,
        )
        crops.save(path)
    return out
