"""VQ-VAE 2D: discrete codes of 64x64 charge crops (Lutkus et al., arXiv:2204.02496).

Images live in model space x in [-1, 1], shape (B, 1, H, W), background -1
(``voxgen.data.transforms.ChargeTransform``). Two stride-2 encoder stages map a 64x64 crop
to a 16x16 map of codes in a 512 x 8 codebook; ``voxgen.models.pixelcnn2d`` models the codes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """x + Conv1x1(ReLU(BN(Conv3x3(ReLU(x))))): the VQ-VAE residual block, channels kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Quantized(NamedTuple):
    """Output of ``VectorQuantizer``: straight-through vectors, code indices, losses and usage."""

    z_q: torch.Tensor  # (B, D, h, w) quantised vectors; gradient passed straight through to z_e
    codes: torch.Tensor  # (B, h, w) int64
    codebook: torch.Tensor  # scalar ||sg[z_e] - e||^2, mean over elements
    commitment: torch.Tensor  # scalar beta ||z_e - sg[e]||^2, mean over elements
    perplexity: torch.Tensor  # scalar exp(entropy of the batch's code histogram), 1..n_codes
    usage: torch.Tensor  # scalar fraction of codes used in the batch


class VectorQuantizer(nn.Module):
    """Nearest-neighbour (L2) vector quantisation with a straight-through gradient.

    Dead codes: the buffer ``steps_unused`` (n_codes,) counts, per code, the training forward
    passes since the code was last selected. At the start of a training pass every code unused
    for ``dead_code_steps`` passes is re-initialised to a randomly chosen encoder output of the
    current batch plus Gaussian noise of 1e-3 times the outputs' standard deviation, and its
    counter is reset. Eval mode neither counts nor restarts; ``dead_code_steps=0`` disables
    restarts. Restarts draw from the global torch RNG.
    """

    def __init__(self, n_codes: int, code_dim: int, beta: float = 0.25, dead_code_steps: int = 200) -> None:
        super().__init__()
        self.n_codes, self.code_dim = n_codes, code_dim
        self.beta, self.dead_code_steps = beta, dead_code_steps
        self.codebook = nn.Parameter(torch.empty(n_codes, code_dim).uniform_(-1.0 / n_codes, 1.0 / n_codes))
        self.register_buffer("steps_unused", torch.zeros(n_codes, dtype=torch.long))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) encoder outputs -> (B, h, w) int64 index of the nearest codebook vector."""
        z = z_e.detach().float().permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        e = self.codebook.detach().float()
        dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)[None]
        b, _, h, w = z_e.shape
        return dist.argmin(1).view(b, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 codes -> (B, D, h, w) codebook vectors."""
        return F.embedding(codes, self.codebook).permute(0, 3, 1, 2)

    @torch.no_grad()
    def _restart_dead(self, z_e: torch.Tensor) -> None:
        dead = (self.steps_unused >= self.dead_code_steps).nonzero().squeeze(1)
        if dead.numel() == 0:
            return
        z = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        if z.shape[0] >= dead.numel():
            pick = torch.randperm(z.shape[0], device=z.device)[: dead.numel()]
        else:
            pick = torch.randint(z.shape[0], (dead.numel(),), device=z.device)
        noise = torch.randn(dead.numel(), self.code_dim, device=z.device) * (1e-3 * z.std() + 1e-8)
        self.codebook[dead] = (z[pick] + noise).to(self.codebook.dtype)
        self.steps_unused[dead] = 0

    def forward(self, z_e: torch.Tensor) -> Quantized:
        """(B, D, h, w) encoder outputs -> ``Quantized``; in training mode also restarts dead codes."""
        if self.training and self.dead_code_steps > 0:
            self._restart_dead(z_e)
        codes = self.nearest(z_e)
        e = self.lookup(codes)
        codebook_loss = F.mse_loss(e, z_e.detach())
        commitment = self.beta * F.mse_loss(z_e, e.detach())
        z_q = z_e + (e - z_e).detach()
        counts = torch.bincount(codes.flatten(), minlength=self.n_codes)
        if self.training:
            with torch.no_grad():
                self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        p = counts.float() / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        usage = (counts > 0).float().mean()
        return Quantized(z_q, codes, codebook_loss, commitment, perplexity, usage)


