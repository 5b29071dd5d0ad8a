"""Topology of 3D events: how the occupied voxels hang together.

A real LArTPC event is a few connected tracks and branching showers; a generator that scatters
small blobs over the volume can match the voxel count, energy and extent of real events while
having none of their structure. These per-event figures see the difference:

``n_clusters``: 26-connected components of the occupied voxels (voxels touching by a face, an
edge or a corner belong together); ``n_clusters_3plus``: the components of at least 3 voxels
(single voxels and pairs, common around showers, left out); ``largest_share``: the share of the
event's energy in its highest-energy component; ``track_gaps``: empty stretches along the
event's principal axis (``track_gaps``).

Components come from ``scipy.sparse.csgraph.connected_components`` on the 26-neighbour graph of
the voxels, its edges found by looking up each of the 13 forward neighbour offsets of every voxel
among the sorted linear voxel indices (``numpy.searchsorted``): O(N log N), no dense volume.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from voxgen.events import Event, merge_duplicates

# the 13 offsets of the 26-neighbourhood that come first in lexicographic order (the other 13 are their negatives)
FORWARD_OFFSETS = np.array(list(np.ndindex(3, 3, 3)), dtype=np.int64)[14:] - 1
GAP_BINS = 2  # an empty run of at least this many 3 mm bins along the principal axis is a gap
GAP_QUANTILES = (0.02, 0.98)  # the span of the projections searched for gaps
TOPOLOGY_OBSERVABLES = ("n_clusters", "n_clusters_3plus", "largest_share", "track_gaps")


def component_labels(coords: np.ndarray) -> np.ndarray:
    """(N,) int component index (0..K-1) of each voxel of ``coords`` (N, 3) unique int voxel
    indices, components being 26-connected: voxels whose indices differ by at most 1 on every
    axis are joined."""
    coords = np.asarray(coords, dtype=np.int64)
    n = len(coords)
    if n == 0:
        return np.zeros(0, np.int64)
    shifted = coords - coords.min(axis=0) + 1  # a one-voxel margin so every neighbour index is >= 0
    dims = shifted.max(axis=0) + 2
    keys = np.ravel_multi_index(shifted.T, dims)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    rows, cols = [], []
    for offset in FORWARD_OFFSETS:
        neighbour = np.ravel_multi_index((shifted + offset).T, dims)
        at = np.minimum(np.searchsorted(sorted_keys, neighbour), n - 1)
        hit = sorted_keys[at] == neighbour
        rows.append(np.flatnonzero(hit))
        cols.append(order[at[hit]])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    return csgraph.connected_components(graph, directed=False)[1]


def principal_projection(coords: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """(N,) projections (voxels) of the voxel centres ``coords`` (N, 3) on their energy-weighted
    first principal axis (uniform weights when the energies sum to zero)."""
    points = np.asarray(coords, dtype=np.float64)
    weights = np.asarray(energy, dtype=np.float64)
    if len(points) < 2:
        return np.zeros(len(points))
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    centre = np.average(points, axis=0, weights=weights)
    cov = np.cov(points - centre, rowvar=False, aweights=weights, bias=True)
    return (points - centre) @ np.linalg.eigh(cov)[1][:, -1]


def track_gaps(coords: np.ndarray, energy: np.ndarray, min_bins: int = GAP_BINS) -> int:
    """Empty stretches along the event's principal axis.

    The voxel centres ``coords`` (N, 3) are projected on the energy-weighted first principal
    axis; the projections between their 2nd and 98th percentile are binned in one-voxel (3 mm)
    steps; a gap is a run of at least ``min_bins`` consecutive empty bins. A continuous track
    projects onto every bin (its voxels step at most ~1 voxel along the axis), so it has 0 gaps
    whatever its direction; a track cut into k pieces has k - 1 gaps, and fragments scattered
    along the axis leave empty stretches between them. The percentile span ignores a few stray
    outlying voxels; runs of one empty bin (a diagonal step projecting past a bin) are not gaps.
    """
    along = principal_projection(coords, energy)
    if len(along) < 2:
        return 0
    lo, hi = np.quantile(along, GAP_QUANTILES)
    inside = along[(along >= lo) & (along <= hi)]
    n_bins = max(int(np.ceil(hi - lo)), 1)
    filled = np.bincount(np.minimum((inside - lo).astype(np.int64), n_bins - 1), minlength=n_bins) > 0
    edges = np.diff(np.r_[0, (~filled).astype(np.int8), 0])
    run_lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((run_lengths >= min_bins).sum())


def topology_observables(event: Event) -> dict[str, float]:
    """``TOPOLOGY_OBSERVABLES`` of one non-empty event (duplicate voxels merged first):
    ``n_clusters``, ``n_clusters_3plus`` (components of >= 3 voxels), ``largest_share`` (share
    of the energy, MeV, in the highest-energy component; 1 for an event of zero energy) and
    ``track_gaps`` (``track_gaps``)."""
    event = merge_duplicates(event)
    if len(event) == 0:
        raise ValueError("topology_observables of an empty event")
    labels = component_labels(event.coords)
    sizes = np.bincount(labels)
    energy = np.bincount(labels, weights=event.energy.astype(np.float64))
    total = energy.sum()
    return {
        "n_clusters": float(len(sizes)),
        "n_clusters_3plus": float((sizes >= 3).sum()),
        "largest_share": float(energy.max() / total) if total > 0 else 1.0,
        "track_gaps": float(track_gaps(event.coords, event.energy)),
    }
