"""Distances between sets of images or feature vectors: FID, MMD, histogram KL / chi-square,
per-image optimal transport (exact EMD, Sinkhorn divergence) and SSNet-output statistics.

Conventions: "reference" (real) is always the first argument, "candidate" (generated) the
second. Images are (N, H, W) float arrays of charge >= 0 with background exactly 0; pixel
coordinates and transport costs are in pixel units.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import ot
import torch
from scipy import linalg, stats

T = TypeVar("T")

# ---- feature-set distances -------------------------------------------------------------------


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    ``feat_a`` (N, D), ``feat_b`` (M, D). Returns
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` in squared feature units. When the
    matrix square root is not finite (near-singular covariances), ``eps`` times the identity is
    added to both covariances; the imaginary part left by numerical error is dropped.
    """
    a = np.asarray(feat_a, dtype=np.float64).reshape(len(feat_a), -1)
    b = np.asarray(feat_b, dtype=np.float64).reshape(len(feat_b), -1)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # near-singular products are handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        offset = eps * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean.real))


def _median_distance(x: torch.Tensor, y: torch.Tensor, max_points: int = 2000) -> float:
    """Median pairwise Euclidean distance of the pooled set (a fixed subsample of at most
    ``max_points`` points, so the heuristic costs the same at 10k points)."""
    pooled = torch.cat([x, y])
    if len(pooled) > max_points:
        pick = torch.randperm(len(pooled), generator=torch.Generator().manual_seed(0))[:max_points]
        pooled = pooled[pick]
    d = torch.pdist(pooled)
    return float(d.median()) if len(d) else 1.0


def _kernel_sum(x: torch.Tensor, y: torch.Tensor, gammas: torch.Tensor, chunk_size: int) -> float:
    """sum_ij sum_k exp(-gamma_k |x_i - y_j|^2), rows processed ``chunk_size`` at a time."""
    total = 0.0
    y_sq = (y * y).sum(1)
    for start in range(0, len(x), chunk_size):
        xc = x[start : start + chunk_size]
        d2 = ((xc * xc).sum(1)[:, None] + y_sq[None, :] - 2.0 * xc @ y.T).clamp_min_(0.0)
        total += float(sum(torch.exp(-g * d2).sum() for g in gammas))
    return total


def mmd_rbf(x, y, bandwidths=None, chunk_size: int = 2048) -> float:
    """Unbiased MMD^2 between ``x`` (N, D) and ``y`` (M, D) with a sum of RBF kernels.

    ``k(u, v) = sum_h exp(-|u - v|^2 / (2 h^2))`` over the bandwidths ``h`` (feature units);
    ``None`` takes the median heuristic: ``h = m * [0.5, 1, 2]`` with ``m`` the median pairwise
    distance of the pooled points. The estimator drops the i == j terms, so it is ~0 (and can be
    slightly negative) for samples of one distribution. Accepts numpy arrays or torch tensors
    (computed in float64); kernel blocks are ``chunk_size`` rows at a time, so 10k x 10k fits
    in memory.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd_rbf needs at least 2 samples in each set")
    if bandwidths is None:
        bandwidths = _median_distance(x, y) * np.array([0.5, 1.0, 2.0])
    h = torch.as_tensor(np.atleast_1d(np.asarray(bandwidths, dtype=np.float64)))
    gammas = 1.0 / (2.0 * h * h)
    n, m, k = len(x), len(y), len(gammas)
    kxx = (_kernel_sum(x, x, gammas, chunk_size) - n * k) / (n * (n - 1))
    kyy = (_kernel_sum(y, y, gammas, chunk_size) - m * k) / (m * (m - 1))
    kxy = _kernel_sum(x, y, gammas, chunk_size) / (n * m)
    return kxx + kyy - 2.0 * kxy


# ---- one-dimensional histograms --------------------------------------------------------------


def _shared_histograms(a_values, b_values, bins) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples on shared bins.

    ``bins``: an int (that many equal bins spanning both samples) or an array of edges. NaNs
    are dropped; values outside explicit edges are clipped into the end bins, so a candidate
    that overshoots the reference range is counted, not ignored.
    """
    a = np.asarray(a_values, dtype=np.float64).ravel()
    b = np.asarray(b_values, dtype=np.float64).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("histogram comparison of an empty sample")
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
    lo, hi = edges[0], edges[-1]
    return (
        np.histogram(np.clip(a, lo, hi), edges)[0].astype(np.float64),
        np.histogram(np.clip(b, lo, hi), edges)[0].astype(np.float64),
    )


