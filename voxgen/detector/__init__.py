"""Detector readout: U/V/Y wire-plane geometry, projection, dead channels, consistency."""

from voxgen.detector.planes import (
    MICROBOONE_PLANES,
    PlaneGeometry,
    WirePlane,
    apply_dead_channels,
    consistency,
    consistency_residual,
    dead_channel_mask,
    project_to_planes,
    tick_charge,
)

__all__ = [
    "MICROBOONE_PLANES",
    "PlaneGeometry",
    "WirePlane",
    "apply_dead_channels",
    "consistency",
    "consistency_residual",
    "dead_channel_mask",
    "project_to_planes",
    "tick_charge",
]
