"""The sparse-convolution interface both backends implement (spconv, MinkowskiEngine).

A sparse batch is ``coords`` (N, 4) int32 with columns (batch, i, j, k), the voxel indices at the
tensor's own level (level 0 = the input grid; a stride-s layer's output indexes the grid s times
coarser), and ``feats`` (N, C) float32 - the layout of ``voxgen.events.collate_sparse``. Each
backend wraps it in its own tensor type; models only touch that type through a backend.

Kernels have one canonical layout, W (k, k, k, C_in, C_out), and one meaning:

- submanifold convolution (odd k, stride 1; output sites = input sites):
  out[p] = sum_d W[d + r] x[p + d],  d in {-r..r}^3, r = k // 2
- strided convolution (k = s): out[q] = sum_d W[d] x[s q + d],  d in {0..s-1}^3
- generative transposed convolution (k = s): every voxel q makes s^3 children,
  child[s q + d] = W[d] x[q]
- inverse convolution (k = s), the U-Net decoder's: the same map, onto the sites of the finer
  tensor that a strided convolution with the same ``key`` came from

so the same weights give the same outputs on both backends (``canonical_weight`` / ``load_canonical``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

SparseTensor = Any  # the backend's own tensor type


def coordinate_keys(coords: torch.Tensor, extent: int = 1 << 16) -> torch.Tensor:
    """(N,) int64 keys of (batch, i, j, k) rows (N, 4), unique per voxel for indices in [0, extent)
    and batch indices below 2^15."""
    c = coords.long()
    return ((c[:, 0] * extent + c[:, 1]) * extent + c[:, 2]) * extent + c[:, 3]


def match_coordinates(query: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(Nq,) index into ``reference`` (Nr, 4) of each ``query`` (Nq, 4) row, -1 where absent."""
    ref_keys = coordinate_keys(reference)
    order = torch.argsort(ref_keys)
    sorted_keys = ref_keys[order]
    q = coordinate_keys(query)
    pos = torch.searchsorted(sorted_keys, q).clamp(max=max(len(sorted_keys) - 1, 0))
    if len(sorted_keys) == 0:
        return torch.full_like(q, -1)
    found = sorted_keys[pos] == q
    return torch.where(found, order[pos], torch.full_like(q, -1))


class SparseModule(nn.Module):
    """A layer on a backend's sparse tensors."""

    backend: SparseBackend


class FeatureWise(SparseModule):
    """Apply a dense module (BatchNorm1d, ReLU, Linear, ...) to the (N, C) features."""

    def __init__(self, backend: SparseBackend, module: nn.Module) -> None:
        super().__init__()
        self.backend, self.module = backend, module

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.backend.with_feats(x, self.module(self.backend.feats(x)))


class SparseBackend(ABC):
    """One sparse-convolution library behind voxgen's interface."""

    name: str

    def __deepcopy__(self, memo: dict) -> SparseBackend:
        return self  # stateless; copies of a network (EMA) share their backend

    # ---- tensors
    @abstractmethod
    def tensor(
        self,
        feats: torch.Tensor,
        coords: torch.Tensor,
        spatial_shape: tuple[int, int, int],
        batch_size: int,
        stride: int = 1,
    ) -> SparseTensor:
        """A sparse tensor from ``feats`` (N, C) and ``coords`` (N, 4) (batch, i, j, k) on a grid of
        ``spatial_shape``, at the level of a network ``stride`` (a power of 2) times coarser than
        its input, so generative transposed convolutions can take it back to level 0."""

    @abstractmethod
    def feats(self, x: SparseTensor) -> torch.Tensor:
        """(N, C) features."""

    @abstractmethod
    def coords(self, x: SparseTensor) -> torch.Tensor:
        """(N, 4) int32 (batch, i, j, k) at the tensor's own level, rows aligned with ``feats``."""

    @abstractmethod
    def with_feats(self, x: SparseTensor, feats: torch.Tensor) -> SparseTensor:
        """The same sites with new features (N, C')."""

    @abstractmethod
    def prune(self, x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
        """The sites where ``keep`` (N,) bool is true."""

    @abstractmethod
    def spatial_shape(self, x: SparseTensor) -> tuple[int, int, int]:
        """Grid size at the tensor's level."""

    @abstractmethod
    def batch_size(self, x: SparseTensor) -> int:
        """Number of events in the batch."""

    # ---- layers
    @abstractmethod
    def conv(
        self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, bias: bool = False, key: str | None = None
    ) -> SparseModule:
        """Submanifold (stride 1, odd kernel) or strided (kernel = stride) convolution. Layers
        sharing ``key`` work on the same sites, so a backend may reuse their neighbour maps."""

    @abstractmethod
    def conv_transpose(self, c_in: int, c_out: int, stride: int = 2, bias: bool = False) -> SparseModule:
        """Generative transposed convolution: every voxel makes stride^3 children (kernel = stride)."""

    @abstractmethod
    def inverse_conv(self, c_in: int, c_out: int, stride: int = 2, key: str = "", bias: bool = False) -> SparseModule:
        """``forward(x, skip)``: back onto ``skip``'s sites, which the strided ``conv(..., key=key)`` took to x's."""

    def norm(self, channels: int) -> SparseModule:
        return FeatureWise(self, nn.BatchNorm1d(channels))

    def activation(self, name: str = "relu") -> SparseModule:
        return FeatureWise(
            self, {"relu": nn.ReLU(), "silu": nn.SiLU(), "leaky_relu": nn.LeakyReLU(0.1), "tanh": nn.Tanh()}[name]
        )

    def linear(self, c_in: int, c_out: int, bias: bool = True) -> SparseModule:
        return FeatureWise(self, nn.Linear(c_in, c_out, bias=bias))

    # ---- dense grids (backend-neutral, through coords/feats)
    def to_dense(self, x: SparseTensor) -> torch.Tensor:
        """(B, C, D, H, W) dense grid at the tensor's level, zeros off the sites."""
        feats, coords = self.feats(x), self.coords(x).long()
        dense = feats.new_zeros(self.batch_size(x), *self.spatial_shape(x), feats.shape[1])
        dense[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]] = feats
        return dense.permute(0, 4, 1, 2, 3).contiguous()

    def from_dense(self, dense: torch.Tensor, occupied: torch.Tensor | None = None) -> SparseTensor:
        """A sparse tensor of the sites of ``dense`` (B, C, D, H, W) where ``occupied`` (B, D, H, W)
        is true (default: any non-zero channel)."""
        if occupied is None:
            occupied = (dense != 0).any(dim=1)
        coords = occupied.nonzero().int()
        feats = dense.permute(0, 2, 3, 4, 1)[occupied]
        return self.tensor(feats, coords, tuple(dense.shape[2:]), dense.shape[0])


@torch.no_grad()
def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy the weights of one sparse network into the same architecture on another backend:
    convolutions through the canonical kernel layout, everything else by state dict."""

    def units(net: nn.Module) -> list[nn.Module]:
        return [m for m in net.modules() if hasattr(m, "canonical_weight") or isinstance(m, FeatureWise)]

    src, dst = units(source), units(target)
    if [hasattr(m, "canonical_weight") for m in src] != [hasattr(m, "canonical_weight") for m in dst]:
        raise ValueError("copy_weights: the two networks differ in architecture")
    for s, d in zip(src, dst):
        if hasattr(s, "canonical_weight"):
            d.load_canonical(s.canonical_weight(), s.layer.bias)
        elif isinstance(s, FeatureWise):
            d.module.load_state_dict(s.module.state_dict())
