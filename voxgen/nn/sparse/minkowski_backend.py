"""MinkowskiEngine 0.5 behind voxgen's sparse interface (``backend: minkowski``).

Installed by ``tools/install_minkowski.sh``. MinkowskiEngine keeps coordinates at the input
resolution with a tensor stride, and kernels as (k^3, C_in, C_out) with the kernel index
ix + k iy + k^2 iz (x fastest; offsets i - k//2 for odd k and i * stride for even k, its
``kernel_region.hpp``). Its tensors carry no grid size (and take no new attributes), so this
backend's tensor is a ``MinkowskiVoxels``: the MinkowskiEngine tensor with its level-0 grid and
batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from voxgen.nn.sparse.base import SparseBackend, SparseModule


@dataclass(frozen=True)
class MinkowskiVoxels:
    """A MinkowskiEngine ``SparseTensor`` (``st``), the grid of its level-0 input and its batch size."""

    st: Any
    grid: tuple[int, int, int]
    batch: int


class _MinkowskiConv(SparseModule):
    """A MinkowskiEngine convolution; ``skip`` gives an inverse convolution its output sites."""

    def __init__(self, backend: MinkowskiBackend, layer, kernel: int) -> None:
        super().__init__()
        self.backend, self.layer, self.kernel = backend, layer, kernel

    def forward(self, x: MinkowskiVoxels, skip: MinkowskiVoxels | None = None) -> MinkowskiVoxels:
        out = self.layer(x.st) if skip is None else self.layer(x.st, skip.st.coordinate_map_key)
        return replace(x, st=out)

    def canonical_weight(self) -> torch.Tensor:
        k = self.kernel
        w = self.layer.kernel
        return w.reshape(k, k, k, *w.shape[1:]).permute(2, 1, 0, 3, 4)

    @torch.no_grad()
    def load_canonical(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        k = self.kernel
        self.layer.kernel.copy_(weight.permute(2, 1, 0, 3, 4).reshape(k**3, *weight.shape[3:]))
        if bias is not None:
            self.layer.bias.copy_(bias.reshape(self.layer.bias.shape))


class MinkowskiBackend(SparseBackend):
    name = "minkowski"

    def __init__(self) -> None:
        import MinkowskiEngine as ME

        self.ME = ME
        self._pruning = ME.MinkowskiPruning()

    def tensor(self, feats, coords, spatial_shape, batch_size, stride=1):
        coords = coords.int().clone()
        coords[:, 1:] *= stride  # MinkowskiEngine indexes every level on the input grid
        st = self.ME.SparseTensor(feats, coordinates=coords.contiguous(), tensor_stride=stride, device=feats.device)
        return MinkowskiVoxels(st, tuple(int(s) * stride for s in spatial_shape), int(batch_size))

    def feats(self, x):
        return x.st.F

    def coords(self, x):
        c = x.st.C.clone()
        c[:, 1:] = torch.div(c[:, 1:], int(x.st.tensor_stride[0]), rounding_mode="floor")
        return c.int()

    def with_feats(self, x, feats):
        st = self.ME.SparseTensor(
            feats, coordinate_map_key=x.st.coordinate_map_key, coordinate_manager=x.st.coordinate_manager
        )
        return replace(x, st=st)

    def prune(self, x, keep):
        return replace(x, st=self._pruning(x.st, keep))

    def spatial_shape(self, x):
        s = int(x.st.tensor_stride[0])
        return tuple(-(-g // s) for g in x.grid)

    def batch_size(self, x):
        return x.batch

    def conv(self, c_in, c_out, kernel=3, stride=1, bias=False, key=None):
        size = kernel if stride == 1 else stride
        layer = self.ME.MinkowskiConvolution(c_in, c_out, kernel_size=size, stride=stride, bias=bias, dimension=3)
        return _MinkowskiConv(self, layer, size)

    def conv_transpose(self, c_in, c_out, stride=2, bias=False):
        layer = self.ME.MinkowskiGenerativeConvolutionTranspose(
            c_in, c_out, kernel_size=stride, stride=stride, bias=bias, dimension=3
        )
        return _MinkowskiConv(self, layer, stride)

    def inverse_conv(self, c_in, c_out, stride=2, key="", bias=False):
        layer = self.ME.MinkowskiConvolutionTranspose(
            c_in, c_out, kernel_size=stride, stride=stride, bias=bias, dimension=3
        )
        return _MinkowskiConv(self, layer, stride)
