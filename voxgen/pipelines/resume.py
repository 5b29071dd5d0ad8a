"""One run per folder: a training run starts in a new or empty folder, or resumes the run that
folder already holds, with the same data and model settings; anything else is refused before
a file is written."""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from voxgen.config import flat_config
from voxgen.errors import ConfigError
from voxgen.io.atomic import write_text_atomic

# Keys a resumed run may change: how long, where and on how many workers it trains, how it
# reports, and what is sampled from it afterwards. Every other key (data, model, optimiser, batch
# size, seeds, ...) names the run.
RESUMABLE_KEYS = (
    "out",
    "trainer.epochs",
    "trainer.device",
    "trainer.progress",
    "trainer.resume",
    "trainer.log_every",
    "trainer.checkpoint_every",
    "trainer.keep_epoch_checkpoints",
    "data.workers",
    "distributed",
    "ray",
    "sampler",
    "report",
    "preview",
    "ssnet3d",
    "ckpt",
    "n",
    "cond",
    "format",
    "layout",
)


def _free(key: str) -> bool:
    return any(key == free or key.startswith(f"{free}.") for free in RESUMABLE_KEYS)


def run_differences(previous: DictConfig, current: DictConfig) -> list[str]:
    """``key=old (now new)`` for every run-naming key the two configs both set differently."""
    old, new = flat_config(previous), flat_config(current)
    return [
        f"{key}={old[key]} (now {new[key]})"
        for key in sorted(old.keys() & new.keys())
        if not _free(key) and old[key] != new[key]
    ]


def has_trained(out: Path) -> bool:
    """Whether ``out`` (or one of its stage runs) holds a checkpoint."""
    return any(out.rglob("last.pt"))


def claim_run_folder(cfg: DictConfig) -> bool:
    """Make ``cfg.out`` this run's folder and write its ``config.yaml``; True for a fresh run.

    A folder with a trained run of other settings (``run_differences``), a trained run while
    ``trainer.resume`` is false, a file, or a folder of files that are not a voxgen run is
    refused with a ConfigError before anything is written. A folder whose run never took a
    training step (it stopped on bad input) is cleared and started afresh.
    """
    out = Path(cfg.out)
    fresh_hint = f"choose a new out= or delete {out}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file, not a run folder")
    record = out / "config.yaml"
    fresh = not out.exists() or not any(out.iterdir())
    if not fresh and not record.is_file():
        raise ConfigError(f"out: {out} holds files that are not a voxgen run; {fresh_hint}")
    if not fresh:
        differences = run_differences(OmegaConf.load(record), cfg)
        if not has_trained(out):
            print(f"replacing {out}: its run never took a training step")
            shutil.rmtree(out)
            fresh = True
        elif differences:
            shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
            raise ConfigError(
                f"out: {out} holds a run with other settings: {shown}. To start a fresh run, {fresh_hint}"
            )
        elif not cfg.trainer.get("resume", True):
            raise ConfigError(f"out: {out} holds a trained run and trainer.resume=false; {fresh_hint}")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, OmegaConf.to_yaml(cfg, resolve=True))
    return fresh
