"""Conditional flow matching on the straight conditional-OT path (Lipman et al. 2023), apart
from any network; the convention of facebookresearch/flow_matching: t = 0 noise, t = 1 data.

    X_t = (1 - t) X_0 + t X_1,   X_0 ~ N(0, I),  X_1 ~ data,   u_t(X_t | X_0, X_1) = X_1 - X_0

A *velocity field* is any callable ``velocity(x, t) -> (B, ...)`` with ``t`` (B,) in [0, 1];
sampling integrates dX/dt = velocity(X, t) from t = 0 to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from voxgen.generative.sde import _expand
from voxgen.generative.solvers import odeint_counted

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CondOTPath:
    """The straight path X_t = (1 - t) X_0 + t X_1 between noise X_0 and data X_1."""

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(X_t, target velocity X_1 - X_0) for times ``t`` (B,)."""
        return (1 - _expand(t, x1)) * x0 + _expand(t, x1) * x1, x1 - x0


def flow_matching_loss(path: CondOTPath, network: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                       x1: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """|| v_theta(X_t, t) - (X_1 - X_0) ||^2 per element, t ~ U(0, 1); batch mean (scalar)."""
    t = torch.rand(x1.shape[0], generator=generator, device="cpu").to(x1.device)
    x0 = torch.randn(x1.shape, generator=generator, device="cpu").to(x1.device)
    xt, target = path.sample(x0, x1, t)
    return ((network(xt, t) - target) ** 2).mean()


@torch.no_grad()
def integrate_flow(velocity: VelocityFn, x0: torch.Tensor, method: str = "midpoint", steps: int = 20,
                   rtol: float = 1e-4, atol: float = 1e-4, progress: bool = False) -> tuple[torch.Tensor, int]:
    """(X_1, network evaluations): dX/dt = velocity(X, t) from t = 0 to 1 (``odeint_counted``; on
    a fixed grid euler costs 1 evaluation per step, midpoint 2, rk4 4). Deterministic given X_0."""
    return odeint_counted(velocity, x0, 0.0, 1.0, method, steps, rtol, atol, progress, "flow")
