"""Charged segments (cm, MeV) to labelled voxels on the 3 mm grid: the Event of one simulation."""

from __future__ import annotations

import numpy as np

from voxgen.events import Clusters, Event, Particle, sort_by_cluster
from voxgen.sim import argon
from voxgen.sim.config import SimConfig
from voxgen.sim.transport import SEM_LOWE, Transport


def segment_points(transport: Transport, spacing_cm: float) -> dict[str, np.ndarray]:
    """Sub-sample every segment into points at most ``spacing_cm`` apart.

    Returns points (P, 3) cm, energy (P,) MeV, dedx (P,) MeV/cm of the segment, time (P,) ns,
    length (P,) cm of path each point stands for, key (P,) cluster key. A segment's dE/dx is
    its energy over its length; a point deposit (length 0: an electron below
    ``point_deposit_mev`` stopping in place) gets the mean dE/dx of its stopping path.
    """
    starts, ends = np.asarray(transport.starts), np.asarray(transport.ends)
    energy, key = np.asarray(transport.energy), np.asarray(transport.key)
    seg = ends - starts
    length = np.linalg.norm(seg, axis=1)
    n_sub = np.maximum(1, np.ceil(length / spacing_cm)).astype(np.int64)
    idx = np.repeat(np.arange(len(energy)), n_sub)
    first = np.cumsum(n_sub) - n_sub
    frac = (np.arange(len(idx)) - first[idx] + 0.5) / n_sub[idx]
    point = length == 0
    dedx = np.where(point, argon.mean_stopping_dedx(energy, argon.ELECTRON_MASS), energy / np.where(point, 1.0, length))
    return {
        "points": starts[idx] + frac[:, None] * seg[idx],
        "energy": energy[idx] / n_sub[idx],
        "dedx": dedx[idx],
        "time": np.asarray(transport.time)[idx],
        "length": (length / n_sub)[idx],
        "key": key[idx],
    }


def voxelize(transport: Transport, offset_cm: np.ndarray, cfg: SimConfig) -> Event:
    """Event from a finished transport, shifted by ``offset_cm`` and clipped to the grid."""
    voxel_cm = cfg.voxel_mm / 10.0
    pts = segment_points(transport, voxel_cm / 2.0)
    recomb = argon.box_recombination(pts["dedx"], cfg.efield_kv_cm, cfg.box_alpha, cfg.box_beta)
    electrons = pts["energy"] * recomb / argon.W_ION
    vox = np.floor((pts["points"] + offset_cm) / voxel_cm).astype(np.int64)
    inside = np.all((vox >= 0) & (vox < cfg.grid), axis=1)
    vox, key = vox[inside], pts["key"][inside]
    # one voxel per (cluster, coordinate): sums of energy, electrons, path; earliest time
    lin = np.ravel_multi_index(vox.T, (cfg.grid,) * 3) + key.astype(np.int64) * cfg.grid**3
    uniq, inverse = np.unique(lin, return_inverse=True)
    sums = lambda v: np.bincount(inverse, weights=v[inside], minlength=len(uniq))
    time = np.full(len(uniq), np.inf)
    np.minimum.at(time, inverse, pts["time"][inside])
    voxel_key, flat = np.divmod(uniq, cfg.grid**3)
    coords = np.stack(np.unravel_index(flat, (cfg.grid,) * 3), axis=1)

    # cluster table: low-energy deposits first (as PILArNet), then in creation order
    keys = sorted(transport.keys.items(), key=lambda kv: (kv[0][1] != SEM_LOWE, kv[1]))
    used = set(np.unique(voxel_key).tolist())
    keys = [(k, i) for k, i in keys if i in used]
    remap = np.full(max(len(transport.keys), 1), -1, np.int64)
    for new, (_, old) in enumerate(keys):
        remap[old] = new
    info = [transport.key_info[old] for _, old in keys]
    clusters = Clusters.build(
        semantic=[k[1] for k, _ in keys],
        pid=[k[2] for k, _ in keys],
        group=[k[0] for k, _ in keys],
        momentum=[m for m, _ in info],
        vertex=np.array([(v + offset_cm) / voxel_cm for _, v in info]).reshape(-1, 3),
    )
    particles = [
        Particle(
            pid=pid,
            momentum=float(p),
            vertex=tuple(float(c) for c in (pos + offset_cm) / voxel_cm),
            direction=tuple(float(c) for c in d),
            group=g,
        )
        for pid, p, pos, d, g in transport.particles
    ]
    event = Event(
        coords=coords,
        energy=sums(pts["energy"]),
        electrons=sums(electrons),
        time=time / 1000.0,
        dx=sums(pts["length"]),
        cluster=remap[voxel_key],
        clusters=clusters,
        particles=particles,
        grid=cfg.grid,
    )
    return sort_by_cluster(event)
