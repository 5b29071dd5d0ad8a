"""Multi-stage jobs composed above ``voxgen.train``, ``voxgen.sample`` and ``voxgen.evaluate``
(which never import this package), and the dispatch of ``voxgen train`` to a model's recipe."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from voxgen.errors import ConfigError
from voxgen.io.atomic import write_text_atomic
from voxgen.runs import MODELS
from voxgen.train.loop import MetricsCallback


def run_training(cfg: DictConfig, on_metrics: MetricsCallback | None = None) -> dict:
    """Train ``cfg.model.name`` by its registered recipe (``voxgen.runs.MODELS``) into ``cfg.out``:
    the resolved config first (``config.yaml``), then the recipe's outputs; returns its figures."""
    name = cfg.model.name
    if name not in MODELS:
        raise ConfigError(f"model.name: no training recipe for '{name}' (have {', '.join(MODELS)})")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    module, function = MODELS[name].recipe.split(":")
    return getattr(import_module(module), function)(cfg, out, on_metrics)
