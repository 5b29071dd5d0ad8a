"""Score-based VP-SDE model of 64x64 charge crops (Imani et al., arXiv:2307.13687), conditional on
particle type and momentum with classifier-free guidance.

The network predicts the noise z of X_t = alpha_t X_0 + sigma_t z, or v = alpha_t z - sigma_t X_0
(the process's ``prediction``, ``voxgen.generative.score_sde``). Images live in model space
x in [-1, 1] (``voxgen.data.transforms.ChargeTransform``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxgen.generative.process import GenerativeProcess, SamplerSettings
from voxgen.generative.processes import build_process
from voxgen.models.conditional import ConditionalGenerator
from voxgen.nn.cond_unet import CondUNet


class ScoreModel2D(ConditionalGenerator):
    """``CondUNet`` over (B, 1, H, W) images under ``process`` (a ``ScoreSDE``)."""

    def __init__(
        self,
        process: GenerativeProcess,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2, 2),
        blocks: int = 1,
        emb_dim: int = 128,
        dropout: float = 0.0,
        p_uncond: float = 0.1,
        patch: int = 1,
    ) -> None:
        super().__init__(process, emb_dim, p_uncond)
        self.patch = patch
        self.net = CondUNet(
            patch**2, patch**2, base=base, mults=tuple(mults), blocks=blocks, emb_dim=emb_dim, dropout=dropout
        )

    def network(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The U-Net's prediction (B, 1, H, W) (z or v) for X_t = ``x`` (B, 1, H, W) at times ``t`` (B,).
        With ``patch`` p > 1 the U-Net works on p x p pixel blocks folded into channels (lossless,
        p^2 times cheaper)."""
        emb = self.time(t) + self.cond(pid, momentum)
        if self.patch == 1:
            return self.net(x, emb)
        return F.pixel_shuffle(self.net(F.pixel_unshuffle(x, self.patch), emb), self.patch)

    def from_process(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-1.0, 1.0)

    @torch.no_grad()
    def sample(
        self,
        pid: torch.Tensor,
        momentum: torch.Tensor,
        sampler: SamplerSettings,
        size: int = 64,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        """(x (B, 1, size, size) in model space, network evaluations per image)."""
        return super().sample(pid, momentum, sampler, (1, size, size), generator, progress)


def build_score2d(m) -> ScoreModel2D:
    """ScoreModel2D under the VP-SDE of ``m.sde`` from its ``model`` config node (``conf/model/vpsde2d.yaml``)."""
    return ScoreModel2D(
        build_process("vpsde", m),
        base=m.base,
        mults=tuple(m.mults),
        blocks=m.blocks,
        emb_dim=m.emb_dim,
        dropout=m.dropout,
        p_uncond=m.p_uncond,
        patch=m.patch,
    )
