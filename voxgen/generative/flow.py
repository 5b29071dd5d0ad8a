"""Conditional flow matching on the straight conditional-OT path (Lipman et al. 2023), apart
from any network; the convention of facebookresearch/flow_matching: t = 0 noise, t = 1 data.

    X_t = (1 - t) X_0 + t X_1,   X_0 ~ N(0, I),  X_1 ~ data,   u_t(X_t | X_0, X_1) = X_1 - X_0

A *velocity field* is any callable ``velocity(x, t) -> (B, ...)`` with ``t`` (B,) in [0, 1];
sampling integrates dX/dt = velocity(X, t) from t = 0 to 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from voxgen.errors import ConfigError
from voxgen.generative.process import Network, SamplerSettings, batch_expand, group_times, weighted_mean
from voxgen.generative.solvers import ADAPTIVE, FIXED_GRID, SAMPLERS, odeint_counted


@dataclass(frozen=True)
class CondOTPath:
    """The straight path X_t = (1 - t) X_0 + t X_1 between noise X_0 and data X_1."""

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(X_t, target velocity X_1 - X_0) for times ``t`` (B,)."""
        return (1 - batch_expand(t, x1)) * x0 + batch_expand(t, x1) * x1, x1 - x0


def flow_matching_loss(
    path: CondOTPath,
    network: Network,
    x1: torch.Tensor,
    generator: torch.Generator | None = None,
    groups: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """|| v_theta(X_t, t) - (X_1 - X_0) ||^2 per element, t ~ U(0, 1) per row of ``x1`` or, with
    ``groups`` (N,) int64, per group of rows (one sample spread over rows: a sparse event's sites);
    the mean over rows, weighted by ``weights`` (N,) when given (scalar)."""
    t = group_times(x1, generator, groups)
    x0 = torch.randn(x1.shape, generator=generator, device="cpu").to(x1.device)
    xt, target = path.sample(x0, x1, t)
    return weighted_mean(((network(xt, t) - target) ** 2).reshape(len(x1), -1).mean(dim=1), weights)


@dataclass
class FlowSamplerConfig(SamplerSettings):
    """ODE solve of a flow: torchdiffeq ``method`` (fixed grid: euler, midpoint, rk4 over ``steps``
    intervals; adaptive: dopri5, bosh3, ... with ``rtol``/``atol``)."""

    method: str = "midpoint"
    steps: int = 20
    rtol: float = 1e-4
    atol: float = 1e-4

    def __post_init__(self) -> None:
        if self.method in SAMPLERS:
            raise ConfigError(f"sampler: '{self.method}' solves a VP-SDE; a flow takes an ODE method (sampler=flow)")
        if self.method not in FIXED_GRID + ADAPTIVE:
            raise ConfigError(f"sampler.method: unknown ODE method '{self.method}' (euler, midpoint, rk4, dopri5, ...)")
        if self.steps < 1:
            raise ConfigError(f"sampler.steps: {self.steps} < 1")


@torch.no_grad()
def integrate_flow(
    velocity: Network,
    x0: torch.Tensor,
    method: str = "midpoint",
    steps: int = 20,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """(X_1, network evaluations): dX/dt = velocity(X, t) from t = 0 to 1 (``odeint_counted``; on
    a fixed grid euler costs 1 evaluation per step, midpoint 2, rk4 4). Deterministic given X_0."""
    return odeint_counted(velocity, x0, 0.0, 1.0, method, steps, rtol, atol, progress, "flow")


@dataclass(frozen=True)
class FlowMatching:
    """Flow matching as a generative process (``voxgen.generative.process``): the network is
    the velocity v_theta(X_t, t), trained on ``path``'s target X_1 - X_0; samples are X_1 of the
    ODE dX/dt = v_theta(X, t) from X_0 = noise."""

    path: CondOTPath = field(default_factory=CondOTPath)

    def loss(
        self,
        network: Network,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        groups: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return flow_matching_loss(self.path, network, x, generator, groups, weights)

    def data_estimate(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """X_1 estimated from the velocity ``out`` at X_t = ``x``: x + (1 - t) out."""
        return x + batch_expand(1.0 - t, x) * out

    def sample(
        self,
        network: Network,
        noise: torch.Tensor,
        settings: FlowSamplerConfig,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        return integrate_flow(network, noise, settings.method, settings.steps, settings.rtol, settings.atol, progress)

    def sampler_settings(self, options: Mapping[str, Any]) -> FlowSamplerConfig:
        return FlowSamplerConfig(**options)
