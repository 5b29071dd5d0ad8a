"""Controlled degradations of real image sets, to check that each metric responds to a known
defect and grows with its size.

Each degradation is ``f(images (N, H, W), strength, rng) -> (N, H, W) float32`` on charge
images (>= 0, background 0), a new array; strength 0 returns the images unchanged. Like a
zero-suppressed readout, the ones that put charge on empty pixels (blur, noise) keep it only
above ``ZERO_SUPPRESSION`` times the image's mean charged-pixel charge; without that, any
strength above 0 would light up every pixel at once and the metrics could not grade it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from voxgen.evaluate.topology2d import principal_axes

Degradation = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

ZERO_SUPPRESSION = 0.05  # fraction of the image's mean charged-pixel charge
CUT_PIXELS = 3.0  # width of each cut of cut_tracks along the principal axis, pixels
CUT_SPACING = 10.0  # pixels of principal-axis extent per cut of cut_tracks at strength 1
PIECE_PIXELS = 8.0  # length of the pieces of scatter_fragments along the principal axis, pixels


def _mean_charge(images: np.ndarray) -> np.ndarray:
    """(N,) mean charge of each image's charged pixels (1 for empty images)."""
    charged = (images > 0).sum(axis=(1, 2))
    return np.where(charged > 0, images.sum(axis=(1, 2)) / np.maximum(charged, 1), 1.0)


def _zero_suppress_new(out: np.ndarray, images: np.ndarray) -> np.ndarray:
    """``out`` with the pixels that were empty in ``images`` zeroed where they hold less than
    ``ZERO_SUPPRESSION`` times the image's mean charged-pixel charge."""
    threshold = ZERO_SUPPRESSION * _mean_charge(images)[:, None, None]
    return np.where((images == 0) & (out < threshold), 0.0, out)


def _keep_totals(out: np.ndarray, images: np.ndarray) -> np.ndarray:
    """``out`` rescaled image by image to the total charge of ``images`` (float64 sums)."""
    before = images.sum(axis=(1, 2), dtype=np.float64)
    after = out.sum(axis=(1, 2), dtype=np.float64)
    scale = np.where(after > 0, before / np.where(after > 0, after, 1.0), 0.0)
    return out * scale[:, None, None]


