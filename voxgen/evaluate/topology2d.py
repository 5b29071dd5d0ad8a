"""Topology of 2D charge images: how the charged pixels hang together.

A real crop holds a few connected tracks and branching showers; a generator that scatters
small blobs over the image can match its pixel count, charge and extent while having none of
its structure. These per-image figures see the difference (the 2D counterparts of
``voxgen.evaluate.topology``):

``n_clusters``: 8-connected components of the charged pixels (pixels touching by an edge or a
corner belong together; ``scipy.ndimage.label``); ``n_clusters_3plus``: the components of at
least 3 pixels (single pixels and pairs, common around showers, left out); ``largest_share``:
the share of the image's charge in its highest-charge component; ``track_gaps``: empty
stretches along the image's principal axis (``track_gaps``).

All are computed for a whole stack of images at once (10k 64x64 crops in about a second).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

GAP_BINS = 2  # an empty run of at least this many 1-pixel bins along the principal axis is a gap
GAP_QUANTILES = (0.02, 0.98)  # the span of the projections searched for gaps
TOPOLOGY_OBSERVABLES = ("n_clusters", "n_clusters_3plus", "largest_share", "track_gaps")
CHUNK = 2048  # images labelled at once (bounds the int32 label stack to 32 MiB at 64x64)
# 8-connectivity within each image of an (N, H, W) stack, none across images
EIGHT_CONNECTED = np.zeros((3, 3, 3), bool)
EIGHT_CONNECTED[1] = True


def charged_pixels(images: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, ...]:
    """(image, row, column, charge) of every pixel above ``threshold`` in ``images`` (N, H, W),
    image-major; charges float64."""
    images = np.asarray(images)
    img, row, col = np.nonzero(images > threshold)
    return img, row, col, images[img, row, col].astype(np.float64)


def principal_axes(images: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Charge-weighted centre (N, 2) and first principal axis (N, 2), both as (row, column)
    pixels / unit vectors, of the charged pixels of each of ``images`` (N, H, W). Images with
    no charge get the image centre and the row axis (0, 1)."""
    images = np.asarray(images)
    n, h, w = images.shape
    img, row, col, q = charged_pixels(images, threshold)
    total = np.bincount(img, q, n)
    safe = np.where(total > 0, total, 1.0)
    mean_r = np.where(total > 0, np.bincount(img, q * row, n) / safe, (h - 1) / 2)
    mean_c = np.where(total > 0, np.bincount(img, q * col, n) / safe, (w - 1) / 2)
    dr, dc = row - mean_r[img], col - mean_c[img]
    var_r, var_c, cov = (np.bincount(img, q * a * b, n) / safe for a, b in ((dr, dr), (dc, dc), (dr, dc)))
    angle = 0.5 * np.arctan2(2 * cov, var_c - var_r)  # from the column axis towards the row axis
    return np.stack([mean_r, mean_c], axis=1), np.stack([np.sin(angle), np.cos(angle)], axis=1)


