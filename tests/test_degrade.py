"""The controlled degradations do what they say, by the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.evaluate.degrade import DEGRADATIONS, STRENGTHS
from voxgen.evaluate.topology2d import topology_observables


@pytest.fixture()
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros((20, 64, 64), np.float32)
    for image in out:
        row = rng.integers(10, 54)
        image[row, 5:60] = rng.uniform(0.5, 2.0, 55)  # a horizontal track
        image[rng.integers(0, 64, 30), rng.integers(0, 64, 30)] += 0.3  # scattered charge
    return out


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_strength_zero_is_the_identity_and_strengths_increase(images, name):
    out = DEGRADATIONS[name](images, 0.0, np.random.default_rng(1))
    assert np.array_equal(out, images) and out is not images
    assert STRENGTHS[name][0] == 0.0 and np.all(np.diff(STRENGTHS[name]) > 0)
    damaged = DEGRADATIONS[name](images, STRENGTHS[name][-1], np.random.default_rng(1))
    assert damaged.shape == images.shape and damaged.dtype == np.float32 and (damaged >= 0).all()
    assert not np.allclose(damaged, images)


@pytest.mark.parametrize("name", ["gaussian_blur", "thicken_tracks"])
def test_spreading_keeps_each_image_charge(images, name):
    for strength in STRENGTHS[name][1:]:
        out = DEGRADATIONS[name](images, strength, np.random.default_rng(1))
        np.testing.assert_allclose(out.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=1e-5)
    assert (out > 0).sum() > 1.5 * (images > 0).sum()  # the strongest spreads charge wider


def test_thickening_widens_a_line_to_2r_plus_1_pixels():
    line = np.zeros((1, 64, 64), np.float32)
    line[0, 30, 10:50] = 1.0
    out = DEGRADATIONS["thicken_tracks"](line, 2.0, np.random.default_rng(0))
    assert (out[0, :, 30] > 0).sum() == 5


def test_dropout_removes_that_fraction_of_charged_pixels(images):
    out = DEGRADATIONS["pixel_dropout"](images, 0.25, np.random.default_rng(2))
    kept = (out > 0).sum() / (images > 0).sum()
    assert kept == pytest.approx(0.75, abs=0.03)
    assert np.all((out == 0) | (out == images))


def test_noise_and_rescale_figures(images):
    # noise std 0.05 m with zero suppression at 0.05 m: empty pixels keep noise above 1 sigma
    noisy = DEGRADATIONS["additive_noise"](images, 0.05, np.random.default_rng(3))
    empty = images == 0
    mean_charge = images.sum(axis=(1, 2)) / (images > 0).sum(axis=(1, 2))
    assert (noisy[empty] > 0).mean() == pytest.approx(0.1587, abs=0.005)
    assert (noisy[0][empty[0] & (noisy[0] > 0)] >= 0.05 * mean_charge[0]).all()
    spread = (noisy - images)[~empty & (images > 0.5)] / np.repeat(
        mean_charge, (~empty & (images > 0.5)).sum(axis=(1, 2))
    )
    assert spread.std() == pytest.approx(0.05, rel=0.1)
    scaled = DEGRADATIONS["rescale_charge"](images, 0.25, np.random.default_rng(0))
    np.testing.assert_allclose(scaled, images * 1.25, rtol=1e-6)


def horizontal_lines(n: int, first: int, last: int) -> np.ndarray:
    """``n`` 64x64 images, each a horizontal line over columns first..last of charges in [0.5, 2]."""
    rng = np.random.default_rng(4)
    out = np.zeros((n, 64, 64), np.float32)
    for image in out:
        image[rng.integers(20, 44), first : last + 1] = rng.uniform(0.5, 2.0, last + 1 - first)
    return out


def test_cut_tracks_removes_whole_pixels_in_short_stretches():
    lines = horizontal_lines(200, 4, 58)  # 55 pixels, so 5.6 cuts of 3 pixels on average at strength 1
    out = DEGRADATIONS["cut_tracks"](lines, 1.0, np.random.default_rng(5))
    assert np.all((out == 0) | (out == lines))
    # each pixel escapes each of the Poisson(5.6) cuts, placed over 57 pixels, with probability 54/57
    removed = 1 - (out > 0).sum() / (lines > 0).sum()
    assert removed == pytest.approx(1 - np.exp(-5.6 * 3 / 57), abs=0.03)
    pieces = topology_observables(out)["n_clusters"]
    assert 4.0 < pieces.mean() < 6.5


def test_scatter_fragments_moves_pieces_whole_and_keeps_the_charge():
    lines = horizontal_lines(100, 20, 43)  # 24 pixels: 3 or 4 pieces of up to 8, moved 8 pixels stay inside
    out = DEGRADATIONS["scatter_fragments"](lines, 1.0, np.random.default_rng(6))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), lines.sum(axis=(1, 2)), rtol=1e-5)
    topology = topology_observables(out)
    assert topology["n_clusters"].mean() > 2.5 and np.median(topology["largest_share"]) < 0.6
    near = DEGRADATIONS["scatter_fragments"](lines, 0.25, np.random.default_rng(6))  # moves of 2 pixels
    line_row = np.argmax(lines.sum(axis=2), axis=1)
    image, row, col = np.nonzero(near)
    assert np.abs(row - line_row[image]).max() == 2 and col.min() >= 18 and col.max() <= 45
