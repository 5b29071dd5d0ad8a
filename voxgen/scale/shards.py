"""Shards as Ray tasks: a ``voxgen.shards.ShardMap`` whose shards run anywhere on the cluster.
The shared object (a model) is put in Ray's object store once; each task reserves
``cpus_per_task`` CPUs and is retried on another node when its node is lost, so every shard's
result arrives exactly once, in order, whatever happens to the nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from voxgen.scale.cluster import raise_cause

TASK_RETRIES = 3  # a shard whose node is lost runs again elsewhere, up to this many times


def _run_shard(fn: Callable[[Any, Any], Any], shared: Any, item: Any, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(shared, item)


class RayShards:
    """``ShardMap`` over Ray tasks of ``cpus_per_task`` CPUs each (Ray connected by the caller)."""

    def __init__(self, cpus_per_task: int = 1):
        self.cpus_per_task = cpus_per_task

    def __call__(
        self, fn: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], desc: str = "shards", progress=False
    ) -> list[Any]:
        import ray

        task = ray.remote(num_cpus=self.cpus_per_task, max_retries=TASK_RETRIES, retry_exceptions=False)(_run_shard)
        shared_ref = ray.put(shared)
        futures = [task.remote(fn, shared_ref, item, self.cpus_per_task) for item in items]
        pending = list(futures)
        try:
            with tqdm(total=len(futures), desc=f"{desc} (ray)", unit="shard", disable=not progress) as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    bar.update(len(done))
            return ray.get(futures)
        except ray.exceptions.RayTaskError as err:
            raise_cause(err)
            raise
        finally:
            for future in pending:
                ray.cancel(future, force=True)
