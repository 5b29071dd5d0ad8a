"""What the training loop is told from outside: data parallelism and an epoch hook.

``voxgen.scale`` runs a recipe in each of several workers (Ray Train, PyTorch DDP) or as a Ray
Tune trial; the recipe itself stays unchanged. It sets a ``LoopContext`` around the recipe, and
the recipe's first training loop takes it (``take_context``): that loop shards every batch over
the workers, averages their gradients, lets rank 0 alone write the run folder, and calls
``on_epoch`` after each epoch's checkpoint. Later loops of the recipe (the SSNet3D of a
generator's evaluation) run on rank 0 alone, as in a single process; the other ranks end after
the first loop (``WorkerFinished``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# (the epoch's last logged row, the run's checkpoint on rank 0 or None elsewhere), after each epoch
EpochHook = Callable[[dict, Path | None], None]


@dataclass
class DataParallel:
    """This process's place in a data-parallel group (``torch.distributed`` initialised)."""

    rank: int
    world: int


@dataclass
class LoopContext:
    data_parallel: DataParallel | None = None
    on_epoch: EpochHook | None = None


class WorkerFinished(Exception):
    """Raised on ranks other than 0 when their data-parallel loop ends: rank 0 alone goes on to the
    recipe's later stages (evaluation, report)."""


_pending: LoopContext | None = None


@contextmanager
def loop_context(context: LoopContext) -> Iterator[None]:
    """``context`` for the first training loop started inside the block."""
    global _pending
    _pending = context
    try:
        yield
    finally:
        _pending = None


def take_context() -> LoopContext | None:
    """The pending context, once: the first loop gets it, later ones None."""
    global _pending
    context, _pending = _pending, None
    return context


class LossOf(nn.Module):
    """``model.loss(batch)`` as a forward pass, so DistributedDataParallel sees it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def data_parallel_loss(model: nn.Module, device: torch.device) -> nn.Module:
    """``model``'s loss under DistributedDataParallel: gradients averaged over the workers after
    each backward pass. On CUDA, BatchNorm layers become SyncBatchNorm (statistics of the global
    batch); on CPU (gloo, where PyTorch has no SyncBatchNorm) each worker normalises over its own
    shard and DDP broadcasts rank 0's running statistics to the others at every step."""
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        LossOf(model),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,  # a step may leave some parameters out (levels, dropped conditions)
    )


def mean_over_workers(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the data-parallel group (one all-reduce on ``device``)."""
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    t /= torch.distributed.get_world_size()
    return dict(zip(keys, t.tolist()))
