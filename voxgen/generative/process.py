"""The interface of a generative process, apart from any network.

A process turns a *network* ``out(x, t) -> (B, ...)`` (``t`` (B,) the process time) into a
training loss on data and into samples from noise. Two implement it:

- ``voxgen.generative.flow.FlowMatching``: the straight conditional-OT path, t = 0 noise to
  t = 1 data; the network is the velocity, sampling integrates dX/dt = out(X, t).
- ``voxgen.generative.score_sde.ScoreSDE``: the VP-SDE, t = T noise to t = eps data; the network
  predicts the noise or v, sampling solves the reverse SDE or the probability-flow ODE.

Each process has its own sampler settings (a ``SamplerSettings`` subclass beside its solver);
models and pipelines only call ``loss``, ``sample``, ``sampler_settings`` and ``data_estimate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # out(x (B, ...), t (B,)) -> (B, ...)


def batch_expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), broadcastable against ``like`` (B, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def group_times(
    x: torch.Tensor, generator: torch.Generator | None = None, groups: torch.Tensor | None = None, low: float = 0.0
) -> torch.Tensor:
    """(N,) process times U(``low``, 1) for the rows of ``x`` (N, ...): one per row, or with ``groups``
    (N,) int64 one per group, shared by its rows (a sample spread over rows, as a sparse event's
    sites). Drawn on the CPU from ``generator``."""
    n = x.shape[0] if groups is None else (int(groups.max()) + 1 if len(groups) else 0)
    t = low + (1.0 - low) * torch.rand(n, generator=generator, device="cpu").to(x.device)
    return t if groups is None else t[groups]


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values`` (N,), weighted by ``weights`` (N,) when given (scalar)."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


@dataclass
class SamplerSettings:
    """Settings every sampler shares: ``guidance`` the classifier-free guidance weight w
    (out = (1 + w) out_cond - w out_uncond; 0 = plain conditional, 1 network evaluation per
    solver evaluation, else 2); ``ema`` sample with the EMA weights when the run kept them."""

    guidance: float = 0.0
    ema: bool = True


class GenerativeProcess(Protocol):
    """What a model needs of a process: its training loss and its sampler."""

    def loss(
        self,
        network: Network,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        groups: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar training loss of ``network`` on data ``x`` (B, ...): time, noise and target drawn
        here; the time per row, or per group of rows when ``groups`` (B,) int64 is given; rows
        weighted by ``weights`` (B,) when given."""

    def data_estimate(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's estimate of the data-side end of the process from its output ``out`` at
        X_t = ``x``, times ``t`` (B,) (self-conditioning)."""

    def sample(
        self,
        network: Network,
        noise: torch.Tensor,
        settings: Any,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        """(data-side end of the process (B, ...), network evaluations) from ``noise`` ~ N(0, I)."""

    def sampler_settings(self, options: Mapping[str, Any]) -> SamplerSettings:
        """The typed sampler settings of this process from a ``sampler`` config node's entries."""