def gaussian_blur(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of sigma = ``strength`` pixels in each image plane, zero-suppressed on
    formerly empty pixels; a per-image rescale keeps every image's total charge."""
    images = np.asarray(images, dtype=np.float64)
    if strength == 0:
        return images.astype(np.float32)
    blurred = ndimage.gaussian_filter(images, sigma=(0, strength, strength), mode="reflect")
    return _keep_totals(_zero_suppress_new(blurred, images), images).astype(np.float32)


def additive_noise(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise on every pixel, std = ``strength`` times the image's mean charged-pixel
    charge m, clipped at 0 and zero-suppressed on formerly empty pixels (noise hits survive
    above 0.05 m: ~11, 36 and 77 of 4096 empty pixels at strengths 0.018, 0.021, 0.024)."""
    images = np.asarray(images, dtype=np.float64)
    if strength == 0:
        return images.astype(np.float32)
    noise = rng.normal(size=images.shape) * (strength * _mean_charge(images))[:, None, None]
    return _zero_suppress_new(np.clip(images + noise, 0.0, None), images).astype(np.float32)


def pixel_dropout(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Each non-zero pixel set to 0 independently with probability ``strength`` (so a fraction
    ``strength`` of the charged pixels disappears in expectation)."""
    images = np.asarray(images, dtype=np.float32)
    if strength == 0:
        return images.copy()
    return np.where(rng.random(images.shape) < strength, 0.0, images).astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    """Boolean footprint of the pixels within ``radius`` of the centre pixel."""
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= radius * radius


def thicken_tracks(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Grey dilation over a disk of radius ``strength`` pixels (every pixel takes the largest
    charge within that radius, so lines become ~2 * strength + 1 pixels wide), then each image
    rescaled to its original total charge (the charge is spread, not created)."""
    images = np.asarray(images, dtype=np.float64)
    if strength == 0:
        return images.astype(np.float32)
    footprint = _disk(strength)[None]
    dilated = ndimage.grey_dilation(images, footprint=footprint, mode="constant", cval=0.0)
    return _keep_totals(dilated, images).astype(np.float32)


def rescale_charge(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Every pixel's charge multiplied by ``1 + strength`` (a miscalibrated charge scale)."""
    return (np.asarray(images, dtype=np.float64) * (1.0 + strength)).astype(np.float32)


def _axis_coordinate(images: np.ndarray) -> np.ndarray:
    """(N, H, W) coordinate of every pixel along its image's charge-weighted principal axis
    (pixels), 0 at the image's charge centre."""
    centre, axis = principal_axes(images)
    _, h, w = images.shape
    rows = np.arange(h)[None, :, None] - centre[:, 0, None, None]
    cols = np.arange(w)[None, None, :] - centre[:, 1, None, None]
    return rows * axis[:, 0, None, None] + cols * axis[:, 1, None, None]


def _charged_span(along: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) lowest and highest principal-axis coordinate of each image's charged pixels (0, 0
    for an empty image)."""
    charged = images > 0
    lo = np.where(charged, along, np.inf).min(axis=(1, 2))
    hi = np.where(charged, along, -np.inf).max(axis=(1, 2))
    empty = ~charged.any(axis=(1, 2))
    return np.where(empty, 0.0, lo), np.where(empty, 0.0, hi)


def cut_tracks(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Short stretches of charge removed along each image's principal axis: every charged pixel
    whose principal-axis coordinate falls in one of the image's cuts (bands ``CUT_PIXELS`` wide
    across the image, perpendicular to the axis) is set to 0. Cut starts are uniform over the
    image's charged span along the axis, their number Poisson with mean ``strength`` per
    ``CUT_SPACING`` pixels of that span (a 60-pixel track gets 6 cuts on average at strength 1,
    ~30% of its charge removed, and falls into ~7 pieces)."""
    images = np.asarray(images, dtype=np.float32)
    if strength == 0:
        return images.copy()
    along = _axis_coordinate(images)
    lo, hi = _charged_span(along, images)
    n_cuts = rng.poisson(strength * (hi - lo + 1.0) / CUT_SPACING)
    fractions = rng.random((len(images), n_cuts.max(initial=0)))
    starts = lo[:, None] - CUT_PIXELS + (hi - lo + CUT_PIXELS)[:, None] * fractions
    cut = np.zeros(images.shape, bool)
    for k in range(starts.shape[1]):
        start = np.where(k < n_cuts, starts[:, k], np.inf)[:, None, None]
        cut |= (along >= start) & (along < start + CUT_PIXELS)
    return np.where(cut, 0.0, images).astype(np.float32)


def scatter_fragments(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Each image cut across its principal axis into pieces ``PIECE_PIXELS`` long (at a random
    phase) and every piece moved, whole, by ``strength * PIECE_PIXELS`` pixels in a uniformly
    random direction (rounded to whole pixels; at strength 1 the pieces land about a piece
    length apart). Charge moved out of the image is lost; pieces landing on each other add."""
    images = np.asarray(images, dtype=np.float32)
    if strength == 0:
        return images.copy()
    n, h, w = images.shape
    along = _axis_coordinate(images)
    lo, _ = _charged_span(along, images)
    phase = rng.random(n) * PIECE_PIXELS
    piece = np.floor((along - lo[:, None, None] + phase[:, None, None]) / PIECE_PIXELS).astype(np.int64)
    img, row, col = np.nonzero(images > 0)
    piece = np.clip(piece[img, row, col], 0, None)
    direction = rng.uniform(0.0, 2 * np.pi, (n, piece.max(initial=0) + 1))
    shift = strength * PIECE_PIXELS
    row_to = row + np.rint(shift * np.sin(direction[img, piece])).astype(np.int64)
    col_to = col + np.rint(shift * np.cos(direction[img, piece])).astype(np.int64)
    inside = (row_to >= 0) & (row_to < h) & (col_to >= 0) & (col_to < w)
    target = np.ravel_multi_index((img[inside], row_to[inside], col_to[inside]), images.shape)
    moved = np.bincount(target, images[img, row, col][inside].astype(np.float64), images.size)
    return moved.reshape(images.shape).astype(np.float32)


DEGRADATIONS: dict[str, Degradation] = {
    "gaussian_blur": gaussian_blur,
    "additive_noise": additive_noise,
    "pixel_dropout": pixel_dropout,
    "thicken_tracks": thicken_tracks,
    "rescale_charge": rescale_charge,
    "cut_tracks": cut_tracks,
    "scatter_fragments": scatter_fragments,
}

# increasing strengths per degradation, the first the identity
STRENGTHS: dict[str, list[float]] = {
    "gaussian_blur": [0.0, 0.5, 0.75, 1.0],  # sigma, pixels
    "additive_noise": [0.0, 0.018, 0.021, 0.024],  # std / mean charged-pixel charge
    "pixel_dropout": [0.0, 0.1, 0.25, 0.5],  # fraction of charged pixels removed
    "thicken_tracks": [0.0, 1.0, 1.5, 2.0],  # dilation radius, pixels
    "rescale_charge": [0.0, 0.1, 0.25, 0.5],  # relative charge-scale error
    "cut_tracks": [0.0, 0.25, 0.5, 1.0],  # cuts per CUT_SPACING pixels of principal-axis span
    "scatter_fragments": [0.0, 0.25, 0.5, 1.0],  # piece displacement / PIECE_PIXELS
}
