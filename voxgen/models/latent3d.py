"""Generators of the sparse autoencoder's latent grid (B, C, G, G, G), conditional on particle
type and momentum with classifier-free guidance: one 3D ``CondUNet`` trained under either
generative process (``model.process``, ``voxgen.generative.processes``).

- ``flow`` (``conf=flowmatch3d``): conditional flow matching on the straight conditional-OT path;
  the network is the velocity v(x, t), t = 0 noise, t = 1 data; sampled by an ODE solver.
- ``vpsde`` (``conf=diffusion3d``): the VP-SDE with v-prediction, sampled by the reverse-SDE /
  probability-flow solvers.

Latents are divided by ``latent_scale`` (per channel, the RMS over all sites of the training
latents) so each channel has unit variance next to the N(0, I) noise.
"""

from __future__ import annotations

import torch
from torch import nn

from voxgen.errors import ConfigError
from voxgen.generative.process import GenerativeProcess, SamplerSettings
from voxgen.generative.processes import build_process
from voxgen.models.conditional import ConditionalGenerator
from voxgen.nn.cond_unet import CondUNet


def fold(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, D, H, W) -> (B, C p^3, D/p, H/p, W/p): each p^3 block of sites into channels (lossless)."""
    b, c, d, h, w = x.shape
    x = x.reshape(b, c, d // p, p, h // p, p, w // p, p).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * p**3, d // p, h // p, w // p)


def unfold(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of ``fold``."""
    b, cp, d, h, w = x.shape
    x = x.reshape(b, cp // p**3, p, p, p, d, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, cp // p**3, d * p, h * p, w * p)


class LatentGenerator3D(ConditionalGenerator):
    """``CondUNet`` (3D) over latents of ``channels`` x ``grid``^3 under ``process``; with ``patch``
    p > 1 the U-Net sees p^3 blocks of latent sites folded into channels (p^3 times fewer sites)."""

    def __init__(
        self,
        process: GenerativeProcess,
        channels: int,
        grid: int,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks: int = 1,
        emb_dim: int = 128,
        p_uncond: float = 0.1,
        patch: int = 1,
    ) -> None:
        if grid % (patch * 2 ** (len(mults) - 1)):
            step = patch * 2 ** (len(mults) - 1)
            raise ConfigError(f"model: latent grid {grid} is not divisible by patch x 2^(levels - 1) = {step}")
        super().__init__(process, emb_dim, p_uncond)
        self.channels, self.grid, self.patch = channels, grid, patch
        folded = channels * patch**3
        # channels-last weights make the 3D convolutions run NDHWC: 0.90-0.93 x the step time of NCDHW
        # on 2 CPU cores (tools/bench_dense3d.py)
        self.net = CondUNet(folded, folded, base=base, mults=tuple(mults), blocks=blocks, emb_dim=emb_dim, dims=3).to(
            memory_format=torch.channels_last_3d
        )
        # a per-channel, time- and condition-dependent multiple of the input added to the output: the
        # optimal velocity (and v) is dominated by such a term, which the U-Net's first width need not carry
        self.input_gain = nn.Linear(emb_dim, folded)
        nn.init.zeros_(self.input_gain.weight)
        nn.init.zeros_(self.input_gain.bias)
        self.register_buffer("latent_scale", torch.ones(channels))
        self.occupancy_threshold = 0.0  # channel-0 level of an occupied site in samples (``calibrate_occupancy``)

    def set_scale(self, latents: torch.Tensor) -> None:
        """``latent_scale``: the per-channel RMS of training latents (N, C, G, G, G) over all sites,
        the latent-diffusion convention of unit variance per channel. The occupancy channel (+1/-1)
        keeps its scale; the features, 0 off the event (~1.3% of sites occupied), come out ~9
        times their on-event RMS, so the event stands far above the N(0, I) noise. (The RMS over
        the occupied sites alone was tried: it did not help, see docs/what-did-not-work.md.)"""
        self.latent_scale.copy_(latents.pow(2).mean(dim=(0, 2, 3, 4)).sqrt().clamp_min(1e-6))

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        return self.latent_scale.reshape(1, -1, 1, 1, 1).to(z)

    def to_process(self, z: torch.Tensor) -> torch.Tensor:
        return z / self._scale(z)

    def from_process(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._scale(x)

    def network(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The U-Net output (B, C, G, G, G) (velocity or v, by the process) at times ``t`` (B,)."""
        emb = self.time(t) + self.cond(pid, momentum)
        h = fold(x, self.patch) if self.patch > 1 else x
        h = self.net(h, emb) + self.input_gain(emb)[:, :, None, None, None] * h
        return unfold(h, self.patch) if self.patch > 1 else h

    @torch.no_grad()
    def sample(
        self,
        pid: torch.Tensor,
        momentum: torch.Tensor,
        sampler: SamplerSettings,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        """(latents (B, C, G, G, G) in the autoencoder's units, network evaluations per sample)."""
        return super().sample(pid, momentum, sampler, (self.channels, *(self.grid,) * 3), generator, progress)


def build_latent_generator(m, channels: int, grid: int) -> LatentGenerator3D:
    """LatentGenerator3D from its ``model`` config node for latents of ``channels`` x ``grid``^3."""
    return LatentGenerator3D(
        build_process(m.process, m),
        channels,
        grid,
        base=m.base,
        mults=tuple(m.mults),
        blocks=m.blocks,
        emb_dim=m.emb_dim,
        p_uncond=m.p_uncond,
        patch=m.patch,
    )


@torch.no_grad()
def calibrate_occupancy(
    model: LatentGenerator3D,
    occupied_fraction: float,
    pid: torch.Tensor,
    momentum: torch.Tensor,
    sampler: SamplerSettings,
    seed: int = 0,
    batch_size: int = 50,
) -> float:
    """The channel-0 level above which the same fraction of coarse sites is occupied in samples
    (conditions ``pid``, ``momentum``) as ``occupied_fraction`` of the training latents'. A
    generator trained briefly draws occupied sites short of +1 (its samples regress toward the
    mostly-empty mean), so the midpoint 0 would keep too few; this level keeps the training
    occupancy on average, the sites it keeps being the generator's likeliest."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.cat(
        [
            model.sample(pid[i : i + batch_size], momentum[i : i + batch_size], sampler, gen)[0][:, 0].flatten().cpu()
            for i in range(0, len(pid), batch_size)
        ]
    )
    return float(torch.quantile(levels, 1.0 - occupied_fraction))
