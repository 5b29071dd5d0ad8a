"""Physics observables of image and event sets: the reconstruction-inspired quantities whose
distributions the chi-square table of Imani (NPML 2024) compares (track length, track width,
shower charge), plus 3D event shapes, track dE/dx and a point-cloud Sinkhorn divergence.

2D images are (N, H, W) charge with SSNet labels (N, H, W) int: 0 background, 1 shower,
2 track; lengths in pixels. 3D events are ``voxgen.events.Event``; lengths in cm, energies MeV.
How the voxels of a 3D event hang together (connected clusters, gaps) is ``voxgen.evaluate.topology``.
"""

from __future__ import annotations

import numpy as np

from voxgen.evaluate.distances import SHOWER, TRACK, sinkhorn_divergence
from voxgen.events import VOXEL_MM, Event, merge_duplicates

VOXEL_CM = VOXEL_MM / 10.0
CHUNK = 1024  # images per vectorised block


def ssnet_labels(probs: np.ndarray, images: np.ndarray, threshold: float) -> np.ndarray:
    """(N, H, W) int64 labels from SSNet ``probs`` (N, 3, H, W): the argmax class where the
    charge ``images`` (N, H, W) exceeds ``threshold``, background (0) elsewhere."""
    return np.where(np.asarray(images) > threshold, np.asarray(probs).argmax(axis=1), 0)


# ---- 2D --------------------------------------------------------------------------------------


def _track_block(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """``track_observables`` of one block of images (vectorised over the block)."""
    n, h, w = images.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    mask = (labels == TRACK) & (images > 0)
    charge = np.where(mask, images, 0.0).astype(np.float64)
    n_pix = mask.sum(axis=(1, 2))
    total = charge.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    mean_r = (charge * rows).sum(axis=(1, 2)) / safe
    mean_c = (charge * cols).sum(axis=(1, 2)) / safe
    dr = rows - mean_r[:, None, None]
    dc = cols - mean_c[:, None, None]
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0] = (charge * dr * dr).sum(axis=(1, 2)) / safe
    cov[:, 1, 1] = (charge * dc * dc).sum(axis=(1, 2)) / safe
    cov[:, 0, 1] = cov[:, 1, 0] = (charge * dr * dc).sum(axis=(1, 2)) / safe
    eigval, eigvec = np.linalg.eigh(cov)  # ascending: column 1 is the track axis
    along = dr * eigvec[:, 0, 1, None, None] + dc * eigvec[:, 1, 1, None, None]
    extent = np.where(mask, along, -np.inf).max(axis=(1, 2)) + np.where(mask, -along, -np.inf).max(axis=(1, 2))
    ok = n_pix >= 2
    return {
        "track_length": np.where(ok, extent + 1.0, np.nan),
        "track_width": np.where(ok, np.sqrt(12.0 * np.clip(eigval[:, 0], 0.0, None) + 1.0), np.nan),
        "track_pixels": n_pix,
        "track_charge": total,
    }


