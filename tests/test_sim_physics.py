"""Physics checks of the built-in simulator against argon numbers (tolerances stated per test)."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.sim import argon, validation
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event


@pytest.mark.parametrize("species, momentum, reference_cm", [("mu-", 300, 82), ("mu-", 800, 310), ("p", 800, 50)])
def test_csda_integration_matches_reference_ranges(species, momentum, reference_cm):
    """Our Bethe-Bloch + density-effect integration vs reference.md, within 5%."""
    assert validation.csda_range(species, momentum) == pytest.approx(reference_cm, rel=0.05)


def test_minimum_ionising_dedx_is_2_1():
    dedx = argon.bethe_dedx(np.geomspace(50, 5000, 400), argon.MUON_MASS)
    assert dedx.min() == pytest.approx(2.105, rel=0.01)  # PDG 1.508 MeV cm2/g x 1.396


@pytest.mark.parametrize("species, momentum", [("mu-", 300), ("p", 800), ("p", 400)])
def test_contained_track_length_matches_csda(species, momentum):
    """Vertex-to-farthest-track-voxel distance (mean of 10) within 5% of the CSDA range."""
    measured, csda = validation.track_length(species, momentum)
    assert measured == pytest.approx(csda, rel=0.05)


def test_mip_muon_mean_dedx():
    """400 MeV/c muons, first 40 cm (track + delta rays): mean within 5% of 2.1 MeV/cm."""
    assert validation.mip_dedx() == pytest.approx(2.1, rel=0.05)


def test_bragg_peak_at_the_end_of_proton_tracks():
    """dE/dx over the last 1 cm of residual range is > 3x that of the first 10 cm."""
    assert validation.bragg_ratio() > 3.0


@pytest.mark.parametrize("energy", [500.0, 1000.0])
def test_electron_shower_profile_peaks_near_tmax(energy):
    """Mean longitudinal profile of 20 showers peaks at ln(E/Ec) - 0.5 X0, within 1 X0;
    showers deposit their energy within 5%."""
    peak, expected, deposited = validation.shower_profile_peak(energy)
    assert abs(peak - expected) < 1.0, (peak, expected)
    assert deposited == pytest.approx(energy, rel=0.05)


def test_photon_conversion_distance_mean_is_18_cm():
    """1000 photons (20-60 MeV): mean conversion distance within 10% of 9/7 X0 (stat. ~3%)."""
    distances = validation.photon_conversion_distances()
    assert np.mean(distances) == pytest.approx(18.0, rel=0.10)
    assert np.percentile(distances, 10) > 1.0  # a visible gap before the shower


def test_michel_fraction_and_energy():
    """Stopped mu-: Michel in 1 - 0.75 = 25% (+- 5%, stat. 1.4%) of 1000 decays; energies <= 52.8 MeV."""
    fraction, energies = validation.michel_fraction()
    assert fraction == pytest.approx(0.25, abs=0.05)
    assert energies.max() <= argon.MICHEL_MAX_MEV
    assert energies.mean() > 25.0  # spectrum mean 0.7 x 52.8 = 37 MeV; brems photons escape some


def test_recombination_for_mips():
    """Modified Box at 0.5 kV/cm: R(2.1 MeV/cm) = 0.70 (ArgoNeuT); electrons/MeV = R / W_ion."""
    assert argon.box_recombination(2.1, 0.5, 0.93, 0.212) == pytest.approx(0.70, abs=0.01)
    event = validation.single_events("mu-", 400, 1, seed=3)[0]
    track = event.semantic == 1
    per_mev = event.electrons[track].sum() / event.energy[track].sum()
    assert 0.55 / argon.W_ION < per_mev < 0.75 / argon.W_ION


@pytest.mark.parametrize("efield", [0.1, 0.273, 0.5, 1.0, 2.0])
def test_recombination_is_bounded_and_non_increasing(efield):
    """ArgoNeuT alpha, beta: R in (0, 1] and non-increasing for dE/dx from 0 to 100 MeV/cm."""
    r = argon.box_recombination(np.linspace(0.0, 100.0, 10001), efield, 0.93, 0.212)
    assert np.all((r > 0.0) & (r <= 1.0))
    assert np.all(np.diff(r) <= 1e-12)


def test_recombination_below_the_modified_box_range_holds_its_peak():
    """At 0.5 kV/cm ln(0.93 + xi) / xi peaks at 1.54 MeV/cm with R = 0.716 (and would go
    negative below 0.23 MeV/cm); below the peak R stays there. The original Box model
    (alpha = 1) tends to R = 1."""
    r = argon.box_recombination([0.0, 0.2, 1.0, 1.537], 0.5, 0.93, 0.212)
    np.testing.assert_allclose(r, 0.7159, atol=1e-4)
    assert argon.box_recombination(0.0, 0.5, 1.0, 0.212) == pytest.approx(1.0, abs=1e-5)


def test_mip_charge_yield():
    """2.105 MeV/cm at 0.5 kV/cm: R = ln(0.93 + 0.639) / 0.639 = 0.705, so R / W_ion = 29,870 e-/MeV."""
    r = argon.box_recombination(2.105, 0.5, 0.93, 0.212)
    assert r == pytest.approx(0.705, abs=0.001)
    assert r / argon.W_ION == pytest.approx(29_870, rel=0.002)


def test_point_deposits_ionise_like_stopping_electrons():
    """A sub-MeV electron deposited at one point gets the mean dE/dx of its stopping path,
    T / R_CSDA(T): above its starting dE/dx, rising as T falls (to dE/dx(10 keV) = 23.5 MeV/cm
    and no further), 2.34 MeV/cm at 1 MeV."""
    kinetic = np.array([0.001, 0.01, 0.05, 0.1, 0.5, 1.0])
    mean = argon.mean_stopping_dedx(kinetic, argon.ELECTRON_MASS)
    assert np.all(np.diff(mean[1:]) < 0)
    assert np.all(mean[2:] > argon.bethe_dedx(kinetic[2:], argon.ELECTRON_MASS))
    np.testing.assert_allclose(mean[[0, 1, -1]], [23.5, 23.5, 2.34], rtol=0.01)


def test_simulated_electrons_are_never_negative():
    """40 single-particle events of every species: 0 < electrons <= energy / W_ion per voxel."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        event = simulate_event(SimConfig(), rng)
        assert np.all(event.electrons > 0)
        assert np.all(event.electrons <= event.energy / argon.W_ION * (1 + 1e-9))
