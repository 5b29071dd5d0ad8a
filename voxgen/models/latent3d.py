"""Generators of the sparse autoencoder's latent grid (B, C, G, G, G), conditional on particle
type and momentum with classifier-free guidance: one 3D ``CondUNet`` trained under either
generative process.

- ``flow`` (``conf=flowmatch3d``): conditional flow matching on the straight conditional-OT path;
  the network is the velocity v(x, t), t = 0 noise, t = 1 data; sampled by an ODE solver.
- ``vpsde`` (``conf=diffusion3d``): the VP-SDE with v-prediction, sampled by the shared
  reverse-SDE / probability-flow solvers.

Latents are divided by ``latent_scale`` (per channel, the RMS over all sites of the training
latents) so each channel has unit variance next to the N(0, I) noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from voxgen.errors import ConfigError
from voxgen.generative import solvers
from voxgen.generative.conditioning import NULL_PID, ConditionEmbedding, drop_condition
from voxgen.generative.flow import CondOTPath, flow_matching_loss, integrate_flow
from voxgen.generative.sde import VPSDE, _expand, denoising_score_loss, noise_from_prediction
from voxgen.generative.solvers import FIXED_GRID, SAMPLERS, SamplerConfig
from voxgen.nn.cond_unet import CondUNet, FourierTime

PROCESSES = ("flow", "vpsde")
LatentBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # z (B, C, G, G, G), pid (B,), momentum (B,) MeV/c


@dataclass
class FlowSamplerConfig:
    """ODE solve of a flow: torchdiffeq ``method`` (fixed grid: euler, midpoint, rk4 over ``steps``
    intervals; adaptive: dopri5, bosh3 with ``rtol``/``atol``); ``guidance`` CFG weight w
    (v = (1 + w) v_cond - w v_uncond)."""

    method: str = "midpoint"
    steps: int = 20
    guidance: float = 0.0
    rtol: float = 1e-4
    atol: float = 1e-4

    def __post_init__(self) -> None:
        if self.method not in FIXED_GRID + ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2"):
            raise ConfigError(f"sampler.method: unknown ODE method '{self.method}' (euler, midpoint, rk4, dopri5, ...)")
        if self.steps < 1:
            raise ConfigError(f"sampler.steps: {self.steps} < 1")


def sampler_config(process: str, options: dict) -> FlowSamplerConfig | SamplerConfig:
    """The typed sampler settings of a process from a ``sampler`` config node's entries."""
    options = {k: v for k, v in options.items() if k != "ema"}
    if process == "flow":
        if options.get("method") in SAMPLERS:
            raise ConfigError(f"sampler: '{options['method']}' solves a VP-SDE; a flow takes an ODE method (sampler=flow)")
        return FlowSamplerConfig(**options)
    return SamplerConfig(**options)


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


