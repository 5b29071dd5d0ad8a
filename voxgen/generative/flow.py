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
from tqdm import tqdm

from voxgen.generative.sde import _expand
from voxgen.generative.solvers import FIXED_GRID, MAX_ADAPTIVE_STEPS

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
    """(X_1, network evaluations): dX/dt = velocity(X, t) from t = 0 to 1 by torchdiffeq, on a
    fixed grid of ``steps`` intervals (euler: ``steps`` evaluations, midpoint: 2 per step, rk4: 4)
    or adaptively (dopri5, bosh3, ... with ``rtol``/``atol``; steps never shorter than
    1 / ``MAX_ADAPTIVE_STEPS``). Deterministic given X_0."""
    from torchdiffeq import odeint

    nfe = 0
    bar = tqdm(desc=f"flow {method}", unit="nfe", disable=not progress, leave=False)

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        bar.update()
        return velocity(y, t.expand(y.shape[0]))

    span = torch.tensor([0.0, 1.0], device=x0.device, dtype=x0.dtype)
    if method in FIXED_GRID:
        options, kwargs = {"step_size": 1.0 / steps}, {}
    else:
        options, kwargs = {"min_step": 1.0 / MAX_ADAPTIVE_STEPS}, {"rtol": rtol, "atol": atol}
    out = odeint(field, x0, span, method=method, options=options, **kwargs)[-1]
    bar.close()
    return out, nfe
