"""Views: pure functions turning an Event into the arrays models eat.

2D projections sum the 3D charge along the axis left out: plane ``"zx"`` is an image with rows
indexed by z and columns by x (``pixel_voxels`` voxels per pixel side), as in the 2D
single-particle set of the VQ-VAE paper (Lutkus et al., arXiv:2204.02496, A.3-A.4: xy, yz, zx
projections; zx used; 64x64 crops with at least 10 non-zero pixels).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from voxgen.detector.planes import PlaneGeometry, project_to_planes
from voxgen.errors import BadInput, ConfigError
from voxgen.events import SEMANTIC_NAMES, Event

PLANES = ("xy", "yz", "zx")
PIXEL_VALUES = ("energy", "electrons", "count")
SSNET_CLASSES = ("background", "shower", "track")
# semantic -1 (unknown/background), 0 shower, 1 track, 2 Michel, 3 delta, 4 low-energy -> SSNet
_SSNET_OF_SEMANTIC = np.array([0, 1, 2, 1, 1, 1], dtype=np.int64)


def _plane_axes(plane: str) -> tuple[int, int]:
    if plane not in PLANES:
        raise ConfigError(f"unknown projection plane '{plane}' (one of {', '.join(PLANES)})")
    return "xyz".index(plane[0]), "xyz".index(plane[1])


def _pixels(event: Event, plane: str, pixel_voxels: int) -> tuple[np.ndarray, int]:
    """(N,) int64 flat pixel index of every voxel and the image side in pixels."""
    if pixel_voxels < 1:
        raise ConfigError(f"pixel_voxels must be >= 1, got {pixel_voxels}")
    row_axis, col_axis = _plane_axes(plane)
    side = -(-event.grid // pixel_voxels)
    rows = event.coords[:, row_axis].astype(np.int64) // pixel_voxels
    cols = event.coords[:, col_axis].astype(np.int64) // pixel_voxels
    return rows * side + cols, side


def project_2d(event: Event, plane: str = "zx", pixel_voxels: int = 1, values: str = "energy") -> np.ndarray:
    """(H, W) float32 image, H = W = ceil(grid / pixel_voxels), summing ``values`` per pixel.

    ``values``: ``"energy"`` (MeV), ``"electrons"``, or ``"count"`` (voxels per pixel).
    """
    if values not in PIXEL_VALUES:
        raise ConfigError(f"project_2d: values must be one of {PIXEL_VALUES}, got '{values}'")
    flat, side = _pixels(event, plane, pixel_voxels)
    weights = None if values == "count" else getattr(event, values)
    if values == "electrons" and weights is None:
        raise BadInput("project_2d: the event has no per-voxel electron counts")
    image = np.bincount(flat, weights=weights, minlength=side * side)
    return image.reshape(side, side).astype(np.float32)


def project_labels_2d(event: Event, plane: str = "zx", pixel_voxels: int = 1) -> np.ndarray:
    """(H, W) int64 semantic label per pixel: the label with the most energy in the pixel.

    -1 where no positive energy was deposited, and where the deposits have no known label
    (unlabelled events give -1 everywhere).
    """
    flat, side = _pixels(event, plane, pixel_voxels)
    semantic = event.semantic
    labels = np.full(len(event), -1, np.int64) if semantic is None else semantic.astype(np.int64)
    deposited = event.energy > 0
    flat, labels, energy = flat[deposited], labels[deposited], event.energy[deposited]
    n_labels = len(SEMANTIC_NAMES) + 1  # -1 (unknown) and the semantic types
    keys, inverse = np.unique(flat * n_labels + (labels + 1), return_inverse=True)
    label_energy = np.bincount(inverse, weights=energy, minlength=len(keys))
    pixel = keys // n_labels
    order = np.lexsort((-label_energy, pixel))  # per pixel, highest-energy label first
    first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]] if len(order) else order
    out = np.full(side * side, -1, np.int64)
    out[pixel[first]] = keys[first] % n_labels - 1
    return out.reshape(side, side)


def semantic_to_ssnet(labels: np.ndarray) -> np.ndarray:
    """int64 SSNet classes (SSNET_CLASSES) of semantic labels: -1 -> 0 background;
    shower, Michel, delta, low-energy -> 1 shower; track -> 2 track."""
    return _SSNET_OF_SEMANTIC[np.asarray(labels, dtype=np.int64) + 1]


def _window_counts(occupied: np.ndarray, size: int) -> np.ndarray:
    """(H, W) number of occupied pixels in the size x size window starting ``size // 2`` before
    each pixel (the crop centred there), from a summed-area table."""
    half = size // 2
    padded = np.pad(occupied.astype(np.int64), ((half + 1, size), (half + 1, size)))
    table = padded.cumsum(0).cumsum(1)
    h, w = occupied.shape
    r0, c0 = np.arange(h)[:, None] + 1, np.arange(w)[None, :] + 1  # window start in padded + 1
    r1, c1 = r0 + size, c0 + size
    return table[r1 - 1, c1 - 1] - table[r0 - 1, c1 - 1] - table[r1 - 1, c0 - 1] + table[r0 - 1, c0 - 1]


def sample_crops(
    event: Event,
    plane: str = "zx",
    size: int = 64,
    n: int = 1,
    rng: np.random.Generator | None = None,
    min_pixels: int = 10,
    pixel_voxels: int = 1,
    where: str = "event",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` crops (image (size, size) float32 MeV, labels (size, size) int64 SSNet classes).

    Each crop is centred on a deposited pixel drawn at random among those whose crop holds at
    least ``min_pixels`` non-zero pixels (outside the grid counts as empty). Raises ``BadInput``
    naming ``where`` when no pixel qualifies.
    """
    rng = np.random.default_rng() if rng is None else rng
    image = project_2d(event, plane, pixel_voxels)
    occupied = image > 0
    counts = _window_counts(occupied, size)
    rows, cols = np.nonzero(occupied & (counts >= min_pixels))
    if len(rows) == 0:
        raise BadInput(
            f"{where}: no {size}x{size} crop of the {plane} projection has "
            f"{min_pixels} non-zero pixels (the event has {int(occupied.sum())})"
        )
    labels = semantic_to_ssnet(project_labels_2d(event, plane, pixel_voxels))
    half = size // 2
    pad = ((half, size), (half, size))
    image, labels = np.pad(image, pad), np.pad(labels, pad)
    picks = rng.integers(len(rows), size=n)
    return [
        (image[r : r + size, c : c + size].copy(), labels[r : r + size, c : c + size].copy())
        for r, c in zip(rows[picks], cols[picks])
    ]


def wire_plane_images(event: Event, geometry: PlaneGeometry | None = None) -> dict[str, np.ndarray]:
    """{plane name: (n_wires, n_ticks) float32 MeV} wire-plane images of one event.

    The geometry's grid is taken from the event (the detector is the event's volume).
    """
    geometry = PlaneGeometry() if geometry is None else geometry
    if geometry.grid != event.grid:
        geometry = replace(geometry, grid=event.grid)
    images = project_to_planes(event.coords, event.energy, geometry)
    return {name: image[0].numpy() for name, image in images.items()}
