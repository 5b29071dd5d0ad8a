"""The one data path of every training recipe: the epoch batcher, the random flips both 2D
batchers share, and the one sparse collate of 3D events."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from voxgen.errors import ConfigError
from voxgen.events import Event, collate_sparse

Batches = Callable[[int], Iterator[Any]]  # batches(epoch) -> the batches of that epoch
SparseBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]  # coords (M, 4), energy (M, 1), labels (M,), B


class EpochBatches:
    """``batches(epoch)``: ``make(indices (batch_size,), generator)`` over a shuffle of ``n``
    items, full batches only, deterministic per (``seed``, epoch) so a resumed run sees the
    same batches; ``make`` draws its augmentations from the same generator. ``len()`` is the
    number of batches per epoch (at least 1: ConfigError naming ``batch_size`` otherwise)."""

    def __init__(self, n: int, batch_size: int, seed: int, make: Callable[[torch.Tensor, torch.Generator], Any]):
        if batch_size < 1:
            raise ConfigError(f"batch_size: {batch_size}; must be at least 1")
        if n < batch_size:
            raise ConfigError(
                f"batch_size: {batch_size} is larger than the {n} training items, so an epoch has no full batch; "
                f"use batch_size<={n} or more data"
            )
        self.n, self.batch_size, self.seed, self.make = n, batch_size, seed, make

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __call__(self, epoch: int) -> Iterator[Any]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=gen)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.make(order[start : start + self.batch_size], gen)


def flip_transpose(arrays: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The same random flip of each of the last two axes and transpose of them, drawn from
    ``generator``, applied to every array of ``arrays`` (images and their labels alike)."""
    flip = torch.rand(3, generator=generator)
    if flip[0] < 0.5:
        arrays = tuple(a.flip(-1) for a in arrays)
    if flip[1] < 0.5:
        arrays = tuple(a.flip(-2) for a in arrays)
    if flip[2] < 0.5:
        arrays = tuple(a.transpose(-1, -2) for a in arrays)
    return arrays


def augment(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.9, 1.1)
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSNet augmentations of Lutkus et al. (arXiv:2204.02496, A.5) on a batch: random flips of
    both axes, transpose, and a per-image charge scale uniform in ``scale``. images (B, 1, H, W),
    labels (B, H, W)."""
    images, labels = flip_transpose((images, labels), generator)
    factor = torch.empty(len(images), 1, 1, 1).uniform_(*scale, generator=generator)
    return images * factor, labels


def flip_events(events: Sequence[Event], size: int, generator: torch.Generator) -> list[Event]:
    """Each event mirrored along random axes and its axes randomly permuted (a detector-free
    symmetry of the ``size``^3 voxel grid), drawn from ``generator``."""
    out = []
    for e in events:
        flips = torch.rand(3, generator=generator) < 0.5
        order = torch.randperm(3, generator=generator).numpy()
        c = e.coords.copy()
        c[:, flips.numpy()] = size - 1 - c[:, flips.numpy()]
        out.append(replace(e, coords=np.ascontiguousarray(c[:, order])))
    return out


def sparse_batch(events: Sequence[Event]) -> SparseBatch:
    """(coords (M, 4) int32 (batch, x, y, z), energy (M, 1) MeV, semantic labels (M,) int64 with
    -1 = none, B) of events: the layout both sparse backends consume."""
    coords, feats = collate_sparse(list(events))
    labels = np.concatenate([e.semantic if e.semantic is not None else np.full(len(e), -1) for e in events])
    return torch.from_numpy(coords), torch.from_numpy(feats), torch.from_numpy(labels.astype(np.int64)), len(events)


def crop_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, augmented: bool) -> Batches:
    """Shuffled (images (B, 1, H, W), labels (B, H, W)) batches, ``augment``-ed when ``augmented``."""

    def make(idx: torch.Tensor, gen: torch.Generator):
        x, y = images[idx], labels[idx]
        return augment(x, y, gen) if augmented else (x, y)

    return EpochBatches(len(images), batch_size, seed, make)


def tensor_batches(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, flips: bool = False) -> Batches:
    """Shuffled batches of aligned ``tensors`` (e.g. x, pid, momentum); with ``flips`` the first
    (images (N, C, h, w) or code maps (N, h, w)) is randomly flipped and transposed per batch."""

    def make(idx: torch.Tensor, gen: torch.Generator):
        first, *rest = (t[idx] for t in tensors)
        if flips:
            (first,) = flip_transpose((first,), gen)
        return (first, *rest)

    return EpochBatches(len(tensors[0]), batch_size, seed, make)


def event_batches(
    events: Sequence[Event],
    batch_size: int,
    seed: int,
    size: int,
    augmented: bool,
    conditions: tuple[np.ndarray, np.ndarray] | None = None,
) -> Batches:
    """Shuffled ``sparse_batch``-es of events on a ``size``^3 grid, ``flip_events``-ed when
    ``augmented``; with ``conditions`` (pid (N,), momentum (N,) MeV/c) each batch also carries the
    events' pid (B,) int64 and momentum (B,) float32 tensors."""

    def make(idx: torch.Tensor, gen: torch.Generator):
        chunk = [events[i] for i in idx.tolist()]
        batch = sparse_batch(flip_events(chunk, size, gen) if augmented else chunk)
        if conditions is None:
            return batch
        pid, momentum = conditions
        rows = idx.numpy()
        return (*batch, torch.from_numpy(pid[rows]).long(), torch.from_numpy(momentum[rows]).float())

    return EpochBatches(len(events), batch_size, seed, make)


def shard_batch(batch: Any, rank: int, world: int) -> Any:
    """Worker ``rank``'s share (of ``world``) of a batch: the ``rank``-th of ``world`` equal
    consecutive slices of its items. A sparse batch (coords (M, 4), energy, labels, B, per-event
    tensors...) keeps the voxels of its events, renumbered from 0; a tuple of tensors is sliced
    along its first axis. ConfigError when the batch does not split evenly."""
    sparse = isinstance(batch, tuple) and len(batch) >= 4 and isinstance(batch[3], int)
    items = batch[3] if sparse else len(batch[0])
    if items % world:
        raise ConfigError(f"batch_size: {items} items per step do not split evenly over distributed.workers={world}")
    lo, hi = rank * items // world, (rank + 1) * items // world
    if not sparse:
        return type(batch)(t[lo:hi] for t in batch)
    coords, energy, labels, _, *per_event = batch
    rows = (coords[:, 0] >= lo) & (coords[:, 0] < hi)
    mine = coords[rows].clone()
    mine[:, 0] -= lo
    return (mine, energy[rows], labels[rows], hi - lo, *(t[lo:hi] for t in per_event))
