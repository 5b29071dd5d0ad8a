"""Data-parallel training of any recipe with Ray Train (``distributed.workers`` > 1).

Each worker runs the recipe unchanged inside a data-parallel ``LoopContext``
(``voxgen.train.parallel``): PyTorch DDP over gloo (CPU) or nccl (``distributed.use_gpu``),
every batch of ``batch_size`` split into equal consecutive shards, rank 0 the only writer of the
run folder. After each epoch the run's checkpoint is reported to Ray Train; a lost worker makes
Ray restart the group (``distributed.max_failures`` times), and the workers resume from the
newest of that checkpoint and the run folder's own. The run folder must lie on storage every
node sees (a shared filesystem on a cluster).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from voxgen.errors import ConfigError
from voxgen.io.atomic import atomic_path
from voxgen.pipelines import check_training, run_recipe
from voxgen.pipelines.resume import claim_run_folder
from voxgen.scale.cluster import check_resources, raise_cause, ray_session
from voxgen.train.parallel import DataParallel, LoopContext, WorkerFinished, loop_context

RAY_FOLDER = "ray_train"  # Ray Train's own record of the run, inside the run folder


def check_distributed(cfg: DictConfig) -> None:
    """ConfigError naming the key when ``cfg.distributed`` cannot run."""
    d = cfg.distributed
    if d.workers < 1 or d.cpus_per_worker < 1 or d.max_failures < -1:
        raise ConfigError(
            f"distributed: workers ({d.workers}) and cpus_per_worker ({d.cpus_per_worker}) must be at least 1, "
            f"max_failures ({d.max_failures}) at least -1 (no limit)"
        )
    if d.placement not in ("PACK", "SPREAD"):
        raise ConfigError(f"distributed.placement: '{d.placement}' (PACK or SPREAD)")
    if "batch_size" in cfg and cfg.batch_size % d.workers:
        raise ConfigError(f"batch_size: {cfg.batch_size} does not split evenly over distributed.workers={d.workers}")


def _checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["state"]["step"])


def restore_checkpoint(checkpoint, out: Path) -> None:
    """Ray Train's last reported ``checkpoint`` into the run folder ``out`` when it is newer than
    the folder's own ``checkpoints/last.pt`` (or the folder has none)."""
    if checkpoint is None:
        return
    with checkpoint.as_directory() as folder:
        reported, own = Path(folder) / "last.pt", out / "checkpoints" / "last.pt"
        if reported.is_file() and (not own.is_file() or _checkpoint_step(reported) > _checkpoint_step(own)):
            own.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(own) as tmp:
                shutil.copyfile(reported, tmp)
            print(f"restored {own} from Ray Train's checkpoint (step {_checkpoint_step(own)})")


def report_epoch(row: dict, ckpt: Path | None) -> None:
    """One epoch to Ray Train: its figures, and rank 0's checkpoint (copied into Ray's storage)."""
    import ray.train

    metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    if ckpt is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(ckpt, Path(folder) / "last.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _worker(config: dict) -> None:
    """One Ray Train worker: the recipe under a data-parallel context."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    cfg = OmegaConf.create(config["cfg"])
    if cfg.distributed.use_gpu:
        cfg.trainer.device = str(ray.train.torch.get_device())
    if rank:
        cfg.trainer.progress = False
    torch.set_num_threads(cfg.distributed.cpus_per_worker)
    out = Path(cfg.out)
    if rank == 0:
        restore_checkpoint(ray.train.get_checkpoint(), out)
    dist.barrier()  # every rank resumes from the same checkpoint
    try:
        with loop_context(LoopContext(DataParallel(rank, world), on_epoch=report_epoch)):
            run_recipe(cfg)
    except WorkerFinished:
        return


def train_distributed(cfg: DictConfig) -> dict:
    """Train ``cfg`` with ``cfg.distributed.workers`` Ray Train workers on the cluster at
    ``cfg.ray.address`` (a local Ray instance when null); returns the run's figures."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    check_training(cfg)
    check_distributed(cfg)
    d = cfg.distributed
    out = Path(cfg.out).resolve()
    cfg.out = str(out)
    with ray_session(cfg.ray.address):
        check_resources(
            d.workers * d.cpus_per_worker,
            d.workers if d.use_gpu else 0,
            f"distributed.workers={d.workers} (cpus_per_worker={d.cpus_per_worker}, use_gpu={d.use_gpu})",
        )
        claim_run_folder(cfg)
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"cfg": OmegaConf.to_container(cfg, resolve=True)},
            torch_config=TorchConfig(backend="nccl" if d.use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=d.workers,
                use_gpu=d.use_gpu,
                resources_per_worker={"CPU": d.cpus_per_worker},
                placement_strategy=d.placement,
            ),
            run_config=RunConfig(
                name=RAY_FOLDER,
                storage_path=str(out),
                failure_config=FailureConfig(max_failures=d.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=1),
            ),
        )
        print(f"training on {d.workers} Ray Train workers ({'nccl, GPU' if d.use_gpu else 'gloo, CPU'}) -> {out}")
        try:
            result = trainer.fit()
        except Exception as err:  # Ray's TrainingFailedError wraps the worker's error
            raise_cause(err)
            raise ConfigError(f"distributed training failed: {str(err).splitlines()[0]}") from None
    metrics = out / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else dict(result.metrics or {})
