"""spconv 2.x behind voxgen's sparse interface (``backend: spconv``).

On a machine without CUDA two fixes apply (../shared/reference.md): convolutions use spconv's
native algorithm (its default implicit GEMM is CUDA-only in the ``spconv-cuXXX`` wheels), and
``spconv.pytorch.ops.get_current_stream`` - which asks torch.cuda during the backward pass - is
replaced by one returning the null stream.
"""

from __future__ import annotations

import warnings

import torch

from voxgen.nn.sparse.base import SparseBackend, SparseModule, SparseTensor


def _patch_cpu() -> None:
    import spconv.pytorch.hash as sp_hash
    import spconv.pytorch.ops as sp_ops

    if not torch.cuda.is_available():
        sp_ops.get_current_stream = lambda: 0
        sp_hash.get_current_stream = lambda: 0


class _SpconvConv(SparseModule):
    """A spconv convolution; spconv keeps weights as (C_out, k, k, k, C_in)."""

    def __init__(self, backend: SpconvBackend, layer) -> None:
        super().__init__()
        self.backend, self.layer = backend, layer

    def forward(self, x: SparseTensor, skip: SparseTensor | None = None) -> SparseTensor:
        return self.layer(x)  # an inverse convolution finds skip's sites through its indice_key

    def canonical_weight(self) -> torch.Tensor:
        return self.layer.weight.permute(1, 2, 3, 4, 0)

    @torch.no_grad()
    def load_canonical(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.layer.weight.copy_(weight.permute(4, 0, 1, 2, 3))
        if bias is not None:
            self.layer.bias.copy_(bias)


class SpconvBackend(SparseBackend):
    name = "spconv"

    def __init__(self) -> None:
        with warnings.catch_warnings():  # spconv's own use of torch.cuda.amp's deprecated decorators
            warnings.simplefilter("ignore", FutureWarning)
            import spconv.pytorch as sp
            from spconv.core import ConvAlgo

        _patch_cpu()
        self.sp = sp
        self.algo = None if torch.cuda.is_available() else ConvAlgo.Native

    def tensor(self, feats, coords, spatial_shape, batch_size, stride=1):  # spconv tensors carry no level
        return self.sp.SparseConvTensor(feats, coords.int().contiguous(), list(spatial_shape), batch_size)

    def feats(self, x):
        return x.features

    def coords(self, x):
        return x.indices

    def with_feats(self, x, feats):
        return x.replace_feature(feats)

    def prune(self, x, keep):
        return self.sp.SparseConvTensor(x.features[keep], x.indices[keep], x.spatial_shape, x.batch_size)

    def spatial_shape(self, x):
        return tuple(int(s) for s in x.spatial_shape)

    def batch_size(self, x):
        return int(x.batch_size)

    def conv(self, c_in, c_out, kernel=3, stride=1, bias=False, key=None):
        if stride == 1:
            layer = self.sp.SubMConv3d(
                c_in, c_out, kernel, padding=kernel // 2, bias=bias, indice_key=key, algo=self.algo
            )
        else:
            layer = self.sp.SparseConv3d(c_in, c_out, stride, stride, bias=bias, indice_key=key, algo=self.algo)
        return _SpconvConv(self, layer)

    def conv_transpose(self, c_in, c_out, stride=2, bias=False):
        return _SpconvConv(self, self.sp.SparseConvTranspose3d(c_in, c_out, stride, stride, bias=bias, algo=self.algo))

    def inverse_conv(self, c_in, c_out, stride=2, key="", bias=False):
        return _SpconvConv(
            self, self.sp.SparseInverseConv3d(c_in, c_out, stride, indice_key=key, bias=bias, algo=self.algo)
        )
