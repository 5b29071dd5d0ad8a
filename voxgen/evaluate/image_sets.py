"""Scoring a candidate set of 2D images against real ones, next to the real-vs-real floor.

The reference set is split into two disjoint random halves R1, R2 of ``n`` images each; the
candidate set C is subsampled to ``n``. Every metric is reported as m(R1, C) beside its floor
m(R1, R2). Images are (N, H, W) float32 charge (MeV per pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from voxgen.evaluate import c2st, collapse, degrade, distances, observables
from voxgen.evaluate.topology2d import TOPOLOGY_OBSERVABLES, topology_observables

CHARGED_MEV = 0.0  # pixels above this count as charged for the SSNet statistics

# The figures a generated set is judged by; the degradation tests hold each of them to its floor
# at strength 0 and to a monotonic rise with strength. The rest are reported, not headline:
# measured on 1000 real crops (README), emd_nn barely moves under blur (the EMD between distinct
# crops is dominated by their ~4 px geometric gap), and the KLs of SSNet scores and of the
# SSNet-labelled track observables turn over when a defect makes SSNet relabel tracks as shower.
HEADLINE = ("fid", "mmd_features", "c2st_accuracy", "kl_shower_count", "pixel_charge_w1")

# (metric, degradation) pairs where the metric is blind by construction. A global charge scale:
# emd_nn and mmd_pixels compare unit-charge images, and SSNet does not see it (it is trained with
# 0.9-1.1 charge-scale augmentation; measured FID 0.50 -> 0.50 at +50%), so neither do the
# metrics built on its features and labels. Random pixel dropout leaves the charges of the
# surviving pixels distributed as before, and so do cutting tracks and scattering their pieces
# (which remove or move pixels whole). pixel_charge_w1 is the charge-scale check. The topology
# figures (topology2d) depend on which pixels are charged and on charge ratios, so a global charge
# scale leaves them unchanged too.
SSNET_BASED = ("fid", "mmd_features", "c2st_accuracy", "kl_shower_count", "kl_track_score")
TOPOLOGY = tuple(f"kl_{name}" for name in TOPOLOGY_OBSERVABLES)
BLIND = {(m, "rescale_charge") for m in SSNET_BASED + TOPOLOGY + ("emd_nn", "mmd_pixels")} | {
    ("pixel_charge_w1", name) for name in ("pixel_dropout", "cut_tracks", "scatter_fragments")
}

OBSERVABLES = ("track_length", "track_width", "shower_pixels", "shower_charge", *TOPOLOGY_OBSERVABLES)


@dataclass
class ScoredImages:
    """One image set with its SSNet outputs: ``images`` (N, H, W) MeV; ``probs`` (N, 3, H, W);
    ``features`` (N, D) bottleneck features; ``labels`` (N, H, W) int8 argmax classes on
    charged pixels, 0 elsewhere."""

    images: np.ndarray
    probs: np.ndarray
    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> ScoredImages:
        return ScoredImages(self.images[index], self.probs[index], self.features[index], self.labels[index])

    def observables(self) -> dict[str, np.ndarray]:
        """(N,) track length / width (pixels), track and shower pixel counts and charges, and the
        topology figures of ``topology2d`` (clusters, largest cluster's charge share, track gaps)."""
        return {
            **observables.track_observables(self.images, self.labels),
            **observables.shower_observables(self.images, self.labels),
            **topology_observables(self.images, CHARGED_MEV),
        }


def score_images(model, images: np.ndarray, batch_size: int = 256, progress: bool = False) -> ScoredImages:
    """Run SSNet (``voxgen.models.ssnet2d.SSNet2D``) over ``images`` (N, H, W) MeV."""
    from voxgen.models.ssnet2d import predict_crops

    images = np.asarray(images, dtype=np.float32)
    probs, feats = predict_crops(model, images, batch_size, progress=progress)
    labels = observables.ssnet_labels(probs, images, CHARGED_MEV).astype(np.int8)
    return ScoredImages(images, probs, feats, labels)


def compare(ref: ScoredImages, cand: ScoredImages, seed: int, n_emd: int = 300) -> dict[str, float]:
    """Every 2D metric of ``cand`` against ``ref``.

    ``fid``, ``mmd_features``, ``c2st_accuracy``: on SSNet bottleneck features (the SSNet-FID
    of Imani et al., arXiv:2307.13687); ``mmd_pixels``: on unit-charge images pooled 4x4;
    ``emd_nn`` (pixels): nearest-neighbour EMD both ways over ``n_emd`` images of each set;
    ``pixel_charge_w1``: relative W1 of charged-pixel charges; ``kl_*``: KL of the SSNet output
    statistics (Lutkus et al., arXiv:2204.02496, Table 4); ``chi2_*``, ``kl_*`` of the physics
    observables (the chi-square table of Imani, NPML 2024) and of the per-image topology
    (``topology2d``: clusters, largest cluster's charge share, track gaps). Deterministic for a ``seed``.
    """
    kl = distances.ssnet_kl(
        distances.ssnet_output_stats(ref.probs, ref.images, CHARGED_MEV),
        distances.ssnet_output_stats(cand.probs, cand.images, CHARGED_MEV),
    )
    out = {
        "fid": distances.frechet_distance(ref.features, cand.features),
        "mmd_features": distances.mmd_rbf(ref.features, cand.features),
        "mmd_pixels": distances.mmd_rbf(
            distances.pooled_pixels(ref.images, 16, normalise=True),
            distances.pooled_pixels(cand.images, 16, normalise=True),
        ),
        "emd_nn": distances.nearest_emd_distance(ref.images, cand.images, n_emd, np.random.default_rng(seed)),
        "pixel_charge_w1": distances.pixel_charge_w1(ref.images, cand.images),
        "c2st_accuracy": c2st.c2st_accuracy(ref.features, cand.features, seed=seed),
    }
    out.update({f"kl_{k}": v for k, v in kl.items()})
    obs_r, obs_c = ref.observables(), cand.observables()
    for name in OBSERVABLES:
        out[f"chi2_{name}"], out[f"kl_{name}"] = distances.observable_scores(obs_r[name], obs_c[name])
    return {k: float(v) for k, v in out.items()}


def _subsample(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random images (all when fewer); the reference needs only 2n, so never score more."""
    if len(images) <= n:
        return np.asarray(images)
    return np.asarray(images)[np.sort(np.random.default_rng(seed).permutation(len(images))[:n])]


def reference_halves(
    model, reference: np.ndarray, n: int, seed: int = 0, progress: bool = False
) -> tuple[ScoredImages, ScoredImages]:
    """Two disjoint random subsets R1, R2 of ``min(n, len(reference) // 2)`` images each of
    ``reference`` (N, H, W), scored by SSNet ``model``; m(R1, R2) is every metric's floor."""
    ref = score_images(model, _subsample(reference, 2 * n, seed), progress=progress)
    n = min(n, len(ref) // 2)
    order = np.random.default_rng(seed).permutation(len(ref))
    return ref.take(order[:n]), ref.take(order[n : 2 * n])


def evaluate_images(
    model,
    reference: np.ndarray,
    candidate: np.ndarray,
    n: int,
    seed: int = 0,
    train: np.ndarray | None = None,
    n_emd: int = 300,
    collapse_n: int = 1000,
    progress: bool = False,
) -> dict:
    """Score ``candidate`` (M, H, W) against ``reference`` (N, H, W) with SSNet ``model``.

    Returns {"n", "candidate": m(R1, C), "floor": m(R1, R2), "scored": {"reference": R1,
    "heldout": R2, "candidate": C}}, and with ``train`` images also "mode_collapse": the
    nearest-training-image EMD of ``collapse_n`` candidates against as many held-out real images.
    """
    r1, r2 = reference_halves(model, reference, n, seed, progress)
    n = len(r1)
    if n < 2:
        raise ValueError(f"evaluate_images: the reference has {len(reference)} images; need at least 4")
    cand = score_images(model, _subsample(candidate, n, seed + 1), progress=progress)
    result = {
        "kind": "images",
        "n": n,
        "candidate": compare(r1, cand, seed, n_emd),
        "floor": compare(r1, r2, seed, n_emd),
    }
    if train is not None:
        k = min(collapse_n, n)
        report = collapse.mode_collapse_report(cand.images[:k], r2.images[:k], np.asarray(train))
        result["mode_collapse"] = {key: value for key, value in report.items() if np.ndim(value) == 0}
    result["scored"] = {"reference": r1, "heldout": r2, "candidate": cand}
    return result


def degradation_curves(
    model,
    r1: ScoredImages,
    r2: ScoredImages,
    seed: int = 0,
    n_emd: int = 300,
    strengths: dict[str, list[float]] | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """Every metric against strength for each controlled degradation of held-out real images.

    R2 (``reference_halves``, or ``evaluate_images``'s scored "heldout") degraded at each
    strength (``degrade.STRENGTHS`` unless given) is re-scored by SSNet ``model`` and compared
    with R1; strength 0 reproduces the real-vs-real floor. Returns {degradation: {"strength":
    [...], metric: [value per strength]}}.
    """
    strengths = strengths or degrade.STRENGTHS
    curves = {}
    total = sum(len(v) for v in strengths.values())
    with tqdm(total=total, desc="degradations", disable=not progress) as bar:
        for name, levels in strengths.items():
            rows = []
            for strength in levels:
                damaged = degrade.DEGRADATIONS[name](r2.images, strength, np.random.default_rng(seed))
                rows.append(compare(r1, score_images(model, damaged), seed, n_emd))
                bar.update()
            curves[name] = {"strength": list(levels), **{m: [row[m] for row in rows] for m in rows[0]}}
    return curves
