"""Torch Datasets over event sources: sparse 3D voxels, 2D crops, wire-plane images."""

from voxgen.data.datasets import (
    CropDataset,
    SparseEventDataset,
    WirePlaneDataset,
    collate_sparse_batch,
    open_split,
    source_name,
    voxel_labels,
)

__all__ = [
    "CropDataset", "SparseEventDataset", "WirePlaneDataset", "collate_sparse_batch", "open_split",
    "source_name", "voxel_labels",
]
