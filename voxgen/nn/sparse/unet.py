"""A sparse residual U-Net on any backend: SSNet3D's segmenter and the benchmark's network."""

from __future__ import annotations

import torch
from torch import nn

from voxgen.nn.sparse.base import SparseBackend, SparseTensor


class SparseResBlock(nn.Module):
    """conv3-norm-act-conv3-norm plus the input (1x1 projection when widths differ), then act."""

    def __init__(self, backend: SparseBackend, c_in: int, c_out: int, key: str) -> None:
        super().__init__()
        b = backend
        self.body = nn.ModuleList(
            [
                b.conv(c_in, c_out, 3, key=key),
                b.norm(c_out),
                b.activation(),
                b.conv(c_out, c_out, 3, key=key),
                b.norm(c_out),
            ]
        )
        self.shortcut = b.linear(c_in, c_out, bias=False) if c_in != c_out else None
        self.act, self.backend = b.activation(), b

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = x
        for layer in self.body:
            y = layer(y)
        skip = self.shortcut(x) if self.shortcut is not None else x
        return self.act(self.backend.with_feats(y, self.backend.feats(y) + self.backend.feats(skip)))


class SparseUNet(nn.Module):
    """``widths`` (w_0, ..., w_L): a stem to w_0, then per level ``blocks`` residual blocks and a
    stride-2 convolution; the decoder mirrors it with inverse convolutions and concatenated skips.
    Input and output sites are the same; ``forward`` returns (output tensor, bottleneck tensor)."""

    def __init__(
        self, backend: SparseBackend, c_in: int, c_out: int, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 1
    ) -> None:
        super().__init__()
        b = self.backend = backend
        self.stem = nn.ModuleList([b.conv(c_in, widths[0], 3, key="level0"), b.norm(widths[0]), b.activation()])
        self.encoder, self.down, self.up, self.decoder = (nn.ModuleList() for _ in range(4))
        for level, (w, w_next) in enumerate(zip(widths[:-1], widths[1:])):
            self.encoder.append(nn.Sequential(*[SparseResBlock(b, w, w, f"level{level}") for _ in range(blocks)]))
            self.down.append(
                nn.ModuleList([b.conv(w, w_next, stride=2, key=f"down{level}"), b.norm(w_next), b.activation()])
            )
            self.up.append(
                nn.ModuleList([b.inverse_conv(w_next, w, stride=2, key=f"down{level}"), b.norm(w), b.activation()])
            )
            self.decoder.append(
                nn.Sequential(
                    SparseResBlock(b, 2 * w, w, f"level{level}"),
                    *[SparseResBlock(b, w, w, f"level{level}") for _ in range(blocks - 1)],
                )
            )
        last = len(widths) - 1
        self.bottleneck = nn.Sequential(
            *[SparseResBlock(b, widths[-1], widths[-1], f"level{last}") for _ in range(blocks)]
        )
        self.head = b.linear(widths[0], c_out)

    @staticmethod
    def _run(layers: nn.ModuleList, x: SparseTensor, skip: SparseTensor | None = None) -> SparseTensor:
        x = layers[0](x, skip) if skip is not None else layers[0](x)
        for layer in layers[1:]:
            x = layer(x)
        return x

    def forward(self, x: SparseTensor) -> tuple[SparseTensor, SparseTensor]:
        b = self.backend
        x = self._run(self.stem, x)
        skips = []
        for encode, down in zip(self.encoder, self.down):
            x = encode(x)
            skips.append(x)
            x = self._run(down, x)
        bottom = x = self.bottleneck(x)
        for level in reversed(range(len(skips))):
            x = self._run(self.up[level], x, skips[level])
            x = b.with_feats(x, torch.cat([b.feats(x), b.feats(skips[level])], dim=1))
            x = self.decoder[level](x)
        return self.head(x), bottom
