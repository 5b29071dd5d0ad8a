"""Physics checks of the built-in simulator against argon numbers (tolerances stated per test)."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.sim import argon
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event
from voxgen.sim.transport import SEM_MICHEL, Transport, TransportParams

VOXEL_CM = 0.3


def transport_one(species: str, momentum: float, seed: int, **params) -> Transport:
    t = Transport(np.random.default_rng(seed), TransportParams(**params))
    t.add_primary(species, momentum, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    t.run()
    return t


@pytest.mark.parametrize("species, momentum, reference_cm", [("mu-", 300, 82), ("mu-", 800, 310), ("p", 800, 50)])
def test_csda_integration_matches_reference_ranges(species, momentum, reference_cm):
    """Our Bethe-Bloch + density-effect integration vs reference.md, within 5%."""
    mass = argon.MASS[species]
    r = argon.range_table(mass).range_of(argon.kinetic_from_momentum(momentum, mass))
    assert r == pytest.approx(reference_cm, rel=0.05)


def test_minimum_ionising_dedx_is_2_1():
    dedx = argon.bethe_dedx(np.geomspace(50, 5000, 400), argon.MUON_MASS)
    assert dedx.min() == pytest.approx(2.105, rel=0.01)  # PDG 1.508 MeV cm2/g x 1.396


def _single(species: str, momentum: float, n: int, seed: int):
    cfg = SimConfig(species=[species], momentum_mev={species: [momentum, momentum]})
    rng = np.random.default_rng(seed)
    return [simulate_event(cfg, rng) for _ in range(n)]


@pytest.mark.parametrize("species, momentum", [("mu-", 300), ("p", 800), ("p", 400)])
def test_contained_track_length_matches_csda(species, momentum):
    """Vertex-to-farthest-track-voxel distance (mean of 10) within 5% of the CSDA range."""
    mass = argon.MASS[species]
    csda = argon.range_table(mass).range_of(argon.kinetic_from_momentum(momentum, mass))
    lengths = []
    for event in _single(species, momentum, 10, seed=1):
        track = event.coords[event.semantic == 1] + 0.5
        vertex = np.asarray(event.particles[0].vertex)
        lengths.append(np.linalg.norm(track - vertex, axis=1).max() * VOXEL_CM)
    assert np.mean(lengths) == pytest.approx(csda, rel=0.05)


def test_mip_muon_mean_dedx():
    """Energy (track + its delta rays) within the first 40 cm of 400 MeV/c muons over 40 cm:
    mean within 5% of 2.1 MeV/cm."""
    values = []
    for event in _single("mu-", 400, 20, seed=2):
        p = event.particles[0]
        along = ((event.coords + 0.5) * VOXEL_CM - np.asarray(p.vertex) * VOXEL_CM) @ np.asarray(p.direction)
        window = (along > 0) & (along < 40.0)
        values.append(event.energy[window & np.isin(event.semantic, [1, 3, 4])].sum() / 40.0)
    assert np.mean(values) == pytest.approx(2.1, rel=0.05)


def test_bragg_peak_at_the_end_of_proton_tracks():
    """dE/dx over the last 1 cm of residual range is > 3x that of the first 10 cm."""
    ratios = []
    for seed in range(5):
        t = transport_one("p", 600, seed)
        starts, ends, e = np.asarray(t.starts), np.asarray(t.ends), np.asarray(t.energy)
        track = np.asarray(t.key) == 0
        length = np.linalg.norm(ends - starts, axis=1)[track]
        path = np.cumsum(length)
        first = path <= 10.0
        last = path >= path[-1] - 1.0
        ratios.append((e[track][last].sum() / length[last].sum()) / (e[track][first].sum() / length[first].sum()))
    assert min(ratios) > 3.0


@pytest.mark.parametrize("energy", [500.0, 1000.0])
def test_electron_shower_profile_peaks_near_tmax(energy):
    """Mean longitudinal profile of 20 showers peaks at ln(E/Ec) - 0.5 X0, within 1 X0."""
    bins = np.arange(0, 20.5, 0.5)
    profile = np.zeros(len(bins) - 1)
    for seed in range(20):
        t = transport_one("e-", energy, seed)
        mid = 0.5 * (np.asarray(t.starts) + np.asarray(t.ends))
        profile += np.histogram(mid[:, 2] / argon.X0_CM, bins=bins, weights=np.asarray(t.energy))[0]
    peak = bins[np.argmax(profile)] + 0.25
    expected = np.log(energy / argon.CRITICAL_ENERGY) - 0.5
    assert abs(peak - expected) < 1.0, (peak, expected)
    assert profile.sum() / 20 == pytest.approx(energy, rel=0.05)  # showers deposit (nearly) all


def test_photon_conversion_distance_mean_is_18_cm():
    """First charged deposit of 1000 photons (20-60 MeV, pair regime): mean distance within 10%
    of 9/7 X0 (statistical error ~3%)."""
    rng = np.random.default_rng(5)
    distances = []
    for seed in range(1000):
        t = transport_one("gamma", float(rng.uniform(20, 60)), seed)
        distances.append(np.linalg.norm(t.starts[0]))
    assert np.mean(distances) == pytest.approx(18.0, rel=0.10)
    assert np.percentile(distances, 10) > 1.0  # a visible gap before the shower


def test_michel_fraction_and_energy():
    """Stopped mu-: Michel in 1 - 0.75 = 25% (+- 5%) of 400 decays; energies <= 52.8 MeV."""
    with_michel, energies = 0, []
    for seed in range(400):
        t = transport_one("mu-", 150, seed)
        michel = [k for k in t.keys if k[1] == SEM_MICHEL]
        if michel:
            with_michel += 1
            key = t.keys[michel[0]]
            energies.append(np.asarray(t.energy)[np.asarray(t.key) == key].sum())
    assert with_michel / 400 == pytest.approx(0.25, abs=0.05)
    assert max(energies) <= argon.MICHEL_MAX_MEV
    assert np.mean(energies) > 25.0  # Michel spectrum mean is 0.7 x 52.8 = 37 MeV; brems escapes some


def test_recombination_for_mips():
    """Modified Box at 0.5 kV/cm: R(2.1 MeV/cm) = 0.70 (ArgoNeuT), electrons/MeV = R / W_ion."""
    r = argon.box_recombination(2.1, 0.5, 0.93, 0.212)
    assert r == pytest.approx(0.70, abs=0.01)
    event = _single("mu-", 400, 1, seed=3)[0]
    track = event.semantic == 1
    per_mev = event.electrons[track].sum() / event.energy[track].sum()
    assert 0.55 / argon.W_ION < per_mev < 0.75 / argon.W_ION