def histogram_kl(a_values, b_values, bins, eps: float = 1e-6) -> float:
    """KL(reference || candidate) of two samples histogrammed on shared bins (nats).

    Each histogram is normalised to unit sum, ``eps`` is added to every bin and it is
    renormalised (so empty candidate bins cost ``~p log(p / eps)`` instead of infinity).
    ``bins`` as in ``numpy.histogram``; NaNs dropped, out-of-range values clipped to end bins.
    """
    ca, cb = _shared_histograms(a_values, b_values, bins)
    p = ca / ca.sum() + eps
    q = cb / cb.sum() + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def histogram_chi2(a_values, b_values, bins) -> float:
    """Two-sample chi-square of histograms on shared bins (the figure of the physics
    chi-square table of Imani, NPML 2024).

    ``chi2 = 1 / (Na Nb) * sum_i (Nb a_i - Na b_i)^2 / (a_i + b_i)`` over bins with
    ``a_i + b_i > 0``, with ``a_i, b_i`` raw counts and ``Na, Nb`` their totals. For equal
    totals this is ``sum (a_i - b_i)^2 / (a_i + b_i)``; for two samples of one distribution it
    is ~chi-square with (non-empty bins - 1) degrees of freedom. Grows with the sample size for
    different distributions, so compare figures at equal sample sizes.
    """
    ca, cb = _shared_histograms(a_values, b_values, bins)
    na, nb = ca.sum(), cb.sum()
    both = (ca + cb) > 0
    return float(np.sum((nb * ca[both] - na * cb[both]) ** 2 / (ca[both] + cb[both])) / (na * nb))


