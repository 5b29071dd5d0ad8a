"""Score-based VP-SDE model of 64x64 charge crops (seeds 001, 003), conditional on particle
type and momentum with classifier-free guidance.

The network predicts the noise z of X_t = alpha_t X_0 + sigma_t z, or v = alpha_t z - sigma_t X_0
(``prediction``); either way the score is -z_hat / sigma_t.
Images live in model space x in [-1, 1] (``voxgen.data.transforms.ChargeTransform``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxgen.errors import ConfigError
from voxgen.generative import solvers
from voxgen.generative.conditioning import NULL_PID, ConditionEmbedding, drop_condition
from voxgen.generative.sde import PREDICTIONS, VPSDE, ScoreFn, _expand, denoising_score_loss, noise_from_prediction
from voxgen.generative.solvers import SamplerConfig
from voxgen.nn.cond_unet import CondUNet, FourierTime


class ScoreModel2D(nn.Module):
    """``CondUNet`` noise (or v) predictor on a ``VPSDE``; ``p_uncond`` of training conditions are
    dropped to the null condition so one network gives both terms of classifier-free guidance."""

    def __init__(self, sde: VPSDE, base: int = 32, mults: tuple[int, ...] = (1, 2, 2, 2), blocks: int = 1,
                 emb_dim: int = 128, dropout: float = 0.0, p_uncond: float = 0.1, patch: int = 1,
                 prediction: str = "v") -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ConfigError(f"model.prediction: unknown '{prediction}' ({', '.join(PREDICTIONS)})")
        self.sde = sde
        self.prediction = prediction
        self.p_uncond = p_uncond
        self.patch = patch
        self.time = nn.Sequential(FourierTime(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond = ConditionEmbedding(emb_dim)
        self.net = CondUNet(patch**2, patch**2, base=base, mults=tuple(mults), blocks=blocks, emb_dim=emb_dim, dropout=dropout)

    def network(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The U-Net's prediction (B, 1, H, W) (z or v) for X_t = ``x`` (B, 1, H, W) at times ``t`` (B,).
        With ``patch`` p > 1 the U-Net works on p x p pixel blocks folded into channels (lossless,
        p^2 times cheaper)."""
        emb = self.time(t) + self.cond(pid, momentum)
        if self.patch == 1:
            return self.net(x, emb)
        return F.pixel_shuffle(self.net(F.pixel_unshuffle(x, self.patch), emb), self.patch)

    def noise(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """z_hat (B, 1, H, W) for X_t = ``x`` at times ``t`` (B,)."""
        return noise_from_prediction(self.sde, self.prediction, self.network(x, t, pid, momentum), x, t)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Denoising score matching of a batch (x (B, 1, H, W) in [-1, 1], pid (B,), momentum (B,))."""
        x, pid, momentum = batch
        pid = drop_condition(pid, self.p_uncond if self.training else 0.0)
        return {"loss": denoising_score_loss(self.sde, lambda xt, t: self.network(xt, t, pid, momentum), x, self.prediction)}

    def score_fn(self, pid: torch.Tensor, momentum: torch.Tensor, guidance: float = 0.0) -> ScoreFn:
        """score(x, t) for fixed conditions, classifier-free guided with weight ``guidance``."""
        null = torch.full_like(pid, NULL_PID)

        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if guidance == 0.0:
                z = self.noise(x, t, pid, momentum)
            else:
                both = self.noise(torch.cat([x, x]), torch.cat([t, t]), torch.cat([pid, null]), torch.cat([momentum, momentum]))
                cond, uncond = both.chunk(2)
                z = (1.0 + guidance) * cond - guidance * uncond
            return -z / _expand(self.sde.std(t), x)

        return score

    @torch.no_grad()
    def sample(self, pid: torch.Tensor, momentum: torch.Tensor, sampler: SamplerConfig, size: int = 64,
               generator: torch.Generator | None = None, progress: bool = False) -> tuple[torch.Tensor, int]:
        """(x (B, 1, size, size) in model space, network evaluations per image) for conditions
        ``pid`` (B,) (-1 = unconditional) and ``momentum`` (B,) MeV/c."""
        self.eval()
        device = next(self.parameters()).device
        pid, momentum = pid.to(device), momentum.to(device).float()
        x = self.sde.prior_sample((len(pid), 1, size, size), generator, "cpu").to(device)
        x, nfe = solvers.solve_reverse(self.sde, self.score_fn(pid, momentum, sampler.guidance), x, sampler, generator, progress)
        return x.clamp(-1.0, 1.0), nfe * (2 if sampler.guidance else 1)
