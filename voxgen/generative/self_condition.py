"""Self-conditioning (Chen et al. 2022, "Analog Bits: Generating Discrete Data using Diffusion
Models with Self-Conditioning", arXiv:2208.04202), apart from any network and process.

A self-conditioned network ``net(x, t, estimate)`` is also fed an estimate of the data (the
process's ``data_estimate`` of its own output). Training: for a share ``p`` of the samples the
estimate comes from a first, gradient-free pass of the same network at the same X_t, for the rest
it is zero. Sampling: every evaluation is fed the estimate of the evaluation before it (zero at
the first). On bits (+-1 occupancy) the network thereby refines a committed layout instead of
redrawing it at every step, which the Analog Bits paper found decisive for discrete data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from voxgen.generative.process import GenerativeProcess, Network, group_times

SelfConditionedNetwork = Callable[..., torch.Tensor]  # net(x (B, ...), t (B,), estimate (B, ...), *rest)


def training_network(
    network: SelfConditionedNetwork,
    process: GenerativeProcess,
    p: float,
    groups: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Network:
    """``out(x, t)`` for a process's loss: for a share ``p`` of the rows (of the groups, with
    ``groups`` (B,) int64: a sparse event's sites) fed the data estimate of a gradient-free first
    pass, the others a zero estimate."""

    def out(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        estimate = torch.zeros_like(x)
        if p > 0:
            with torch.no_grad():
                first = process.data_estimate(network(x, t, estimate), x, t)
            keep = group_times(x, generator, groups) < p  # one draw per row or per group
            estimate = first * keep.reshape(-1, *([1] * (x.dim() - 1)))
        return network(x, t, estimate)

    return out


def sampling_network(network: SelfConditionedNetwork, process: GenerativeProcess) -> SelfConditionedNetwork:
    """``out(x, t, *rest)`` for a solver: each call fed the data estimate of the call before it
    (zero at the first, and whenever the batch's shape changes, as between guided and plain
    calls)."""
    state: dict[tuple[int, ...], torch.Tensor] = {}

    def out(x: torch.Tensor, t: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        estimate = state.get(tuple(x.shape), torch.zeros_like(x))
        result = network(x, t, estimate, *rest)
        state[tuple(x.shape)] = process.data_estimate(result, x, t)
        return result

    return out
