"""The metric functions of voxgen.evaluate on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.evaluate import (
    c2st_accuracy,
    describe_events,
    energy_set_distance,
    event_observables,
    frechet_distance,
    histogram_chi2,
    histogram_kl,
    image_emd,
    image_sinkhorn,
    mmd_rbf,
    mode_collapse_report,
    nearest_emd,
    nearest_emd_distance,
    observable_scores,
    pixel_charge_w1,
    plane_residual,
    pointcloud_sinkhorn,
    shower_observables,
    ssnet_kl,
    ssnet_output_stats,
    track_dedx,
    track_observables,
)
from voxgen.events import Clusters, Event


def dot_image(row: int, col: int, size: int = 16) -> np.ndarray:
    image = np.zeros((size, size), np.float32)
    image[row, col] = 1.0
    return image


def line_event(n: int = 100, energy: float = 0.6, offset: int = 100) -> Event:
    coords = np.stack([np.arange(n) + offset, np.full(n, 200), np.full(n, 300)], axis=1).astype(np.int32)
    return Event(coords=coords, energy=np.full(n, energy, np.float32))


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # 1D, std 1 vs std 2: (1 - 2)^2 = 1
    assert frechet_distance(rng.normal(size=(20000, 1)), 2 * rng.normal(size=(20000, 1))) == pytest.approx(
        1.0, abs=0.06
    )


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    same = mmd_rbf(a, b)
    small, large = mmd_rbf(a, b + 0.3), mmd_rbf(a, b + 1.0)
    assert abs(same) < 0.01
    assert same < small < large
    # with one bandwidth, MMD^2 between two point masses is 2 - 2 exp(-d^2 / 2h^2)
    x = np.zeros((50, 1)) + rng.normal(scale=1e-9, size=(50, 1))
    assert mmd_rbf(x, x + 1.0, bandwidths=[1.0]) == pytest.approx(2 - 2 * np.exp(-0.5), rel=1e-6)


def test_histogram_kl_and_chi2_known_values():
    a = np.array([0.0] * 50 + [1.0] * 50)
    b = np.array([0.0] * 25 + [1.0] * 75)
    edges = [-0.5, 0.5, 1.5]
    assert histogram_kl(a, b, edges) == pytest.approx(0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75), abs=1e-4)
    assert histogram_kl(a, a, edges) == pytest.approx(0.0, abs=1e-12)
    # equal totals: sum (a_i - b_i)^2 / (a_i + b_i) = 25^2/75 + 25^2/125
    assert histogram_chi2(a, b, edges) == pytest.approx(625 / 75 + 625 / 125)
    chi2, kl = observable_scores(a, a)
    assert chi2 == 0.0 and kl == pytest.approx(0.0, abs=1e-12)
    assert observable_scores(a, np.array([np.nan])) == (np.inf, np.inf)
    assert np.isnan(observable_scores([], [])[0])


def test_emd_of_a_moved_dot_is_the_distance_moved_and_sinkhorn_agrees():
    a, b = dot_image(3, 3), dot_image(3, 10)
    assert image_emd(a, b) == pytest.approx(7.0)
    assert image_emd(a, dot_image(6, 7)) == pytest.approx(5.0)
    # half the charge moved by 4 pixels: W1 = 2
    split = np.zeros((16, 16), np.float32)
    split[3, 3] = split[3, 7] = 0.5
    assert image_emd(a, split) == pytest.approx(2.0)
    assert image_sinkhorn(a, a) == pytest.approx(0.0, abs=1e-9)
    assert image_sinkhorn(a, b, reg=0.1) == pytest.approx(7.0, rel=0.02)
    with pytest.raises(ValueError, match="no positive charge"):
        image_emd(a, np.zeros_like(a))


def test_energy_set_distance_is_zero_for_one_distribution_and_grows_with_the_difference():
    rng = np.random.default_rng(2)

    def dots(n, centre):
        return np.stack([dot_image(8, int(c)) for c in np.round(centre + rng.normal(size=n))])

    # dots at N(4, 1) vs N(10, 1) columns: D = E|X - Y| - E|X - X'| = 6 - 2 / sqrt(pi) = 4.87
    ref, same, shifted = dots(300, 4), dots(300, 4), dots(300, 10)
    floor = energy_set_distance(ref, same, image_emd, 400, np.random.default_rng(0))
    assert abs(floor) < 0.15
    assert energy_set_distance(ref, shifted, image_emd, 400, np.random.default_rng(0)) == pytest.approx(4.87, abs=0.3)
    scalar = energy_set_distance([0.0, 0.0, 0.0], [5.0, 5.0, 5.0], lambda x, y: abs(x - y), 50, rng)
    assert scalar == pytest.approx(5.0)


def test_nearest_emd_distance_and_pixel_charge_w1():
    rng = np.random.default_rng(5)
    grid = np.stack([dot_image(r, c) for r in range(0, 16, 2) for c in range(0, 16, 2)])  # 64 dots
    assert nearest_emd_distance(grid, grid, 64, rng) == 0.0
    moved = np.roll(grid, 1, axis=2)  # every dot one column over: nearest real dot 1 px away
    assert nearest_emd_distance(grid, moved, 64, rng) == pytest.approx(1.0)
    charged = np.abs(rng.normal(size=(50, 16, 16))).astype(np.float32)
    assert pixel_charge_w1(charged, charged) == 0.0
    assert pixel_charge_w1(charged, 1.1 * charged) == pytest.approx(0.1, rel=1e-5)


def test_dense_images_are_coarse_grained_within_a_quarter_pixel():
    rng = np.random.default_rng(6)
    a, b = rng.random((2, 64, 64))  # 4096 charged pixels each: pooled 4x4 down to 256
    exact = image_emd(a[:32, :32], b[:32, :32], max_points=10**6)
    coarse = image_emd(a[:32, :32], b[:32, :32], max_points=300)
    assert abs(coarse - exact) < 0.25
    assert image_emd(a, a, max_points=100) == pytest.approx(0.0, abs=1e-9)


def test_track_observables_of_lines_and_bands():
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 10, 5:35] = 1.0  # 30-pixel horizontal line
    labels = np.where(image > 0, 2, 0)
    obs = track_observables(image, labels)
    assert obs["track_length"][0] == pytest.approx(30.0)
    assert obs["track_width"][0] == pytest.approx(1.0)
    band = np.zeros((1, 64, 64), np.float32)
    band[0, 20:23, 10:50] = 1.0  # 3 x 40 band
    obs = track_observables(band, np.where(band > 0, 2, 0))
    assert obs["track_length"][0] == pytest.approx(40.0)
    assert obs["track_width"][0] == pytest.approx(3.0, rel=1e-6)
    diagonal = np.eye(64, dtype=np.float32)[None, 10:40, 10:40]  # 30 pixels on a 30x30 diagonal
    assert track_observables(diagonal, np.where(diagonal > 0, 2, 0))["track_length"][0] == pytest.approx(
        29 * np.sqrt(2) + 1
    )
    showers = shower_observables(band * 2.0, np.where(band > 0, 1, 0))
    assert showers["shower_pixels"][0] == 120 and showers["shower_charge"][0] == pytest.approx(240.0)
    assert np.isnan(track_observables(band, np.zeros((1, 64, 64), int))["track_length"][0])


def test_ssnet_output_stats_and_kl():
    probs = np.zeros((2, 3, 8, 8), np.float32)
    probs[:, 2] = 0.8
    probs[:, 1] = 0.2
    images = np.zeros((2, 8, 8), np.float32)
    images[0, 0, :4] = 1.0
    images[1, 1, :2] = 1.0
    stats = ssnet_output_stats(probs, images, 0.0)
    assert stats["track_count"].tolist() == [4, 2] and stats["shower_count"].tolist() == [0, 0]
    assert len(stats["track_score"]) == 6 and np.allclose(stats["track_score"], 0.8)
    kl = ssnet_kl(stats, stats)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in kl.values())
    flipped = ssnet_output_stats(probs[:, [0, 2, 1]], images, 0.0)
    assert ssnet_kl(stats, flipped)["track_count"] > 1.0


def test_c2st_is_chance_for_one_distribution_and_perfect_for_separated_ones():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    assert abs(c2st_accuracy(a, b) - 0.5) < 0.08
    assert c2st_accuracy(a, b + 3.0) > 0.97
    assert c2st_accuracy(a, b) == c2st_accuracy(a, b)  # deterministic for a seed


def test_nearest_emd_finds_copies_and_mode_collapse_flags_them():
    rng = np.random.default_rng(4)
    train = np.stack(
        [dot_image(int(r), int(c)) + 0.5 * dot_image(int(c), int(r)) for r, c in rng.integers(0, 16, size=(120, 2))]
    )
    heldout = np.stack([dot_image(int(r), int(c)) for r, c in rng.integers(0, 16, size=(60, 2))])
    copies = train[:60]
    assert np.allclose(nearest_emd(copies, train), 0.0)
    report = mode_collapse_report(copies, heldout, train)
    assert report["copy_fraction"] == 1.0 and report["copies_flagged"]
    fresh = mode_collapse_report(heldout[:30], heldout[30:], train)
    assert not fresh["copies_flagged"]


def test_event_observables_and_dedx_of_a_straight_track():
    event = line_event(100, energy=0.6)
    obs = event_observables(event)
    assert obs["n_voxels"] == 100 and obs["total_energy"] == pytest.approx(60.0, rel=1e-5)
    assert obs["pca_length"] == pytest.approx(30.0, rel=1e-5)  # 100 voxels x 0.3 cm
    assert obs["extent_x"] == pytest.approx(30.0) and obs["extent_y"] == pytest.approx(0.3)
    assert np.allclose(track_dedx(event, semantic_track=None), 2.0, rtol=1e-5)  # 0.6 MeV per 0.3 cm
    labelled = Event(
        coords=event.coords,
        energy=event.energy,
        cluster=np.zeros(100, np.int32),
        clusters=Clusters.build(semantic=[1], pid=[2]),
    )
    assert np.allclose(track_dedx(labelled), 2.0, rtol=1e-5)


def test_pointcloud_sinkhorn_and_plane_residual():
    a = line_event(40, offset=100)
    shifted = line_event(40, offset=110)  # 10 voxels = 3 cm along the line
    assert pointcloud_sinkhorn(a, a) == pytest.approx(0.0, abs=1e-6)
    assert pointcloud_sinkhorn(a, shifted, reg=0.05) == pytest.approx(3.0, rel=0.05)
    assert plane_residual(a) < 1e-6
    described = describe_events([a, shifted], progress=False)
    assert described["n_voxels"].tolist() == [40.0, 40.0] and len(described["dedx"]) == 80


def test_nearest_emd_leaves_out_empty_images():
    """A generator may draw an empty crop: it has no EMD, so it is left out, not an error."""
    from voxgen.evaluate.distances import nearest_emd_distance

    a = np.zeros((5, 8, 8))
    a[:, 2, 2] = 1.0
    b = a.copy()
    b[0] = 0.0
    assert nearest_emd_distance(a, b, 5, np.random.default_rng(0)) == pytest.approx(0.0)
    assert np.isnan(nearest_emd_distance(a, np.zeros((3, 8, 8)), 5, np.random.default_rng(0)))
