"""The VP-SDE as a generative process (``voxgen.generative.process``): denoising score matching
for training, the reverse SDE or the probability-flow ODE for sampling (Song et al. 2021,
arXiv:2011.13456; the SDE object and its samplers stay apart from the network, as in
yang-song/score_sde_pytorch).

The network predicts the noise z of X_t = alpha_t X_0 + sigma_t z, or v = alpha_t z - sigma_t X_0
(``prediction``); either way the score is -z_hat / sigma_t.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from voxgen.errors import ConfigError
from voxgen.generative.process import Network, batch_expand
from voxgen.generative.sde import (
    PREDICTIONS,
    VPSDE,
    ScoreFn,
    data_from_prediction,
    denoising_score_loss,
    noise_from_prediction,
)
from voxgen.generative.solvers import SamplerConfig, solve_reverse


@dataclass(frozen=True)
class ScoreSDE:
    """``sde`` with a network that predicts ``prediction`` (``noise`` or ``v``)."""

    sde: VPSDE = field(default_factory=VPSDE)
    prediction: str = "v"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"model.prediction: unknown '{self.prediction}' ({', '.join(PREDICTIONS)})")

    def loss(
        self,
        network: Network,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        groups: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return denoising_score_loss(
            self.sde, network, x, self.prediction, generator=generator, groups=groups, weights=weights
        )

    def data_estimate(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """X_0 estimated from the network output ``out`` at X_t = ``x``."""
        return data_from_prediction(self.sde, self.prediction, out, x, t)

    def score(self, network: Network) -> ScoreFn:
        """score(x, t) = -z_hat / sigma_t of a network output."""
        return lambda x, t: (
            -noise_from_prediction(self.sde, self.prediction, network(x, t), x, t) / batch_expand(self.sde.std(t), x)
        )

    def sample(
        self,
        network: Network,
        noise: torch.Tensor,
        settings: SamplerConfig,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        return solve_reverse(self.sde, self.score(network), noise, settings, generator, progress)

    def sampler_settings(self, options: Mapping[str, Any]) -> SamplerConfig:
        return SamplerConfig(**options)
