"""Dense 2D U-Net with ResNet blocks (SSNet's backbone; reusable by 2D generators).

Shapes: input (B, C_in, H, W) with H and W divisible by 2**depth; output (B, C_out, H, W).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock2d(nn.Module):
    """Two 3x3 convolutions with GroupNorm + ReLU and a (projected) identity shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _norm(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            _norm(c_out),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class UResNet2d(nn.Module):
    """U-Net of ResNet blocks: ``depth`` down/up pairs, widths ``base * 2**level``.

    ``forward`` returns (logits (B, C_out, H, W), bottleneck (B, base * 2**depth, H/2**depth, W/2**depth)).
    """

    def __init__(self, c_in: int, c_out: int, base: int = 16, depth: int = 4) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.stem = ResBlock2d(c_in, widths[0])
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(depth))
        self.enc = nn.ModuleList(ResBlock2d(widths[i + 1], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.dec = nn.ModuleList(ResBlock2d(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], c_out, 1)
        self.bottleneck_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = [self.stem(x)]
        h = skips[0]
        for down, enc in zip(self.down, self.enc):
            h = enc(down(h))
            skips.append(h)
        bottleneck = h
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            h = dec(torch.cat([up(h), skip], dim=1))
        return self.head(h), bottleneck
