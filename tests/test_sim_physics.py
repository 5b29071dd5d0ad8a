"""Physics checks of the built-in simulator against argon numbers (tolerances stated per test)."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.sim import argon, validation


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
