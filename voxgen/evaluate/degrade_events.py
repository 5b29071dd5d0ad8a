"""Controlled degradations of real 3D events, to check that the topology figures
(``voxgen.evaluate.topology``) respond to broken structure and grow with its amount.

Each degradation is ``f(event, strength in [0, 1], rng) -> Event``: a new valid event on the
same grid (coordinates inside it, at least one voxel, the voxel labels and truth carried along);
strength 0 returns an unchanged copy. The largest damage, at strength 1, is set by the module
constants: ``MAX_CUTS`` cuts of ``CUT_VOXELS`` voxels, ``MAX_DROP`` of the voxels dropped, a
``MAX_JITTER_VOXELS`` standard deviation of jitter, ``MAX_FRAGMENTS`` fragments displaced by up
to ``MAX_SHIFT_VOXELS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from voxgen.evaluate.distances import observable_scores
from voxgen.evaluate.topology import TOPOLOGY_OBSERVABLES, principal_projection, topology_observables
from voxgen.events import Event

EventDegradation = Callable[[Event, float, np.random.Generator], Event]

MAX_CUTS = 8  # cuts through the event at strength 1
CUT_VOXELS = 3.0  # width of each cut along the principal axis (voxels): wider than a diagonal step (sqrt 3)
MAX_DROP = 0.5  # fraction of the voxels dropped at strength 1
MAX_JITTER_VOXELS = 2.0  # standard deviation of the per-axis coordinate jitter at strength 1 (voxels)
MAX_FRAGMENTS = 8  # pieces the event is broken into at strength 1
MAX_SHIFT_VOXELS = 20  # largest displacement of a piece per axis at strength 1 (voxels)
STRENGTHS = (0.0, 0.1, 0.25, 0.5, 1.0)


def _copy(event: Event) -> Event:
    """The event with every per-voxel array copied."""
    return event.select(np.ones(len(event), bool))


def _keep_one(keep: np.ndarray, event: Event) -> np.ndarray:
    """``keep`` (N,) bool with the event's highest-energy voxel kept, so the event never empties."""
    keep = keep.copy()
    keep[int(np.argmax(event.energy))] = True
    return keep


def cut_tracks(event: Event, strength: float, rng: np.random.Generator) -> Event:
    """``round(strength * MAX_CUTS)`` slabs ``CUT_VOXELS`` wide across the energy-weighted
    principal axis removed, each at a uniform position between the first and last voxel along
    it: a track falls apart into pieces separated by gaps (slabs may overlap)."""
    n_cuts = int(round(strength * MAX_CUTS))
    if n_cuts == 0 or len(event) < 2:
        return _copy(event)
    along = principal_projection(event.coords, event.energy)
    starts = rng.uniform(along.min(), max(along.max() - CUT_VOXELS, along.min()), n_cuts)
    inside = ((along[:, None] >= starts) & (along[:, None] < starts + CUT_VOXELS)).any(axis=1)
    return event.select(_keep_one(~inside, event))


def drop_voxels(event: Event, strength: float, rng: np.random.Generator) -> Event:
    """Each voxel removed independently with probability ``strength * MAX_DROP`` (a dead or
    under-threshold readout of that share of the charge)."""
    if strength == 0:
        return _copy(event)
    return event.select(_keep_one(rng.random(len(event)) >= strength * MAX_DROP, event))


def jitter_coordinates(event: Event, strength: float, rng: np.random.Generator) -> Event:
    """Each voxel moved by rounded Gaussian offsets of standard deviation ``strength *
    MAX_JITTER_VOXELS`` per axis, clipped to the grid (voxels landing on one site stay
    separate entries, as ``Event`` allows)."""
    if strength == 0:
        return _copy(event)
    offsets = np.rint(rng.normal(0.0, strength * MAX_JITTER_VOXELS, event.coords.shape)).astype(np.int64)
    coords = np.clip(event.coords + offsets, 0, event.grid - 1)
    return replace(_copy(event), coords=coords.astype(np.int32))


def scatter_fragments(event: Event, strength: float, rng: np.random.Generator) -> Event:
    """The event broken into ``1 + round(strength * (MAX_FRAGMENTS - 1))`` pieces of equal span
    along its principal axis, each displaced by a uniform integer vector of up to ``strength *
    MAX_SHIFT_VOXELS`` per axis, limited so the piece stays inside the grid."""
    n_pieces = 1 + int(round(strength * (MAX_FRAGMENTS - 1)))
    if strength == 0 or len(event) < 2:
        return _copy(event)
    along = principal_projection(event.coords, event.energy)
    edges = np.linspace(along.min(), along.max(), n_pieces + 1)[1:-1]
    piece = np.searchsorted(edges, along)
    limit = int(round(strength * MAX_SHIFT_VOXELS))
    coords = event.coords.astype(np.int64)
    for p in np.unique(piece):
        mask = piece == p
        low, high = coords[mask].min(axis=0), coords[mask].max(axis=0)
        shift = rng.integers(np.maximum(-limit, -low), np.minimum(limit, event.grid - 1 - high) + 1)
        coords[mask] += shift
    return replace(_copy(event), coords=coords.astype(np.int32))


EVENT_DEGRADATIONS: dict[str, EventDegradation] = {
    "cut_tracks": cut_tracks,
    "drop_voxels": drop_voxels,
    "jitter_coordinates": jitter_coordinates,
    "scatter_fragments": scatter_fragments,
}


def topology_table(events: Sequence[Event]) -> dict[str, np.ndarray]:
    """(E,) array of each of ``TOPOLOGY_OBSERVABLES`` over ``events``."""
    rows = [topology_observables(event) for event in events]
    return {name: np.array([row[name] for row in rows]) for name in TOPOLOGY_OBSERVABLES}


def topology_kl(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, float]:
    """KL (nats, ``distances.observable_scores``) of each topology observable of ``other``
    against ``reference`` (``topology_table`` outputs), and ``topology``: their sum."""
    out = {name: observable_scores(reference[name], other[name])[1] for name in TOPOLOGY_OBSERVABLES}
    out["topology"] = float(sum(out.values()))
    return out


def degradation_curves(
    reference: Sequence[Event],
    heldout: Sequence[Event],
    strengths: Sequence[float] = STRENGTHS,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """For each of ``EVENT_DEGRADATIONS``: ``topology_kl`` of the ``heldout`` events degraded
    at each of ``strengths`` against the ``reference`` events, as {"strength": [...], name:
    [...] per ``topology_kl`` key}; at strength 0 each figure is the real-vs-real floor."""
    ref = topology_table(reference)
    curves = {}
    for name, degrade in EVENT_DEGRADATIONS.items():
        rng = np.random.default_rng(seed)
        rows = [topology_kl(ref, topology_table([degrade(e, s, rng) for e in heldout])) for s in strengths]
        curves[name] = {"strength": list(strengths)} | {key: [row[key] for row in rows] for key in rows[0]}
    return curves
