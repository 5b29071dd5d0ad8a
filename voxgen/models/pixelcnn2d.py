"""Conditional gated PixelCNN prior over VQ-VAE code maps (Lutkus et al., arXiv:2204.02496;
van den Oord et al. 2016, "Conditional image generation with PixelCNN decoders").

Codes are (B, h, w) int64 in [0, n_codes), modelled in raster order (row by row, left to right)
given the condition (pid (B,) int64, momentum (B,) MeV/c; ``voxgen.generative.conditioning``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from voxgen.generative.conditioning import ConditionEmbedding, drop_condition
from voxgen.generative.guidance import classifier_free


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    """One gated block with a vertical and a horizontal stack, (v, h, cond) -> (v, h).

    Vertical: a (k//2 + 1, k) conv padded so output row i sees input rows <= i (all columns
    within k//2). Before it feeds the horizontal stack it is shifted down one row, so the
    horizontal stack only receives rows < i. Horizontal: a (1, k//2 + 1) conv over columns
    j - k//2 .. j of row i (mask 'B'); mask 'A' (first block) uses width k//2 over columns
    j - k//2 .. j - 1, so the current pixel is excluded, and has no residual connection.
    The condition (B, 2C) is added to both stacks' pre-gate activations.
    """

    def __init__(self, channels: int, kernel: int, mask: str) -> None:
        super().__init__()
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' or 'B', got {mask!r}")
        self.half, self.mask = kernel // 2, mask
        self.v_conv = nn.Conv2d(channels, 2 * channels, (self.half + 1, kernel))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, self.half + (mask == "B")))
        self.h_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v, h (B, C, H, W); cond (B, 2C) -> (v, h) (B, C, H, W)."""
        width = h.shape[3]
        cond = cond[:, :, None, None]
        v_pre = self.v_conv(F.pad(v, (self.half, self.half, self.half, 0)))
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
        h_pre = self.h_conv(F.pad(h, (self.half, 0, 0, 0)))[:, :, :, :width] + self.v_to_h(v_down)
        h_new = self.h_out(_gate(h_pre + cond))
        return _gate(v_pre + cond), (h_new if self.mask == "A" else h + h_new)


class GatedPixelCNN(nn.Module):
    """Conditional gated PixelCNN: codes (B, h, w) -> logits (B, n_codes, h, w).

    Embedding -> ``n_blocks`` ``GatedBlock`` (the first of mask type 'A', the rest 'B', all with
    the same ``kernel``; default 5, so the first block sees two pixels to the left and two rows
    above) -> ReLU, 1x1 conv, ReLU, 1x1 conv to ``n_codes``. The vertical/horizontal split
    leaves no blind spot: with r = n_blocks * (kernel // 2), logits at (i, j) see every pixel of
    rows i - 1 - r .. i - 1 at columns j - r .. j + r and of row i at columns j - r .. j - 1,
    and nothing at or after (i, j). ``ConditionEmbedding(cond_dim)`` feeds each block
    through its own Linear to 2*channels. Training drops the condition with probability
    ``p_uncond`` (classifier-free guidance).
    """

    def __init__(
        self,
        n_codes: int = 512,
        channels: int = 128,
        n_blocks: int = 6,
        kernel: int = 5,
        cond_dim: int | None = None,
        p_uncond: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 3, got {kernel}")
        cond_dim = channels if cond_dim is None else cond_dim
        self.n_codes, self.p_uncond = n_codes, p_uncond
        self.embed = nn.Embedding(n_codes, channels)
        self.condition = ConditionEmbedding(cond_dim)
        self.blocks = nn.ModuleList(GatedBlock(channels, kernel, "A" if i == 0 else "B") for i in range(n_blocks))
        self.cond_proj = nn.ModuleList(nn.Linear(cond_dim, 2 * channels) for _ in range(n_blocks))
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, n_codes, 1)
        )

    def logits(self, codes: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) int64, pid (B,) int64 (-1 = null), momentum (B,) MeV/c -> (B, n_codes, h, w)."""
        x = self.embed(codes).permute(0, 3, 1, 2)
        c = self.condition(pid, momentum)
        v, h = x, x
        for block, proj in zip(self.blocks, self.cond_proj):
            v, h = block(v, h, proj(c))
        return self.head(h)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch = (codes (B, h, w) int64, pid (B,), momentum (B,) MeV/c); cross entropy in nats per code."""
        codes, pid, momentum = batch
        if self.training:
            pid = drop_condition(pid, self.p_uncond)
        loss = F.cross_entropy(self.logits(codes, pid, momentum), codes)
        return {"loss": loss, "bits_per_code": loss / math.log(2.0)}

    @torch.no_grad()
    def sample(
        self,
        pid: torch.Tensor,
        momentum: torch.Tensor,
        shape: tuple[int, int] = (16, 16),
        temperature: float = 1.0,
        guidance: float = 0.0,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Raster-scan ancestral sampling: pid (B,), momentum (B,) MeV/c -> codes (B, h, w) int64.

        Logits are divided by ``temperature`` (> 0). With ``guidance`` w they are
        (1 + w) l_cond - w l_uncond (``voxgen.generative.guidance``), l_uncond from the null
        condition (pid -1). Pixel (i, j)
        only needs rows <= i, so each step runs the network on the first i + 1 rows.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        device = self.embed.weight.device
        pid, momentum = pid.to(device).long(), momentum.to(device).float()
        n, (height, width) = pid.shape[0], shape
        guided = classifier_free(self.logits, pid, momentum, guidance)
        codes = torch.zeros(n, height, width, dtype=torch.long, device=device)
        draw_device = generator.device if generator is not None else device
        bar = tqdm(total=height * width, desc="pixelcnn", unit="code", disable=not progress)
        for i in range(height):
            for j in range(width):
                logits = guided(codes[:, : i + 1])[:, :, i, j].float()
                probs = torch.softmax(logits / temperature, dim=1)
                codes[:, i, j] = torch.multinomial(probs.to(draw_device), 1, generator=generator)[:, 0].to(device)
                bar.update(1)
        bar.close()
        return codes


def build_pixelcnn2d(m) -> GatedPixelCNN:
    """GatedPixelCNN from its ``model`` config node (``conf/model/pixelcnn2d.yaml``)."""
    return GatedPixelCNN(
        n_codes=m.n_codes, channels=m.channels, n_blocks=m.n_blocks, kernel=m.kernel, p_uncond=m.p_uncond
    )