def _projections(images: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(image index, projection on its principal axis in pixels) of each charged pixel."""
    centre, axis = principal_axes(images, threshold)
    img, row, col, _ = charged_pixels(images, threshold)
    return img, (row - centre[img, 0]) * axis[img, 0] + (col - centre[img, 1]) * axis[img, 1]


def _segment_quantile(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` (linear interpolation, as ``numpy.quantile``) of each segment
    ``values[starts[i] : starts[i] + counts[i]]`` of a segment-wise sorted array; counts >= 1."""
    position = starts + q * (counts - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, starts + counts - 1)
    return values[below] + (position - below) * (values[above] - values[below])


def track_gaps(images: np.ndarray, threshold: float = 0.0, min_bins: int = GAP_BINS) -> np.ndarray:
    """(N,) empty stretches along each image's principal axis.

    The charged pixels of each of ``images`` (N, H, W) are projected on the image's
    charge-weighted first principal axis; the projections between their 2nd and 98th percentile
    are binned in 1-pixel steps; a gap is a run of at least ``min_bins`` consecutive empty bins.
    A continuous line projects onto every bin (its pixels step at most sqrt(2) pixels along the
    axis), so it has 0 gaps whatever its direction; a line cut into k pieces by cuts of 2 pixels
    or more has k - 1 gaps, and fragments scattered along the axis leave empty stretches between
    them. The percentile span ignores a few stray outlying pixels; runs of one empty bin (a
    diagonal step projecting past a bin) are not gaps. Images with fewer than 2 charged pixels
    have 0 gaps.
    """
    images = np.asarray(images)
    n = len(images)
    img, along = _projections(images, threshold)
    order = np.lexsort((along, img))
    img, along = img[order], along[order]
    counts = np.bincount(img, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts >= 2
    lo, hi = np.zeros(n), np.zeros(n)
    lo[has], hi[has] = (_segment_quantile(along, starts[has], counts[has], q) for q in GAP_QUANTILES)
    n_bins = np.maximum(np.ceil(hi - lo).astype(np.int64), 1)
    inside = has[img] & (along >= lo[img]) & (along <= hi[img])
    img, along = img[inside], along[inside]
    bins = np.minimum((along - lo[img]).astype(np.int64), n_bins[img] - 1)
    key = np.unique(img * (n_bins.max() + 1) + bins)  # the filled (image, bin) pairs, sorted
    if len(key) == 0:
        return np.zeros(n, np.int64)
    img, bins = key // (n_bins.max() + 1), key % (n_bins.max() + 1)
    same = img[1:] == img[:-1]
    inner = np.bincount(img[1:][same & (np.diff(bins) - 1 >= min_bins)], minlength=n)
    first = np.r_[True, ~same]  # the first and last filled bin of each image
    last = np.r_[~same, True]
    leading = np.bincount(img[first & (bins >= min_bins)], minlength=n)
    trailing = np.bincount(img[last & (n_bins[img] - 1 - bins >= min_bins)], minlength=n)
    return np.where(has, inner + leading + trailing, 0)


def _cluster_block(images: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Component statistics of one block of images (N, H, W)."""
    n = len(images)
    labels, n_labels = ndimage.label(images > threshold, structure=EIGHT_CONNECTED)
    flat = np.flatnonzero(labels)
    component = labels.ravel()[flat]
    owner = np.zeros(n_labels + 1, np.int64)
    owner[component] = flat // (images.shape[1] * images.shape[2])
    owner = owner[1:]
    sizes = np.bincount(component, minlength=n_labels + 1)[1:]
    charge = np.bincount(component, images.ravel()[flat].astype(np.float64), n_labels + 1)[1:]
    largest = np.zeros(n)
    np.maximum.at(largest, owner, charge)
    total = np.bincount(owner, charge, n)
    return {
        "n_clusters": np.bincount(owner, minlength=n),
        "n_clusters_3plus": np.bincount(owner[sizes >= 3], minlength=n),
        "largest_share": np.where(total > 0, largest / np.where(total > 0, total, 1.0), np.nan),
    }


def topology_observables(images: np.ndarray, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """``TOPOLOGY_OBSERVABLES`` of each of ``images`` (N, H, W) charge (MeV), pixels above
    ``threshold`` counting as charged; (N,) arrays: ``n_clusters`` and ``n_clusters_3plus``
    (int; 0 for an empty image), ``largest_share`` (the highest-charge component's share of the
    image's charge; NaN for an image without charge) and ``track_gaps`` (int, ``track_gaps``)."""
    images = np.asarray(images)
    if len(images) == 0:
        return {name: np.zeros(0) for name in TOPOLOGY_OBSERVABLES}
    blocks = [_cluster_block(images[s : s + CHUNK], threshold) for s in range(0, len(images), CHUNK)]
    out = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    out["track_gaps"] = track_gaps(images, threshold)
    return out
