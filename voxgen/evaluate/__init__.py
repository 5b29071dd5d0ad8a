"""Evaluation: set distances (FID, MMD, KL, chi-square, EMD, Sinkhorn, C2ST), physics
observables of images and events, mode-collapse checks, the scoring of image and event sets
against real-vs-real floors, controlled degradations that validate the metrics, and the report.
"""

from voxgen.evaluate.c2st import c2st_accuracy
from voxgen.evaluate.collapse import mode_collapse_report
from voxgen.evaluate.degrade import DEGRADATIONS, STRENGTHS
from voxgen.evaluate.distances import (
    energy_set_distance,
    frechet_distance,
    histogram_chi2,
    histogram_kl,
    image_emd,
    image_sinkhorn,
    mmd_rbf,
    nearest_emd,
    nearest_emd_distance,
    observable_scores,
    pixel_charge_w1,
    pooled_pixels,
    sinkhorn_divergence,
    ssnet_kl,
    ssnet_output_stats,
)
from voxgen.evaluate.event_sets import describe_events, evaluate_events, plane_residual
from voxgen.evaluate.image_sets import (
    HEADLINE,
    degradation_curves,
    evaluate_images,
    reference_halves,
    score_images,
)
from voxgen.evaluate.observables import (
    event_observables,
    pointcloud_sinkhorn,
    shower_observables,
    ssnet_labels,
    track_dedx,
    track_observables,
)

__all__ = [
    "DEGRADATIONS",
    "HEADLINE",
    "STRENGTHS",
    "c2st_accuracy",
    "degradation_curves",
    "describe_events",
    "energy_set_distance",
    "evaluate_events",
    "evaluate_images",
    "event_observables",
    "frechet_distance",
    "histogram_chi2",
    "histogram_kl",
    "image_emd",
    "image_sinkhorn",
    "mmd_rbf",
    "mode_collapse_report",
    "nearest_emd",
    "observable_scores",
    "plane_residual",
    "pointcloud_sinkhorn",
    "pooled_pixels",
    "reference_halves",
    "score_images",
    "nearest_emd_distance",
    "pixel_charge_w1",
    "shower_observables",
    "sinkhorn_divergence",
    "ssnet_kl",
    "ssnet_labels",
    "ssnet_output_stats",
    "track_dedx",
    "track_observables",
]
