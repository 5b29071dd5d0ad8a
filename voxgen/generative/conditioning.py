"""Conditioning on particle type and momentum, with the null condition of classifier-free guidance.

A condition is a pair of tensors: ``pid`` (B,) int64 PILArNet PID (0 photon, 1 electron, 2 muon,
3 pion, 4 proton; ``NULL_PID`` = -1 for "no condition") and ``momentum`` (B,) float MeV/c.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxgen.errors import ConfigError

PARTICLES: dict[str, int] = {"photon": 0, "electron": 1, "muon": 2, "pion": 3, "proton": 4}
N_PARTICLES = len(PARTICLES)
NULL_PID = -1
# Aliases physicists type: the simulator's species names.
_ALIASES = {"gamma": "photon", "e-": "electron", "mu-": "muon", "pi+": "pion", "p": "proton"}


def particle_pid(name: str) -> int:
    """PID of a particle name (``muon``, ``mu-``, ``electron``, ...); ConfigError if unknown."""
    key = _ALIASES.get(str(name), str(name))
    if key not in PARTICLES:
        raise ConfigError(f"cond.particle: unknown particle '{name}' (one of {', '.join(PARTICLES)})")
    return PARTICLES[key]


def drop_condition(pid: torch.Tensor, p_uncond: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``pid`` with each entry replaced by ``NULL_PID`` with probability ``p_uncond`` (CFG training)."""
    if p_uncond <= 0:
        return pid
    drop = torch.rand(pid.shape, generator=generator, device="cpu").to(pid.device) < p_uncond
    return torch.where(drop, torch.full_like(pid, NULL_PID), pid)


class ConditionEmbedding(nn.Module):
    """(pid (B,), momentum (B,) MeV/c) -> (B, dim).

    A learned embedding of the particle type (``N_PARTICLES`` species plus the null token) plus
    an MLP of random Fourier features of log(p / 100 MeV/c). The null condition (pid -1)
    ignores the momentum, so the unconditional model is one learned vector.
    """

    def __init__(self, dim: int, n_fourier: int = 16, fourier_scale: float = 1.0) -> None:
        super().__init__()
        self.particle = nn.Embedding(N_PARTICLES + 1, dim)
        self.register_buffer(
            "freqs", torch.randn(n_fourier, generator=torch.Generator().manual_seed(0)) * fourier_scale
        )
        self.momentum = nn.Sequential(nn.Linear(2 * n_fourier, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        null = pid < 0
        index = torch.where(null, torch.full_like(pid, N_PARTICLES), pid).long()
        logp = torch.log(momentum.float().clamp_min(1.0) / 100.0)
        angles = 2 * math.pi * logp[:, None] * self.freqs[None]
        p_emb = self.momentum(torch.cat([angles.sin(), angles.cos()], dim=1))
        return self.particle(index) + p_emb * (~null).float()[:, None]
