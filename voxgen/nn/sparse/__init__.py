"""Sparse 3D convolution behind one interface, two backends: spconv and MinkowskiEngine.

``get_backend("spconv" | "minkowski")``; see ``base`` for the tensor layout and kernel meaning.
"""

from __future__ import annotations

from functools import cache

from voxgen.errors import ConfigError
from voxgen.nn.sparse.base import SparseBackend, coordinate_keys, match_coordinates

BACKENDS = ("spconv", "minkowski")
INSTALL = {
    "spconv": "pip install spconv (CPU) or spconv-cu120 (CUDA 12)",
    "minkowski": "bash tools/install_minkowski.sh",
}


@cache
def get_backend(name: str) -> SparseBackend:
    """The named backend; a one-line error when it is unknown or not installed."""
    if name not in BACKENDS:
        raise ConfigError(f"sparse backend '{name}' unknown ({', '.join(BACKENDS)})")
    try:
        if name == "spconv":
            from voxgen.nn.sparse.spconv_backend import SpconvBackend

            return SpconvBackend()
        from voxgen.nn.sparse.minkowski_backend import MinkowskiBackend

        return MinkowskiBackend()
    except ImportError as err:
        raise ConfigError(f"sparse backend '{name}' is not installed ({err.name}): {INSTALL[name]}") from None


__all__ = ["BACKENDS", "SparseBackend", "coordinate_keys", "get_backend", "match_coordinates"]
