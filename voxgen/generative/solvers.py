"""Samplers of the reverse VP-SDE: Euler-Maruyama (Imani et al., arXiv:2307.13687), predictor-corrector, and the
probability-flow ODE through torchdiffeq. Each takes any score function ``score(x, t)`` and
returns (samples, number of score evaluations)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm import tqdm

from voxgen.errors import ConfigError
from voxgen.generative.process import SamplerSettings, batch_expand
from voxgen.generative.sde import VPSDE, ScoreFn

FIXED_GRID = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")
ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
MAX_ADAPTIVE_STEPS = 1000
TIME_BAR = "{l_bar}{bar}| t {n:.2f}/{total:g} [{elapsed}<{remaining}{postfix}]"  # adaptive solves


SAMPLERS = ("euler_maruyama", "predictor_corrector", "ode")


@dataclass
class SamplerConfig(SamplerSettings):
    """How to solve the reverse VP-SDE: ``method`` one of ``SAMPLERS``; ``steps`` time steps
    (fixed-grid ODE methods too); ``eps`` final time (1e-3 in Imani et al., arXiv:2307.13687);
    ``snr``/``corrector_steps`` for predictor-corrector; ``ode_method``/``rtol``/``atol`` for
    torchdiffeq; ``guidance``/``ema`` as in ``SamplerSettings``."""

    method: str = "euler_maruyama"
    steps: int = 1000
    eps: float = 1e-3
    snr: float = 0.16
    corrector_steps: int = 1
    ode_method: str = "dopri5"
    rtol: float = 1e-4
    atol: float = 1e-4

    def __post_init__(self) -> None:
        if self.method not in SAMPLERS:
            raise ConfigError(f"sampler.method: unknown sampler '{self.method}' ({', '.join(SAMPLERS)})")
        if self.steps < 2:
            raise ConfigError(f"sampler.steps: {self.steps} < 2")


def _times(sde: VPSDE, steps: int, eps: float, device) -> torch.Tensor:
    """t_i = T + (i - M) dt, i = M..1, dt = -(T - eps) / (M - 1): M times from T down to eps."""
    return torch.linspace(sde.T, eps, steps, device=device)


@torch.no_grad()
def euler_maruyama(
    sde: VPSDE,
    score: ScoreFn,
    x: torch.Tensor,
    steps: int = 1000,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """The Euler-Maruyama sampler of Imani et al. (arXiv:2307.13687) from X_T = ``x``: with
    dt = -(T - eps)/(M - 1) and M = ``steps``,

        mu = X_{t_i} + [-1/2 beta(t_i) X_{t_i} - beta(t_i) s(X_{t_i}, t_i)] dt,
        X_{t_{i-1}} = mu + z sqrt(-beta(t_i) dt),   z ~ N(0, I);

    the last step returns mu (no noise added at t = eps). M score evaluations.
    """
    dt = -(sde.T - eps) / (steps - 1)
    mean = x
    for t in tqdm(_times(sde, steps, eps, x.device), desc="euler-maruyama", disable=not progress, leave=False):
        tt = t.expand(x.shape[0])
        mean = x + sde.reverse_drift(score, x, tt) * dt
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        x = mean + batch_expand(torch.sqrt(sde.beta(tt) * -dt), x) * noise
    return mean, steps


@torch.no_grad()
def predictor_corrector(
    sde: VPSDE,
    score: ScoreFn,
    x: torch.Tensor,
    steps: int = 1000,
    eps: float = 1e-3,
    snr: float = 0.16,
    corrector_steps: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """Song et al.'s PC sampler: a Langevin corrector (``corrector_steps`` per time, step size from
    the signal-to-noise ratio ``snr``) followed by an Euler-Maruyama predictor step.
    (1 + corrector_steps) score evaluations per time."""
    dt = -(sde.T - eps) / (steps - 1)
    mean = x
    randn = lambda: torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
    for t in tqdm(_times(sde, steps, eps, x.device), desc="predictor-corrector", disable=not progress, leave=False):
        tt = t.expand(x.shape[0])
        alpha = torch.exp(2.0 * sde.log_mean_coeff(tt))  # 1 - beta_i of the discrete chain
        for _ in range(corrector_steps):
            grad, z = score(x, tt), randn()
            grad_norm = grad.reshape(len(x), -1).norm(dim=1).mean()
            noise_norm = z.reshape(len(x), -1).norm(dim=1).mean()
            step = 2 * alpha * (snr * noise_norm / grad_norm) ** 2
            x = x + batch_expand(step, x) * grad + batch_expand(torch.sqrt(2 * step), x) * z
        mean = x + sde.reverse_drift(score, x, tt) * dt
        x = mean + batch_expand(torch.sqrt(sde.beta(tt) * -dt), x) * randn()
    return mean, steps * (1 + corrector_steps)


def _time_bar(method: str, steps: int, label: str, progress: bool) -> tqdm:
    """A bar over the integration: ``steps`` steps on a fixed grid; for an adaptive method, the
    fraction of the time interval covered (0 to 1). Either carries the evaluation count."""
    if method in FIXED_GRID:
        return tqdm(total=steps, desc=f"{label} {method}", unit="step", disable=not progress, leave=False)
    return tqdm(total=1.0, desc=f"{label} {method}", bar_format=TIME_BAR, disable=not progress, leave=False)


def odeint_counted(
    field,
    x: torch.Tensor,
    t0: float,
    t1: float,
    method: str,
    steps: int,
    rtol: float,
    atol: float,
    progress: bool = False,
    label: str = "ode",
) -> tuple[torch.Tensor, int]:
    """(X(t1), evaluations of ``field``): dX/dt = field(X, t) with ``t`` (B,) from ``t0`` by
    torchdiffeq, on a fixed grid of ``steps`` intervals (euler, midpoint, rk4) or adaptively
    (dopri5, bosh3, ... with ``rtol``/``atol``; steps never shorter than |t1 - t0| /
    ``MAX_ADAPTIVE_STEPS``, so a stiff stretch costs steps, never an underflow)."""
    from torchdiffeq import odeint

    nfe, bar = 0, _time_bar(method, steps, label, progress)

    def counted(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        if not bar.disable:  # furthest time reached, in steps (fixed grid) or as a fraction of the interval
            reached = min(abs(float(t) - t0) / abs(t1 - t0), 1.0) * bar.total
            reached = math.floor(reached + 1e-9) if method in FIXED_GRID else reached
            bar.update(max(reached - bar.n, 0))
            bar.set_postfix(nfe=nfe, refresh=False)
        return field(y, t.expand(y.shape[0]))

    span = torch.tensor([t0, t1], device=x.device, dtype=x.dtype)
    if method in FIXED_GRID:
        options, kwargs = {"step_size": abs(t1 - t0) / steps}, {}
    else:
        options, kwargs = {"min_step": abs(t1 - t0) / MAX_ADAPTIVE_STEPS}, {"rtol": rtol, "atol": atol}
    with bar:
        out = odeint(counted, x, span, method=method, options=options, **kwargs)[-1]
        bar.update(bar.total - bar.n)
    return out, nfe


@torch.no_grad()
def probability_flow(
    sde: VPSDE,
    score: ScoreFn,
    x: torch.Tensor,
    eps: float = 1e-3,
    method: str = "dopri5",
    steps: int = 100,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """Integrate the probability-flow ODE dX/dt = -1/2 beta (X + s(X, t)) from T to ``eps``
    (``odeint_counted``). Deterministic given X_T."""
    field = lambda y, t: sde.reverse_drift(score, y, t, ode=True)
    return odeint_counted(field, x, sde.T, eps, method, steps, rtol, atol, progress, "ode")


def solve_reverse(
    sde: VPSDE,
    score: ScoreFn,
    x: torch.Tensor,
    sampler: SamplerConfig,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """(X at t = eps, score evaluations): the reverse process from X_T = ``x`` by ``sampler.method``."""
    if sampler.method == "euler_maruyama":
        return euler_maruyama(sde, score, x, sampler.steps, sampler.eps, generator, progress)
    if sampler.method == "predictor_corrector":
        return predictor_corrector(
            sde, score, x, sampler.steps, sampler.eps, sampler.snr, sampler.corrector_steps, generator, progress
        )
    return probability_flow(
        sde, score, x, sampler.eps, sampler.ode_method, sampler.steps, sampler.rtol, sampler.atol, progress
    )