class VQVAE2D(nn.Module):
    """Convolutional VQ-VAE: (B, 1, H, W) in [-1, 1] <-> (B, H/2**S, W/2**S) codes, S = len(enc_filters).

    Encoder stage: Conv4x4 stride 2 + BN + ReLU + ``ResBlock``; then a 1x1 conv to ``code_dim``.
    Decoder: Conv3x3 + BN + ReLU from ``code_dim``, one ConvTranspose4x4 stride 2 + BN + ReLU +
    ``ResBlock`` stage per entry of ``dec_filters``, then Conv3x3 to one channel and tanh.
    H and W must be divisible by 2**S.
    """

    def __init__(
        self,
        n_codes: int = 512,
        code_dim: int = 8,
        enc_filters: tuple[int, ...] = (16, 32),
        dec_filters: tuple[int, ...] = (32, 16),
        beta: float = 0.25,
        dead_code_steps: int = 200,
    ) -> None:
        super().__init__()
        if len(enc_filters) != len(dec_filters):
            raise ValueError("enc_filters and dec_filters need one entry per stride-2 stage each")
        enc: list[nn.Module] = []
        c_in = 1
        for c in enc_filters:
            enc += [nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), ResBlock(c)]
            c_in = c
        enc.append(nn.Conv2d(c_in, code_dim, 1))
        self.encoder = nn.Sequential(*enc)
        self.quantizer = VectorQuantizer(n_codes, code_dim, beta=beta, dead_code_steps=dead_code_steps)
        c_in = dec_filters[0]
        dec: list[nn.Module] = [nn.Conv2d(code_dim, c_in, 3, padding=1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU()]
        for c in dec_filters:
            dec += [
                nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                ResBlock(c),
            ]
            c_in = c
        dec += [nn.Conv2d(c_in, 1, 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        self.downsample = 2 ** len(enc_filters)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] % self.downsample or x.shape[3] % self.downsample:
            raise ValueError(
                f"VQVAE2D expects (B, 1, H, W) with H, W divisible by {self.downsample}, got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] -> (B, H/2**S, W/2**S) int64 codes; no dead-code bookkeeping."""
        self._check(x)
        return self.quantizer.nearest(self.encoder(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 codes -> (B, 1, h*2**S, w*2**S) images in [-1, 1]."""
        return self.decoder(self.quantizer.lookup(codes))

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        self._check(x)
        q = self.quantizer(self.encoder(x))
        return self.decoder(q.z_q), q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] -> reconstruction (B, 1, H, W) in [-1, 1] through the codebook."""
        return self._run(x)[0]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch = (x (B, 1, H, W) in [-1, 1], pid, momentum); the condition is ignored.

        ``recon`` = MSE over all pixels + MSE over charged pixels (target > -1): only ~2.4% of
        pixels carry charge, and plain MSE is minimised well enough by an empty image. ``loss`` =
        recon + codebook + commitment (commitment already weighted by beta).
        """
        x = batch[0]
        x_rec, q = self._run(x)
        sq = (x_rec - x).pow(2)
        charged = (x > -1.0).to(sq.dtype)
        recon = sq.mean() + (sq * charged).sum() / charged.sum().clamp_min(1.0)
        return {
            "loss": recon + q.codebook + q.commitment,
            "recon": recon,
            "codebook": q.codebook,
            "commitment": q.commitment,
            "perplexity": q.perplexity,
            "usage": q.usage,
        }


def build_vqvae2d(m) -> VQVAE2D:
    """VQVAE2D from its ``model`` config node (``conf/model/vqvae2d.yaml``)."""
    return VQVAE2D(
        n_codes=m.n_codes,
        code_dim=m.code_dim,
        enc_filters=tuple(m.enc_filters),
        dec_filters=tuple(m.dec_filters),
        beta=m.beta,
        dead_code_steps=m.dead_code_steps,
    )
