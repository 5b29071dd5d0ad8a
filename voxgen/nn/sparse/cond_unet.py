"""A sparse residual U-Net whose every block is told an embedding per event (time, condition,
level): the network of the cascade generator (``voxgen.models.cascade3d``), on any backend.

Normalisation is a per-site LayerNorm rather than BatchNorm: a generator's batch mixes events at
different process times and levels, so batch statistics would couple unrelated sites and differ
between training and sampling.
"""

from __future__ import annotations

import torch
from torch import nn

from voxgen.nn.sparse.base import FeatureWise, SparseBackend, SparseTensor


class CondSparseResBlock(nn.Module):
    """conv3-norm-act, plus the projected embedding of the site's event, conv3-norm, plus the input
    (1x1 projection when widths differ), then act."""

    def __init__(self, backend: SparseBackend, c_in: int, c_out: int, emb_dim: int, key: str) -> None:
        super().__init__()
        b = self.backend = backend
        self.conv1, self.conv2 = b.conv(c_in, c_out, 3, key=key), b.conv(c_out, c_out, 3, key=key)
        self.norm1, self.norm2 = FeatureWise(b, nn.LayerNorm(c_out)), FeatureWise(b, nn.LayerNorm(c_out))
        self.emb = nn.Linear(emb_dim, c_out)
        self.shortcut = nn.Linear(c_in, c_out, bias=False) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: SparseTensor, emb: torch.Tensor) -> SparseTensor:
        """``x`` sparse (N, c_in); ``emb`` (B, emb_dim) per event of the batch."""
        b = self.backend
        events = b.coords(x)[:, 0].long()
        y = self.norm1(self.conv1(x))
        y = b.with_feats(y, self.act(b.feats(y)) + self.emb(emb)[events])
        y = self.norm2(self.conv2(y))
        return b.with_feats(y, self.act(b.feats(y) + self.shortcut(b.feats(x))))


class CondSparseUNet(nn.Module):
    """``widths`` (w_0, ..., w_L): a linear stem to w_0, then per level ``blocks`` conditioned residual
    blocks and a stride-2 convolution; the decoder mirrors it with inverse convolutions and
    concatenated skips; a linear head to ``c_out``. Output sites are the input sites; the receptive
    field grows 2x per level, so with L levels a site sees about 2^L * 5 sites across."""

    def __init__(
        self,
        backend: SparseBackend,
        c_in: int,
        c_out: int,
        emb_dim: int,
        widths: tuple[int, ...] = (32, 64, 96),
        blocks: int = 1,
    ) -> None:
        super().__init__()
        b = self.backend = backend
        self.stem = nn.Linear(c_in, widths[0])
        self.encoder, self.down, self.up, self.decoder = (nn.ModuleList() for _ in range(4))
        block = lambda c_i, c_o, level: CondSparseResBlock(b, c_i, c_o, emb_dim, f"level{level}")
        for level, (w, w_next) in enumerate(zip(widths[:-1], widths[1:])):
            self.encoder.append(nn.ModuleList(block(w, w, level) for _ in range(blocks)))
            self.down.append(b.conv(w, w_next, stride=2, key=f"down{level}"))
            self.up.append(b.inverse_conv(w_next, w, stride=2, key=f"down{level}"))
            self.decoder.append(
                nn.ModuleList([block(2 * w, w, level)] + [block(w, w, level) for _ in range(blocks - 1)])
            )
        last = len(widths) - 1
        self.bottleneck = nn.ModuleList(block(widths[-1], widths[-1], last) for _ in range(blocks))
        self.head = nn.Sequential(nn.LayerNorm(widths[0]), nn.SiLU(), nn.Linear(widths[0], c_out))

    def forward(self, x: SparseTensor, emb: torch.Tensor) -> torch.Tensor:
        """(N, c_out) features at the input sites of ``x`` (N, c_in), ``emb`` (B, emb_dim) per event."""
        b = self.backend
        x = b.with_feats(x, self.stem(b.feats(x)))
        skips = []
        for encode, down in zip(self.encoder, self.down):
            for blk in encode:
                x = blk(x, emb)
            skips.append(x)
            x = down(x)
        for blk in self.bottleneck:
            x = blk(x, emb)
        for level in reversed(range(len(skips))):
            x = self.up[level](x, skips[level])
            x = b.with_feats(x, torch.cat([b.feats(x), b.feats(skips[level])], dim=1))
            for blk in self.decoder[level]:
                x = blk(x, emb)
        return self.head(b.feats(x))
