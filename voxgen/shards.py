"""Work split into shards: ``ShardMap`` calls ``fn(shared, item)`` for every item and returns the
results in item order. ``LocalShards`` runs them in this process; ``voxgen.scale.RayShards`` runs
each as a Ray task. Sampling and evaluation take a ``ShardMap``, so a job gives the same results
wherever its shards run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tqdm import tqdm


class ShardMap(Protocol):
    def __call__(
        self, fn: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], desc: str, progress: bool
    ) -> list[Any]:
        """``[fn(shared, item) for item in items]``, with a progress bar of ``len(items)`` shards."""


def local_shards(
    fn: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], desc: str = "shards", progress: bool = False
) -> list[Any]:
    """Every shard in this process, one after the other."""
    return [fn(shared, item) for item in tqdm(items, desc=desc, unit="shard", disable=not progress)]


def blocks(n: int, size: int) -> list[slice]:
    """``n`` items cut into consecutive slices of ``size`` (the last may be shorter)."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
