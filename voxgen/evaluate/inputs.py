"""What ``voxgen evaluate`` checks before any work: the counts of its config and the image sets
(the event sets: ``event_sets.check_event_set``)."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from voxgen.errors import BadInput, ConfigError

C2ST_FOLDS = 5  # ``c2st.c2st_accuracy``'s folds: image sets need as many images per compared set
# key -> (smallest value, why)
COUNTS: dict[str, tuple[int, str]] = {
    "n": (2, "the floor compares two disjoint reference halves of n each, so the reference needs 2n items"),
    "n_emd": (1, "images per side of the nearest-neighbour EMD"),
    "collapse_n": (1, "candidates checked for copies of training images"),
    "n_pairs_events": (1, "event pairs of the Sinkhorn set distance"),
    "seed": (0, "a seed for numpy's random generator"),
}


def check_counts(cfg: DictConfig, images: bool) -> None:
    """ConfigError naming the first key of ``COUNTS`` (and ``crop``, null or >= 1) out of range;
    for ``images`` sets n >= ``C2ST_FOLDS``."""
    for key, (least, why) in COUNTS.items():
        if key == "n" and images:
            least, why = C2ST_FOLDS, f"{why}; the C2ST's {C2ST_FOLDS} folds need {C2ST_FOLDS} images per set"
        if cfg[key] < least:
            raise ConfigError(f"{key}: {cfg[key]}; need at least {least} ({why})")
    if cfg.crop is not None and cfg.crop < 1:
        raise ConfigError(f"crop: {cfg.crop}; need null or a cube of at least 1 voxel a side")


def check_images(images: np.ndarray, name: str, size: int, at_least: int) -> np.ndarray:
    """``images`` as (N, ``size``, ``size``) float32 charge (MeV per pixel), N >= ``at_least``;
    BadInput naming ``name`` (and the first bad image) unless a float array of that shape,
    finite and non-negative."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (size, size):
        raise BadInput(f"{name}: images of shape {images.shape}; the SSNet scores (N, {size}, {size}) crops")
    if not np.issubdtype(images.dtype, np.floating):
        raise BadInput(f"{name}: images of dtype {images.dtype}; need float charge (MeV per pixel)")
    if len(images) < at_least:
        raise BadInput(f"{name}: {len(images)} images; need at least {at_least}")
    for bad, what in ((~np.isfinite(images), "non-finite (NaN/inf)"), (images < 0, "negative")):
        per_image = bad.any(axis=(1, 2))
        if per_image.any():
            first = int(np.argmax(per_image))
            raise BadInput(f"{name} image {first}: {int(bad[first].sum())} {what} pixels")
    return images.astype(np.float32, copy=False)
