"""The one training loop every voxgen model uses.

A model exposes ``loss(batch) -> Tensor`` (scalar) or ``-> dict`` with a ``"loss"`` entry and
other scalars to log. The loop knows nothing else about it. ``train`` is a plain function
of its config that reports metrics through a callback; Ray Train and Ray Tune run it unchanged
through the context of ``voxgen.train.parallel`` (data parallelism, an epoch hook).
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from voxgen.data.batches import shard_batch
from voxgen.errors import ConfigError
from voxgen.io.atomic import atomic_path, write_text_atomic
from voxgen.runs import resolve_device
from voxgen.train.parallel import WorkerFinished, data_parallel_loss, mean_over_workers, take_context

MetricsCallback = Callable[[dict], None]


@dataclass
class TrainerConfig:
    """Optimiser, schedule, EMA, checkpointing and logging of one training run."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "none"  # none | step | cosine
    step_epochs: int = 4  # schedule=step: multiply lr by step_gamma every step_epochs
    step_gamma: float = 0.5
    grad_clip: float = 0.0  # 0 = off
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999
    log_every: int = 20  # steps between CSV rows / callback calls
    max_steps_per_epoch: int = 0  # 0 = the whole loader
    checkpoint_every: int = 200  # steps between checkpoints (and at each epoch end)
    resume: bool = True  # continue from <out>/checkpoints/last.pt when present
    keep_epoch_checkpoints: bool = False  # also keep <out>/checkpoints/epoch_NNN.pt after every epoch
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"trainer.optimizer: unknown optimizer '{self.optimizer}' (adam, adamw)")
        if self.schedule not in ("none", "step", "cosine"):
            raise ConfigError(f"trainer.schedule: unknown schedule '{self.schedule}' (none, step, cosine)")
        for key in ("epochs", "log_every", "checkpoint_every", "step_epochs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"trainer.{key}: {getattr(self, key)}; must be at least 1")
        for key in ("max_steps_per_epoch", "grad_clip", "weight_decay"):
            if getattr(self, key) < 0:
                raise ConfigError(f"trainer.{key}: {getattr(self, key)}; must be 0 (off) or positive")
        if not self.lr > 0 or not self.step_gamma > 0:
            raise ConfigError(f"trainer.lr ({self.lr}) and trainer.step_gamma ({self.step_gamma}) must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"trainer.ema_decay: {self.ema_decay} not in [0, 1)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to(batch, device: torch.device):
    """Batch (tensor, or tuple/list/dict of them) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _make_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def _make_schedule(opt: torch.optim.Optimizer, cfg: TrainerConfig):
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_epochs, gamma=cfg.step_gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return None


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already used
    seconds: float = 0.0  # training time (s) up to this state, over every session of the run


def save_checkpoint(path: Path, model, opt, schedule, ema, state: TrainState, cfg: TrainerConfig) -> None:
    """Everything needed to resume, written atomically."""
    payload = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "schedule": schedule.state_dict() if schedule else None,
        "ema": ema.state_dict() if ema else None,
        "state": asdict(state),
        "trainer": asdict(cfg),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train(
    model: nn.Module,
    batches: Callable[[int], Iterable],
    cfg: TrainerConfig,
    out: Path,
    on_metrics: MetricsCallback | None = None,
) -> dict:
    """Train ``model`` for ``cfg.epochs``; returns the last logged metrics.

    ``batches(epoch)`` yields the batches of one epoch (deterministic for an epoch index, so
    a resumed run sees the same batches). Writes ``<out>/checkpoints/last.pt`` (resumable)
    and ``<out>/metrics.csv``; ``on_metrics`` gets every logged row.

    Under a data-parallel context (``voxgen.train.parallel``) each worker trains on its shard of
    every batch, gradients are averaged, logged figures are means over the workers and rank 0
    alone writes; the other ranks raise ``WorkerFinished`` at the end.
    """
    out = Path(out)
    context = take_context()
    dp = context.data_parallel if context else None
    writer = dp is None or dp.rank == 0
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(device)
    opt = _make_optimizer(model, cfg)
    schedule = _make_schedule(opt, cfg)
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )  # BatchNorm statistics, VQ counters travel too
        if cfg.ema_decay > 0
        else None
    )
    state = TrainState()
    ckpt = out / "checkpoints" / "last.pt"
    if cfg.resume and ckpt.exists():
        payload = torch.load(ckpt, map_location=device, weights_only=False)
        try:
            model.load_state_dict(payload["model"])
        except RuntimeError as err:  # another architecture's run in this folder
            raise ConfigError(
                f"{ckpt}: a checkpoint of another model setup ({str(err).splitlines()[1].strip()}); "
                "choose a new out or delete the folder"
            ) from None
        opt.load_state_dict(payload["optimizer"])
        if schedule and payload["schedule"]:
            schedule.load_state_dict(payload["schedule"])
        if ema and payload["ema"]:
            ema.load_state_dict(payload["ema"])
        state = TrainState(**payload["state"])
        torch.set_rng_state(payload["rng"]["torch"])
        np.random.set_state(payload["rng"]["numpy"])
        random.setstate(payload["rng"]["python"])
        print(
            f"resuming {out} from {ckpt.relative_to(out)}: epoch {state.epoch + 1}/{cfg.epochs}, "
            f"step {state.step}, after {state.seconds:.1f} s of training"
        )

    log_path = out / "metrics.csv"
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        _drop_rows_after(log_path, state.step)  # rows a killed session logged past its last checkpoint
    loss_of = model.loss
    if dp:
        loss_of = data_parallel_loss(model, device)
        torch.manual_seed(cfg.seed * 7919 + 104_729 * state.step + dp.rank)  # each worker its own noise
    log = lambda: _log(log_path if writer else None, state, running, running_n, opt, t_start, on_metrics, dp, device)
    last = _last_row(log_path)  # a run resumed after its last epoch still reports its figures
    running: dict[str, float] = {}
    running_n = 0
    t_start = time.perf_counter() - state.seconds
    per_epoch = _steps_per_epoch(batches, cfg)
    model.train()
    bar = tqdm(
        total=per_epoch * cfg.epochs if per_epoch else None,
        initial=min(state.step, per_epoch * cfg.epochs) if per_epoch else state.step,
        desc="train",
        disable=not cfg.progress or state.epoch >= cfg.epochs or not writer,
        unit="step",
    )
    while state.epoch < cfg.epochs:
        bar.set_description(f"epoch {state.epoch + 1}/{cfg.epochs}")
        steps_before = state.step
        for i, batch in enumerate(batches(state.epoch)):
            if cfg.max_steps_per_epoch and i >= cfg.max_steps_per_epoch:
                break
            if i < state.batch_in_epoch:  # resumed mid-epoch: skip what was already used
                continue
            result = loss_of(move_to(shard_batch(batch, dp.rank, dp.world) if dp else batch, device))
            losses = result if isinstance(result, dict) else {"loss": result}
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {state.epoch} step {state.step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if ema:
                ema.update_parameters(model)
            state.step += 1
            state.batch_in_epoch = i + 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            running_n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
            if state.step % cfg.log_every == 0:
                last = log()
                running, running_n = {}, 0
            if state.step % cfg.checkpoint_every == 0 and writer:
                state.seconds = time.perf_counter() - t_start
                save_checkpoint(ckpt, model, opt, schedule, ema, state, cfg)
        if state.step == steps_before and state.batch_in_epoch == 0:
            raise ConfigError(
                f"trainer: epoch {state.epoch + 1} gave no training batch (is batch_size larger than the data?); "
                "nothing was trained"
            )
        state.epoch += 1
        state.batch_in_epoch = 0
        if schedule:
            schedule.step()
        if running_n:
            last = log()
            running, running_n = {}, 0
        state.seconds = time.perf_counter() - t_start
        if writer:
            save_checkpoint(ckpt, model, opt, schedule, ema, state, cfg)
            if cfg.keep_epoch_checkpoints:
                with atomic_path(ckpt.with_name(f"epoch_{state.epoch:03d}.pt")) as tmp:
                    shutil.copyfile(ckpt, tmp)
        if context and context.on_epoch:
            context.on_epoch(last, ckpt if writer else None)
    bar.close()
    if dp and not writer:
        raise WorkerFinished
    return last


def _steps_per_epoch(batches: Callable[[int], Iterable], cfg: TrainerConfig) -> int | None:
    """Optimiser steps per epoch when the batcher knows its length (``len(batches)``), else None."""
    try:
        n = len(batches)  # type: ignore[arg-type]
    except TypeError:
        return cfg.max_steps_per_epoch or None
    return min(n, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n


def write_metrics(out: Path, figures: dict) -> dict:
    """A run's headline ``figures`` into ``<out>/metrics.json``; returns them."""
    write_text_atomic(Path(out) / "metrics.json", json.dumps(figures, indent=2, default=float) + "\n")
    return figures


def _last_row(path: Path) -> dict:
    """The last row of a metrics CSV as numbers ({} when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", None)} if rows else {}


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep only the rows of a metrics CSV up to optimiser step ``step`` (rewritten atomically)."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    kept = [r for r in rows if int(float(r["step"])) <= step]
    if len(kept) == len(rows):
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


def _log(
    path: Path | None,
    state: TrainState,
    running: dict,
    n: int,
    opt,
    t_start: float,
    on_metrics: MetricsCallback | None,
    dp=None,
    device: torch.device | None = None,
) -> dict:
    """The row of the figures ``running`` summed over ``n`` steps, appended to the CSV at ``path``
    (None: not this worker's to write) and given to ``on_metrics``; under data parallelism the
    figures are means over the workers."""
    means = {k: v / n for k, v in running.items()}
    if dp:
        means = mean_over_workers(means, device)
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "lr": opt.param_groups[0]["lr"],
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    row.update(means)
    if path is None:
        return row
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    if on_metrics:
        on_metrics(row)
    return row
