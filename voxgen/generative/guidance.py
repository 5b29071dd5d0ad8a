"""Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598), the one place it is written.

A conditional network ``net(*inputs, pid, momentum)`` (``inputs`` e.g. x and t of a diffusion or
flow, the code rows of the PixelCNN) trained with a fraction of its conditions dropped to the
null condition gives both terms; guided output with weight w:

    out(*inputs) = (1 + w) net(*inputs, c) - w net(*inputs, null)

It is linear in the output, so it holds alike for a velocity, a noise or v prediction, or logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from voxgen.generative.conditioning import NULL_PID
from voxgen.generative.process import Network

ConditionalNetwork = Callable[..., torch.Tensor]  # net(*inputs (B, ...), pid (B,), momentum (B,)) -> (B, ...)


def classifier_free(network: ConditionalNetwork, pid: torch.Tensor, momentum: torch.Tensor, weight: float) -> Network:
    """``out(*inputs)`` for fixed conditions ``pid`` (B,), ``momentum`` (B,) MeV/c, guided with
    ``weight`` (0: the plain conditional network, one evaluation; else one batched evaluation of
    twice the size)."""
    null = torch.full_like(pid, NULL_PID)

    def out(*inputs: torch.Tensor) -> torch.Tensor:
        if weight == 0.0:
            return network(*inputs, pid, momentum)
        doubled = (torch.cat([a, a]) for a in inputs)
        cond, uncond = network(*doubled, torch.cat([pid, null]), torch.cat([momentum, momentum])).chunk(2)
        return (1.0 + weight) * cond - weight * uncond

    return out


def evaluations(nfe: int, weight: float) -> int:
    """Network evaluations per sample of a solve that called the guided network ``nfe`` times."""
    return nfe * (2 if weight else 1)