def track_observables(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Track length and width per image from the charge-weighted PCA of its track pixels.

    ``images`` (N, H, W) charge, ``labels`` (N, H, W) SSNet classes; track pixels are those
    labelled 2 with charge > 0. Returns (N,) arrays:
    ``track_length`` (pixels): extent of the track pixels along the first PCA axis, max - min
    of their projections + 1 pixel (a 30-pixel straight line has length 30);
    ``track_width`` (pixels): ``sqrt(12 var2 + 1)``, ``var2`` the charge-weighted variance
    along the second axis, i.e. the width of the uniform band of whole pixels with that
    variance (1 for a one-pixel line, 3 for a uniform 3-pixel band; robust to stray pixels,
    where an extent would not be); both NaN with fewer than 2 track pixels;
    ``track_pixels`` (int) and ``track_charge`` (charge units) of the track pixels.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    blocks = [_track_block(images[s : s + CHUNK], labels[s : s + CHUNK]) for s in range(0, len(images), CHUNK)]
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def shower_observables(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """(N,) ``shower_pixels`` (int) and ``shower_charge`` (charge units) of the pixels
    labelled shower (1) with charge > 0 in each of ``images`` (N, H, W)."""
    images = np.asarray(images, dtype=np.float64)
    mask = (np.asarray(labels) == SHOWER) & (images > 0)
    return {"shower_pixels": mask.sum(axis=(1, 2)), "shower_charge": np.where(mask, images, 0.0).sum(axis=(1, 2))}


# ---- 3D --------------------------------------------------------------------------------------


def _principal_axis(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(d,) unit first principal axis of ``points`` (K, d) with non-negative ``weights`` (K,)
    (uniform weights when they sum to zero)."""
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    cov = np.atleast_2d(np.cov(points, rowvar=False, aweights=weights, bias=True))
    return np.linalg.eigh(cov)[1][:, -1]


def _axis_extent_cm(points_cm: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Projections (K,) in cm on the first principal axis and the length along it:
    max - min of the projections + one voxel pitch."""
    along = points_cm @ _principal_axis(points_cm, weights)
    return along, float(np.ptp(along) + VOXEL_CM)


def event_observables(event: Event) -> dict[str, float]:
    """Shape figures of one event (duplicate voxels merged first).

    ``n_voxels``; ``total_energy`` (MeV); ``extent_x``, ``extent_y``, ``extent_z`` (cm):
    max - min voxel index + 1, times the 0.3 cm pitch; ``pca_length`` (cm): extent along the
    energy-weighted first principal axis + one voxel pitch (a 100-voxel line is 30 cm).
    """
    event = merge_duplicates(event)
    if len(event) == 0:
        raise ValueError("event_observables of an empty event")
    points = event.coords.astype(np.float64) * VOXEL_CM
    extent = (event.coords.max(axis=0) - event.coords.min(axis=0) + 1) * VOXEL_CM
    length = _axis_extent_cm(points, event.energy.astype(np.float64))[1] if len(event) > 1 else VOXEL_CM
    return {
        "n_voxels": float(len(event)),
        "total_energy": event.total_energy,
        "extent_x": float(extent[0]),
        "extent_y": float(extent[1]),
        "extent_z": float(extent[2]),
        "pca_length": length,
    }


def track_dedx(event: Event, semantic_track: int | None = 1, min_voxels: int = 5) -> np.ndarray:
    """dE/dx samples (MeV/cm), one per track voxel, of the tracks of ``event``.

    A track is the voxels of semantic type ``semantic_track`` of one particle instance (all
    such voxels form one track when the event has no instance labels); ``semantic_track=None``
    takes the whole event as one track (unlabelled single-track events). Per track (duplicates
    merged, at least ``min_voxels`` voxels): ``L`` = its length along its energy-weighted first
    principal axis (extent + one voxel pitch, cm), ``n`` its voxel count, and each voxel gives
    ``E_i / (L / n)``: its energy over the mean step per voxel along the track. The samples
    of a track average to its total energy over its length.
    """
    if semantic_track is None:
        groups = [event]
    else:
        semantic = event.semantic
        if semantic is None:
            raise ValueError("track_dedx: event has no semantic labels (pass semantic_track=None)")
        tracks = event.select(semantic == semantic_track)
        instance = tracks.instance
        groups = [tracks] if instance is None else [tracks.select(instance == g) for g in np.unique(instance)]
    samples = []
    for track in groups:
        track = merge_duplicates(track)
        if len(track) < min_voxels:
            continue
        energy = track.energy.astype(np.float64)
        length = _axis_extent_cm(track.coords.astype(np.float64) * VOXEL_CM, energy)[1]
        samples.append(energy * len(track) / length)
    return np.concatenate(samples) if samples else np.zeros(0)


def _energy_cloud(event: Event, max_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) cm coordinates and (K,) weights summing to 1 of the event's energy distribution;
    above ``max_points`` voxels, ``max_points`` draws with replacement with probability
    proportional to energy (repeats become weights), an unbiased sample of that distribution."""
    energy = event.energy.astype(np.float64)
    if len(energy) == 0 or energy.sum() <= 0:
        raise ValueError("pointcloud_sinkhorn of an event with no positive energy")
    points = event.coords.astype(np.float64) * VOXEL_CM
    if len(energy) <= max_points:
        return points, energy / energy.sum()
    draws = rng.choice(len(energy), size=max_points, p=energy / energy.sum())
    index, counts = np.unique(draws, return_counts=True)
    return points[index], counts / max_points


def pointcloud_sinkhorn(
    event_a: Event, event_b: Event, reg: float = 1.0, max_points: int = 2000, seed: int = 0
) -> float:
    """Debiased Sinkhorn divergence (cm) between the energy distributions of two events:
    voxel centres in cm, weights = energy / total energy, entropic scale ``reg`` cm, Euclidean
    ground cost; events above ``max_points`` voxels are energy-weighted subsamples drawn with
    ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    xa, wa = _energy_cloud(event_a, max_points, rng)
    xb, wb = _energy_cloud(event_b, max_points, rng)
    return sinkhorn_divergence(xa, wa, xb, wb, reg)