def observable_scores(a_values, b_values, n_bins: int = 20) -> tuple[float, float]:
    """(chi-square, KL) of two samples of one observable on ``n_bins`` shared equal bins
    spanning the 1-99.5% quantiles of the pooled values (outliers clipped into the end bins,
    so one wild value does not stretch the binning). When only one sample is empty (say, a
    candidate set with no track at all) both are infinite; NaN when both are empty."""
    a = np.asarray(a_values, dtype=np.float64).ravel()
    b = np.asarray(b_values, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        value = float("nan") if len(a) == len(b) else float("inf")
        return value, value
    lo, hi = np.quantile(np.concatenate([a, b]), [0.01, 0.995])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
    return histogram_chi2(a, b, edges), histogram_kl(a, b, edges)


# ---- per-image optimal transport -------------------------------------------------------------

EMD_MAX_ITER = 1_000_000
SINKHORN_REG = 1.0  # pixels: the entropic blur scale
SINKHORN_MAX_ITER = 10_000
SINKHORN_STOP = 1e-6
NN_PREFILTER_GRID = 8  # nearest-image shortlists compare unit-charge images pooled onto 8x8
MAX_POINTS = 512  # per-image transport support; denser images are coarse-grained (see charge_points)


def charge_points(image: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W) image as a charge distribution over its non-zero pixels: coordinates (K, 2)
    float64 (row, column, in pixels) and weights (K,) float64 summing to 1.

    Exact while the image has at most ``max_points`` charged pixels (every real 64x64 crop
    here: median ~100, max ~300). A denser image (noise, heavy blur) is summed over k x k
    blocks, k = 2, 4, ... until it fits, each block's charge placed at the block centre: the
    transport cost of such a pair then differs from the exact one by at most the block's
    half-diagonal (measured: |error| < 0.25 px at k = 4), and the exact network simplex on
    2000-pixel supports (~1-2 s a pair) becomes ~10 ms.
    """
    image = np.asarray(image, dtype=np.float64)
    k = 1
    while np.count_nonzero(image) > max_points and min(image.shape) >= 2:
        h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
        image = image[:h, :w].reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
        k *= 2
    rows, cols = np.nonzero(image)
    weights = image[rows, cols]
    total = weights.sum()
    if len(weights) == 0 or total <= 0:
        raise ValueError("optimal transport of an image with no positive charge")
    points = np.stack([rows, cols], axis=1).astype(np.float64) * k + (k - 1) / 2.0
    return points, weights / total


def image_emd(img_a: np.ndarray, img_b: np.ndarray, max_points: int = MAX_POINTS) -> float:
    """Exact Wasserstein-1 (earth mover's) distance, in pixels, between two (H, W) images
    each normalised to unit total charge; ground cost = Euclidean pixel distance; solved by
    POT's network simplex (``ot.emd2``) on the non-zero pixels (coarse-grained above
    ``max_points`` of them, see ``charge_points``)."""
    xa, wa = charge_points(img_a, max_points)
    xb, wb = charge_points(img_b, max_points)
    return float(ot.emd2(wa, wb, ot.dist(xa, xb, metric="euclidean"), numItermax=EMD_MAX_ITER))


def _sinkhorn_cost(xa, wa, xb, wb, reg: float) -> float:
    """Transport cost <P, C> of the entropic plan P (Euclidean cost C)."""
    cost = ot.dist(xa, xb, metric="euclidean")
    return float(
        ot.sinkhorn2(
            wa, wb, cost, reg, method="sinkhorn_stabilized", numItermax=SINKHORN_MAX_ITER, stopThr=SINKHORN_STOP
        )
    )


def sinkhorn_divergence(xa: np.ndarray, wa: np.ndarray, xb: np.ndarray, wb: np.ndarray, reg: float) -> float:
    """Debiased Sinkhorn divergence ``S = OT(a, b) - (OT(a, a) + OT(b, b)) / 2`` between
    weighted point clouds ``xa`` (K, d), ``wa`` (K,) and ``xb``, ``wb`` (weights summing to 1).

    ``OT`` is the transport cost <P, C> of the entropic plan (POT's ``sinkhorn2``) for the
    Euclidean ground cost C, ``reg`` the entropic scale in the units of the coordinates. The
    solver is POT's log-absorption stabilised Sinkhorn (``sinkhorn_stabilized``): it reaches
    the same values as the pure log-domain ``sinkhorn_log`` (to the 1e-6 stopping threshold)
    about 10x faster on 64x64 crops. S is 0 for identical inputs and approaches the EMD as
    ``reg`` -> 0.
    """
    ab = _sinkhorn_cost(xa, wa, xb, wb, reg)
    aa = _sinkhorn_cost(xa, wa, xa, wa, reg)
    bb = _sinkhorn_cost(xb, wb, xb, wb, reg)
    return ab - 0.5 * (aa + bb)


def image_sinkhorn(
    img_a: np.ndarray, img_b: np.ndarray, reg: float = SINKHORN_REG, max_points: int = MAX_POINTS
) -> float:
    """Debiased Sinkhorn divergence (pixels) between two (H, W) images as unit-charge
    distributions over their non-zero pixels (``charge_points``); ``reg`` in pixels (see
    ``sinkhorn_divergence``)."""
    xa, wa = charge_points(img_a, max_points)
    xb, wb = charge_points(img_b, max_points)
    return sinkhorn_divergence(xa, wa, xb, wb, reg)


def energy_set_distance(
    set_a: Sequence[T], set_b: Sequence[T], distance: Callable[[T, T], float], n_pairs: int, rng: np.random.Generator
) -> float:
    """Energy-distance-style statistic of two sets under a per-item distance d (d's units):

        D = E[d(a, b)] - (E[d(a, a')] + E[d(b, b')]) / 2,

    a, a' distinct items of ``set_a``, b, b' distinct items of ``set_b`` (any indexable
    sequences: image arrays, event lists), each expectation the mean over ``n_pairs`` random
    pairs drawn with ``rng`` (3 * n_pairs evaluations of d). D is half the energy distance of
    the two sets under d: ~0 (up to sampling noise of order std(d) / sqrt(n_pairs)) when they
    share a distribution, and it grows as they differ. Reusing a seeded ``rng`` across calls
    pairs the same indices, which cancels most of the noise when comparing degraded versions
    of one set.
    """
    na, nb = len(set_a), len(set_b)
    if na < 2 or nb < 2:
        raise ValueError("energy_set_distance needs at least 2 items in each set")

    def mean_over(x: Sequence[T], i: np.ndarray, y: Sequence[T], j: np.ndarray) -> float:
        return float(np.mean([distance(x[p], y[q]) for p, q in zip(i, j)]))

    def distinct_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(0, n, n_pairs)
        return i, (i + rng.integers(1, n, n_pairs)) % n

    cross = mean_over(set_a, rng.integers(0, na, n_pairs), set_b, rng.integers(0, nb, n_pairs))
    ia, ja = distinct_pairs(na)
    ib, jb = distinct_pairs(nb)
    within_a = mean_over(set_a, ia, set_a, ja)
    within_b = mean_over(set_b, ib, set_b, jb)
    return cross - 0.5 * (within_a + within_b)


def with_charge(images: np.ndarray) -> np.ndarray:
    """The images (N, H, W) that hold some positive charge."""
    images = np.asarray(images)
    return images[(images > 0).any(axis=(1, 2))]


def nearest_emd(candidates: np.ndarray, train: np.ndarray, k_prefilter: int = 20) -> np.ndarray:
    """(N,) EMD (pixels) from each of ``candidates`` (N, H, W) to its nearest image in
    ``train`` (M, H, W).

    Prefilter: the ``k_prefilter`` training images closest in L2 distance between unit-charge
    images average-pooled onto an 8x8 grid; the exact ``image_emd`` is then taken to those k
    only, so the result is the true nearest-neighbour EMD whenever that neighbour is among the
    k (always for exact copies, whose pooled distance is 0).
    """
    cand = torch.from_numpy(pooled_pixels(candidates, NN_PREFILTER_GRID, normalise=True))
    ref = torch.from_numpy(pooled_pixels(train, NN_PREFILTER_GRID, normalise=True))
    k = min(k_prefilter, len(train))
    shortlist = torch.cdist(cand, ref).topk(k, dim=1, largest=False).indices.numpy()
    return np.array([min(image_emd(c, train[j]) for j in row) for c, row in zip(candidates, shortlist)])


def nearest_emd_distance(
    images_a: np.ndarray, images_b: np.ndarray, n: int, rng: np.random.Generator, k_prefilter: int = 5
) -> float:
    """Symmetric nearest-neighbour EMD (pixels) of two image sets (N, H, W), (M, H, W): the
    mean, over ``n`` random images of each set, of the EMD to the nearest image of the other
    set (``nearest_emd``), averaged over both directions. One direction grows when
    candidates leave the real manifold, the other when they miss part of it (mode dropping).
    Its floor, the same between two real samples, is the typical gap between neighbours.
    Images with no charge (a generator can draw empty crops) have no EMD and are left out;
    NaN when a set has none with charge.
    """
    images_a, images_b = with_charge(images_a), with_charge(images_b)
    if len(images_a) == 0 or len(images_b) == 0:
        return float("nan")
    pick_a = rng.permutation(len(images_a))[:n]
    pick_b = rng.permutation(len(images_b))[:n]
    forward = nearest_emd(images_b[pick_b], images_a, k_prefilter).mean()
    backward = nearest_emd(images_a[pick_a], images_b, k_prefilter).mean()
    return float(0.5 * (forward + backward))


def pixel_charge_w1(images_a: np.ndarray, images_b: np.ndarray) -> float:
    """Wasserstein-1 distance between the charge distributions of the charged pixels of two
    image sets (N, H, W), over the mean charged-pixel charge of ``images_a`` (dimensionless:
    a 10% charge-scale error gives ~0.1)."""
    a = np.asarray(images_a)[np.asarray(images_a) > 0].astype(np.float64)
    b = np.asarray(images_b)[np.asarray(images_b) > 0].astype(np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("pixel_charge_w1 of an image set with no charged pixel")
    return float(stats.wasserstein_distance(a, b) / a.mean())


# ---- pixel features --------------------------------------------------------------------------


def pooled_pixels(images: np.ndarray, grid: int = 8, normalise: bool = False) -> np.ndarray:
    """(N, grid * grid) float64 features: (N, H, W) images average-pooled onto a grid x grid
    lattice (H and W multiples of ``grid``), optionally each normalised to unit total charge."""
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"images {h}x{w} do not pool onto a {grid}x{grid} grid")
    pooled = images.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(n, -1)
    if normalise:
        pooled = pooled / np.maximum(pooled.sum(axis=1, keepdims=True), np.finfo(float).tiny)
    return pooled


# ---- SSNet output statistics (Lutkus et al., arXiv:2204.02496, Table 4) ----------------------

SHOWER, TRACK = 1, 2  # SSNet classes: 0 background, 1 shower, 2 track


def ssnet_output_stats(probs: np.ndarray, images: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """SSNet output summaries of one image set.

    ``probs`` (N, 3, H, W) class probabilities (background, shower, track); ``images``
    (N, H, W) charge. Over the pixels with charge > ``threshold``:
    ``shower_count``, ``track_count`` (N,) int: pixels whose argmax class is shower / track;
    ``shower_score``, ``track_score`` (P,) float: the shower / track probability of every such
    pixel (all P above-threshold pixels of the set, whatever their argmax).
    """
    probs = np.asarray(probs)
    above = np.asarray(images) > threshold
    label = probs.argmax(axis=1)
    return {
        "shower_count": ((label == SHOWER) & above).sum(axis=(1, 2)),
        "track_count": ((label == TRACK) & above).sum(axis=(1, 2)),
        "shower_score": probs[:, SHOWER][above].astype(np.float64),
        "track_score": probs[:, TRACK][above].astype(np.float64),
    }


def ssnet_kl(
    stats_ref: dict, stats_cand: dict, score_bins: int = 50, count_bins: int = 20, eps: float = 1e-6
) -> dict[str, float]:
    """KL(reference || candidate) of the four ``ssnet_output_stats`` distributions.

    Counts on ``count_bins`` bins of equal whole-pixel width spanning 0 to the reference's
    99.5% quantile (larger counts of either set fall in the last bin), so the binning is fixed
    by the reference and not moved by the candidate; scores on ``score_bins`` equal bins of
    [0, 1]. Keys: shower_count, track_count, shower_score, track_score.
    """
    out = {}
    for key in ("shower_count", "track_count"):
        top = float(np.quantile(stats_ref[key], 0.995)) if len(stats_ref[key]) else 0.0
        width = max(1, int(np.ceil((top + 1) / count_bins)))
        edges = np.arange(count_bins + 1) * width - 0.5
        out[key] = histogram_kl(stats_ref[key], stats_cand[key], edges, eps)
    for key in ("shower_score", "track_score"):
        out[key] = histogram_kl(stats_ref[key], stats_cand[key], np.linspace(0, 1, score_bins + 1), eps)
    return out
