"""The registry of generative processes: a model config's ``process`` name -> the process object."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from voxgen.errors import ConfigError
from voxgen.generative.flow import FlowMatching
from voxgen.generative.process import GenerativeProcess
from voxgen.generative.score_sde import ScoreSDE
from voxgen.generative.sde import VPSDE

PROCESSES: dict[str, Callable[[DictConfig], GenerativeProcess]] = {
    "flow": lambda m: FlowMatching(),
    "vpsde": lambda m: ScoreSDE(VPSDE(m.sde.beta_min, m.sde.beta_max), m.get("prediction", "v")),
}


def build_process(name: str, m: DictConfig) -> GenerativeProcess:
    """The process ``name`` with its settings from the model config node ``m`` (``m.sde`` for
    the VP-SDE, ``m.prediction`` its network output, v by default)."""
    if name not in PROCESSES:
        raise ConfigError(f"model.process: unknown '{name}' ({', '.join(PROCESSES)})")
    return PROCESSES[name](m)
