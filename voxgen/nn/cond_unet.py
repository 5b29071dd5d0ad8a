"""Dense 2D or 3D U-Net whose residual blocks take an embedding (diffusion time + condition).

Shapes (``dims`` = 2): input (B, C, H, W) with H, W divisible by 2**(len(mults) - 1); embedding
(B, emb_dim); output (B, C_out, H, W). ``dims`` = 3: (B, C, D, H, W) likewise.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class FourierTime(nn.Module):
    """t (B,) in [0, 1] -> (B, dim) sinusoidal features (Transformer style) of 1000 t."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
        angles = 1000.0 * t.float()[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Sequential):
    """t (B,) in [0, 1] -> (B, dim): ``FourierTime`` features through a two-layer SiLU MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__(FourierTime(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))


CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class EmbResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding added between, identity (or 1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0, dims: int = 2) -> None:
        super().__init__()
        conv = CONV[dims]
        self.in_layers = nn.Sequential(_norm(c_in), nn.SiLU(), conv(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Dropout(dropout), conv(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb).reshape(*emb.shape[:1], -1, *([1] * (x.dim() - 2)))
        return self.out_layers(h) + self.skip(x)


class CondUNet(nn.Module):
    """U-Net over ``dims``-dimensional grids with widths ``base * mults[level]``, ``blocks``
    residual blocks per level, strided down-sampling and nearest up-sampling; every block sees
    the embedding (B, ``emb_dim``)."""

    def __init__(
        self,
        c_in: int = 1,
        c_out: int = 1,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2, 2),
        blocks: int = 1,
        emb_dim: int = 128,
        dropout: float = 0.0,
        dims: int = 2,
    ) -> None:
        super().__init__()
        conv = CONV[dims]
        widths = [base * m for m in mults]
        self.stem = conv(c_in, widths[0], 3, padding=1)
        self.down_blocks, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [widths[0]], widths[0]
        for level, w in enumerate(widths):
            for _ in range(blocks):
                self.down_blocks.append(EmbResBlock(c, w, emb_dim, dropout, dims))
                c = w
                skips.append(c)
            if level < len(widths) - 1:
                self.downsample.append(conv(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([EmbResBlock(c, c, emb_dim, dropout, dims), EmbResBlock(c, c, emb_dim, dropout, dims)])
        self.up_blocks, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up_blocks.append(EmbResBlock(c + skips.pop(), w, emb_dim, dropout, dims))
                c = w
            if level > 0:
                self.upsample.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(c, c, 3, padding=1))
                )
        self.head = nn.Sequential(_norm(c), nn.SiLU(), conv(c, c_out, 3, padding=1))
        self.blocks, self.levels = blocks, len(widths)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        hs = [h]
        blocks = iter(self.down_blocks)
        for level in range(self.levels):
            for _ in range(self.blocks):
                h = next(blocks)(h, emb)
                hs.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
                hs.append(h)
        for block in self.mid:
            h = block(h, emb)
        blocks = iter(self.up_blocks)
        for i, level in enumerate(reversed(range(self.levels))):
            for _ in range(self.blocks + 1):
                h = next(blocks)(torch.cat([h, hs.pop()], dim=1), emb)
            if level > 0:
                h = self.upsample[i](h)
        return self.head(h)
