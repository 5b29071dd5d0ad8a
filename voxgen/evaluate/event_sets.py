"""Scoring a candidate set of 3D events against real ones, next to the real-vs-real floor.

Per event: voxel count, total energy (MeV), extents and PCA length (cm); per track voxel:
dE/dx (MeV/cm); per event pair: Sinkhorn divergence between the energy clouds (cm); per event:
the three-plane consistency residual of its U/V/Y projections. Each observable's distribution
is compared by chi-square and KL of shared-bin histograms (``distances.observable_scores``); R1 vs C beside R1 vs R2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from voxgen.detector.planes import PlaneGeometry, consistency_residual
from voxgen.evaluate import distances, observables
from voxgen.events import SEMANTIC_NAMES, Event
from voxgen.views import wire_plane_images

EVENT_OBSERVABLES = ("n_voxels", "total_energy", "extent_x", "extent_y", "extent_z", "pca_length", "dedx")


def plane_residual(event: Event, geometry: PlaneGeometry | None = None) -> float:
    """Relative three-plane consistency residual (dimensionless) of the event's U/V/Y images:
    summed per-tick charge mismatch over the mean plane charge. ~1e-7 for any real projection;
    a generated set that builds its planes independently shows its inconsistency here."""
    images = {k: torch.from_numpy(v).double() for k, v in wire_plane_images(event, geometry).items()}
    u, v, y = (images[name] for name in ("U", "V", "Y"))
    return float(consistency_residual(u, v, y))


def describe_events(
    events: Sequence[Event], geometry: PlaneGeometry | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """(E,) arrays of ``observables.event_observables`` plus ``plane_residual``, and ``dedx``:
    the track dE/dx samples of all events (MeV/cm; the whole event is one track when it has no
    semantic labels)."""
    rows, dedx, residual = [], [], []
    for event in tqdm(events, desc="observables", unit="ev", disable=not progress):
        rows.append(observables.event_observables(event))
        labelled = event.semantic is not None
        dedx.append(observables.track_dedx(event, 1 if labelled else None))
        residual.append(plane_residual(event, geometry))
    out = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    out["dedx"] = np.concatenate(dedx) if dedx else np.zeros(0)
    out["plane_residual"] = np.array(residual)
    return out


def compare_events(
    obs_ref: dict,
    obs_cand: dict,
    ref: Sequence[Event],
    cand: Sequence[Event],
    seed: int,
    n_pairs: int,
    sinkhorn_reg_cm: float = 1.0,
    max_points: int = 300,
) -> dict[str, float]:
    """All 3D metrics of ``cand`` against ``ref``: chi2_/kl_ per observable, ``sinkhorn_set``
    (cm, ``distances.energy_set_distance`` under ``observables.pointcloud_sinkhorn``) and
    ``plane_residual_mean``."""
    out: dict[str, float] = {}
    for name in EVENT_OBSERVABLES:
        out[f"chi2_{name}"], out[f"kl_{name}"] = distances.observable_scores(obs_ref[name], obs_cand[name])
    cloud = lambda a, b: observables.pointcloud_sinkhorn(a, b, sinkhorn_reg_cm, max_points, seed)
    out["sinkhorn_set"] = distances.energy_set_distance(ref, cand, cloud, n_pairs, np.random.default_rng(seed))
    out["plane_residual_mean"] = float(np.mean(obs_cand["plane_residual"]))
    return out


def _read(events: Sequence[Event], index: np.ndarray, name: str) -> list[Event]:
    """``events[i]`` for each index, each checked by ``Event.validate``."""
    picked = []
    for i in index:
        event = events[int(i)]
        event.validate(f"{name} event {int(i)}")
        picked.append(event)
    return picked


def ssnet3d_scores(features: dict[str, tuple[np.ndarray, np.ndarray]], ref: str, other: str) -> dict[str, float]:
    """SSNet3D-FID (Frechet distance of pooled bottleneck features) and the KL divergence of each
    class's per-event voxel fraction, ``other`` set against ``ref``."""
    (fa, pa), (fb, pb) = features[ref], features[other]
    out = {"ssnet3d_fid": distances.frechet_distance(fa, fb)}
    for c, name in SEMANTIC_NAMES.items():
        out[f"kl_{name}_fraction"] = distances.histogram_kl(pa[:, c], pb[:, c], np.linspace(0, 1, 21))
    return out


def evaluate_events(
    reference: Sequence[Event],
    candidate: Sequence[Event],
    n: int,
    seed: int = 0,
    n_pairs: int = 100,
    names: tuple[str, str] = ("reference", "candidate"),
    progress: bool = True,
    ssnet3d=None,
) -> dict:
    """{"n", "candidate": m(R1, C), "floor": m(R1, R2), "observables": {set: arrays}}.

    R1, R2: two disjoint random halves of ``reference`` of ``n`` events each (fewer when the
    reference has under 2n); C: ``n`` random candidate events. The picked events are read
    (``reference`` and ``candidate`` may be lazy readers) and validated; a bad one raises
    ``BadInput`` naming ``names[k]`` and its index. With an ``ssnet3d`` model the scores also
    carry ``ssnet3d_scores``.
    """
    rng = np.random.default_rng(seed)
    n = min(n, len(reference) // 2, len(candidate))
    if n < 2:
        raise ValueError(
            f"evaluate_events needs 4 reference and 2 candidate events (have {len(reference)}, {len(candidate)})"
        )
    order = rng.permutation(len(reference))
    r1 = _read(reference, order[:n], names[0])
    r2 = _read(reference, order[n : 2 * n], names[0])
    c = _read(candidate, rng.permutation(len(candidate))[:n], names[1])
    obs = {
        name: describe_events(events, progress=progress)
        for name, events in (("reference", r1), ("heldout", r2), ("candidate", c))
    }
    result = {
        "kind": "events",
        "n": n,
        "candidate": compare_events(obs["reference"], obs["candidate"], r1, c, seed, n_pairs),
        "floor": compare_events(obs["reference"], obs["heldout"], r1, r2, seed, n_pairs),
        "observables": obs,
    }
    if ssnet3d is not None:
        from voxgen.models.ssnet3d import ssnet3d_features

        features = {
            name: ssnet3d_features(ssnet3d, events)
            for name, events in (("reference", r1), ("heldout", r2), ("candidate", c))
        }
        result["candidate"].update(ssnet3d_scores(features, "reference", "candidate"))
        result["floor"].update(ssnet3d_scores(features, "reference", "heldout"))
    return result
