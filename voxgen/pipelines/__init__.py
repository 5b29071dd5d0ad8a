"""Multi-stage jobs composed above ``voxgen.train``, ``voxgen.sample`` and ``voxgen.evaluate``
(which never import this package), and the dispatch of ``voxgen train`` to a model's recipe."""

from __future__ import annotations

import shutil
from importlib import import_module
from pathlib import Path

from omegaconf import DictConfig

from voxgen.config import from_node
from voxgen.errors import ConfigError, VoxgenError
from voxgen.pipelines.resume import claim_run_folder, has_trained
from voxgen.runs import MODELS
from voxgen.train.loop import MetricsCallback, TrainerConfig


def check_training(cfg: DictConfig) -> None:
    """ConfigError naming the key when ``cfg`` cannot train: unknown model, trainer ranges, batch size."""
    name = cfg.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name: no training recipe for '{name}' (have {', '.join(MODELS)})")
    from_node(TrainerConfig, cfg.trainer)  # range checks before anything is written
    if "batch_size" in cfg and cfg.batch_size < 1:
        raise ConfigError(f"batch_size: {cfg.batch_size}; must be at least 1")


def run_training(cfg: DictConfig, on_metrics: MetricsCallback | None = None) -> dict:
    """Train ``cfg.model.name`` by its registered recipe (``voxgen.runs.MODELS``) into ``cfg.out``:
    the resolved config first (``config.yaml``), then the recipe's outputs; returns its figures.

    The folder is claimed first (``claim_run_folder``: a new run, or the same run resumed); a new
    run that stops on bad input before its first training step leaves no folder behind."""
    check_training(cfg)
    fresh = claim_run_folder(cfg)
    out = Path(cfg.out)
    try:
        return run_recipe(cfg, on_metrics)
    except VoxgenError:
        if fresh and not has_trained(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def run_recipe(cfg: DictConfig, on_metrics: MetricsCallback | None = None) -> dict:
    """The registered recipe of ``cfg.model.name`` into the already claimed folder ``cfg.out``."""
    module, function = MODELS[cfg.model.name].recipe.split(":")
    return getattr(import_module(module), function)(cfg, Path(cfg.out), on_metrics)
