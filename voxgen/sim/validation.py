"""Physics measurements of the simulator against argon numbers (used by tests and tools).

Each function simulates a small sample and returns the measured figure next to its
expectation; units: cm, MeV, MeV/cm, radiation lengths.
"""

from __future__ import annotations

import numpy as np

from voxgen.events import Event
from voxgen.sim import argon
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event
from voxgen.sim.transport import SEM_MICHEL, Transport, TransportParams


def transport_one(species: str, momentum: float, seed: int) -> Transport:
    """One particle from the origin along +z, transported (no voxelisation)."""
    t = Transport(np.random.default_rng(seed), TransportParams())
    t.add_primary(species, momentum, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    t.run()
    return t


def single_events(species: str, momentum: float, n: int, seed: int) -> list[Event]:
    cfg = SimConfig(species=[species], momentum_mev={species: [momentum, momentum]})
    rng = np.random.default_rng(seed)
    return [simulate_event(cfg, rng) for _ in range(n)]


def csda_range(species: str, momentum: float) -> float:
    """CSDA range (cm) from the Bethe-Bloch integration."""
    mass = argon.MASS[species]
    return float(argon.range_table(mass).range_of(argon.kinetic_from_momentum(momentum, mass)))


def track_length(species: str, momentum: float, n: int = 10, seed: int = 1) -> tuple[float, float]:
    """(mean vertex-to-farthest-track-voxel distance, CSDA range), cm, from voxelised events."""
    voxel_cm = SimConfig().voxel_mm / 10.0
    lengths = []
    for event in single_events(species, momentum, n, seed):
        track = event.coords[event.semantic == 1] + 0.5
        vertex = np.asarray(event.particles[0].vertex)
        lengths.append(np.linalg.norm(track - vertex, axis=1).max() * voxel_cm)
    return float(np.mean(lengths)), csda_range(species, momentum)


def mip_dedx(momentum: float = 400.0, n: int = 20, seed: int = 2, window_cm: float = 40.0) -> float:
    """Mean dE/dx (MeV/cm) of muons: track, delta and low-energy voxels within the first
    ``window_cm`` along the initial direction, over ``window_cm``."""
    voxel_cm = SimConfig().voxel_mm / 10.0
    values = []
    for event in single_events("mu-", momentum, n, seed):
        p = event.particles[0]
        along = ((event.coords + 0.5) - np.asarray(p.vertex)) @ np.asarray(p.direction) * voxel_cm
        window = (along > 0) & (along < window_cm)
        values.append(event.energy[window & np.isin(event.semantic, [1, 3, 4])].sum() / window_cm)
    return float(np.mean(values))


def bragg_ratio(momentum: float = 600.0, seeds: range = range(5)) -> float:
    """Smallest ratio over ``seeds`` of proton dE/dx in the last 1 cm to the first 10 cm."""
    ratios = []
    for seed in seeds:
        t = transport_one("p", momentum, seed)
        starts, ends, e = np.asarray(t.starts), np.asarray(t.ends), np.asarray(t.energy)
        track = np.asarray(t.key) == 0
        length = np.linalg.norm(ends - starts, axis=1)[track]
        path = np.cumsum(length)
        first, last = path <= 10.0, path >= path[-1] - 1.0
        ratios.append((e[track][last].sum() / length[last].sum()) / (e[track][first].sum() / length[first].sum()))
    return float(min(ratios))


def shower_profile_peak(energy: float, n: int = 20) -> tuple[float, float, float]:
    """(peak of the mean longitudinal profile, ln(E/Ec) - 0.5, mean deposited MeV) for electrons;
    depths in radiation lengths, 0.5 X0 bins."""
    bins = np.arange(0, 20.5, 0.5)
    profile = np.zeros(len(bins) - 1)
    for seed in range(n):
        t = transport_one("e-", energy, seed)
        mid = 0.5 * (np.asarray(t.starts) + np.asarray(t.ends))
        profile += np.histogram(mid[:, 2] / argon.X0_CM, bins=bins, weights=np.asarray(t.energy))[0]
    peak = float(bins[np.argmax(profile)] + 0.25)
    return peak, float(np.log(energy / argon.CRITICAL_ENERGY) - 0.5), float(profile.sum() / n)


def photon_conversion_distances(n: int = 1000, seed: int = 5) -> np.ndarray:
    """Distance (cm) to the first charged deposit of ``n`` photons of 20-60 MeV (pair regime)."""
    rng = np.random.default_rng(seed)
    return np.array([np.linalg.norm(transport_one("gamma", float(rng.uniform(20, 60)), s).starts[0]) for s in range(n)])


def michel_fraction(n: int = 1000, momentum: float = 150.0) -> tuple[float, np.ndarray]:
    """(fraction of stopped mu- with a Michel electron, deposited Michel energies in MeV)."""
    energies = []
    for seed in range(n):
        t = transport_one("mu-", momentum, seed)
        keys = [t.keys[k] for k in t.keys if k[1] == SEM_MICHEL]
        if keys:
            energies.append(np.asarray(t.energy)[np.asarray(t.key) == keys[0]].sum())
    return len(energies) / n, np.asarray(energies)