class LatentGenerator3D(nn.Module):
    """``CondUNet`` (3D) over latents of ``channels`` x ``grid``^3 under ``process``; with ``patch``
    p > 1 the U-Net sees p^3 blocks of latent sites folded into channels (p^3 times fewer sites)."""

    def __init__(self, process: str, channels: int, grid: int, base: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 blocks: int = 1, emb_dim: int = 128, p_uncond: float = 0.1, patch: int = 1, sde: VPSDE | None = None) -> None:
        super().__init__()
        if process not in PROCESSES:
            raise ConfigError(f"model.process: unknown '{process}' ({', '.join(PROCESSES)})")
        if grid % (patch * 2 ** (len(mults) - 1)):
            raise ConfigError(f"model: latent grid {grid} is not divisible by patch x 2^(levels - 1) = {patch * 2 ** (len(mults) - 1)}")
        self.process, self.channels, self.grid, self.p_uncond, self.patch = process, channels, grid, p_uncond, patch
        self.sde, self.path = sde or VPSDE(), CondOTPath()
        self.time = nn.Sequential(FourierTime(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond = ConditionEmbedding(emb_dim)
        folded = channels * patch**3
        # channels-last weights make the 3D convolutions run NDHWC: 0.90-0.93 x the step time of NCDHW on 2 CPU cores (tools/bench_dense3d.py)
        self.net = CondUNet(folded, folded, base=base, mults=tuple(mults), blocks=blocks, emb_dim=emb_dim,
                            dims=3).to(memory_format=torch.channels_last_3d)
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
        the occupied sites alone was tried: it did not help, see the README's 3D section.)"""
        self.latent_scale.copy_(latents.pow(2).mean(dim=(0, 2, 3, 4)).sqrt().clamp_min(1e-6))

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        return self.latent_scale.reshape(1, -1, 1, 1, 1).to(z)

    def network(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The U-Net output (B, C, G, G, G): velocity (flow) or v-prediction (vpsde) at times ``t`` (B,)."""
        emb = self.time(t) + self.cond(pid, momentum)
        h = fold(x, self.patch) if self.patch > 1 else x
        h = self.net(h, emb) + self.input_gain(emb)[:, :, None, None, None] * h
        return unfold(h, self.patch) if self.patch > 1 else h

    def loss(self, batch: LatentBatch) -> dict[str, torch.Tensor]:
        """Flow-matching or denoising loss on a batch of latents (dropping ``p_uncond`` conditions)."""
        z, pid, momentum = batch
        x = z / self._scale(z)
        pid = drop_condition(pid, self.p_uncond if self.training else 0.0)
        net = lambda xt, t: self.network(xt, t, pid, momentum)
        if self.process == "flow":
            return {"loss": flow_matching_loss(self.path, net, x)}
        return {"loss": denoising_score_loss(self.sde, net, x, prediction="v")}

    def guided(self, pid: torch.Tensor, momentum: torch.Tensor, guidance: float):
        """``out(x, t)``: the network output for fixed conditions with classifier-free guidance
        (1 + w) out_cond - w out_uncond (linear in the output, so it holds for velocity and v)."""
        null = torch.full_like(pid, NULL_PID)

        def out(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if guidance == 0.0:
                return self.network(x, t, pid, momentum)
            both = self.network(torch.cat([x, x]), torch.cat([t, t]), torch.cat([pid, null]), torch.cat([momentum, momentum]))
            cond, uncond = both.chunk(2)
            return (1.0 + guidance) * cond - guidance * uncond

        return out

    @torch.no_grad()
    def sample(self, pid: torch.Tensor, momentum: torch.Tensor, sampler: FlowSamplerConfig | SamplerConfig,
               generator: torch.Generator | None = None, progress: bool = False) -> tuple[torch.Tensor, int]:
        """(latents (B, C, G, G, G) in the autoencoder's units, network evaluations per sample)
        for conditions ``pid`` (B,) (-1 = unconditional) and ``momentum`` (B,) MeV/c."""
        self.eval()
        device = self.latent_scale.device
        pid, momentum = pid.to(device), momentum.to(device).float()
        noise = torch.randn((len(pid), self.channels, *(self.grid,) * 3), generator=generator).to(device)
        out = self.guided(pid, momentum, sampler.guidance)
        if self.process == "flow":
            x, nfe = integrate_flow(out, noise, sampler.method, sampler.steps, sampler.rtol, sampler.atol, progress)
        else:
            def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return -noise_from_prediction(self.sde, "v", out(x, t), x, t) / _expand(self.sde.std(t), x)

            x, nfe = solvers.solve_reverse(self.sde, score, noise, sampler, generator, progress)
        return x * self._scale(x), nfe * (2 if sampler.guidance else 1)


def build_latent_generator(m, channels: int, grid: int) -> LatentGenerator3D:
    """LatentGenerator3D from its ``model`` config node for latents of ``channels`` x ``grid``^3."""
    sde = VPSDE(beta_min=m.sde.beta_min, beta_max=m.sde.beta_max) if m.process == "vpsde" else None
    return LatentGenerator3D(m.process, channels, grid, base=m.base, mults=tuple(m.mults), blocks=m.blocks,
                             emb_dim=m.emb_dim, p_uncond=m.p_uncond, patch=m.patch, sde=sde)


@torch.no_grad()
def calibrate_occupancy(model: LatentGenerator3D, occupied_fraction: float, pid: torch.Tensor, momentum: torch.Tensor,
                        sampler: FlowSamplerConfig | SamplerConfig, seed: int = 0, batch_size: int = 50) -> float:
    """The channel-0 level above which the same fraction of coarse sites is occupied in samples
    (conditions ``pid``, ``momentum``) as ``occupied_fraction`` of the training latents'. A
    generator trained briefly draws occupied sites short of +1 (its samples regress toward the
    mostly-empty mean), so the midpoint 0 would keep too few; this level keeps the training
    occupancy on average, the sites it keeps being the generator's likeliest."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.cat([model.sample(pid[i:i + batch_size], momentum[i:i + batch_size], sampler, gen)[0][:, 0].flatten().cpu()
                        for i in range(0, len(pid), batch_size)])
    return float(torch.quantile(levels, 1.0 - occupied_fraction))
