"""The 2D topology yardstick: right counts on hand-made images, and on simulated crops it sits at
its real-vs-real floor undamaged and rises far above it when tracks are cut or scattered."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.data.crops import make_crop_set
from voxgen.evaluate import c2st, topology2d
from voxgen.evaluate.degrade import DEGRADATIONS, STRENGTHS
from voxgen.evaluate.distances import observable_scores
from voxgen.evaluate.image_sets import OBSERVABLES, ScoredImages, compare
from voxgen.evaluate.topology2d import TOPOLOGY_OBSERVABLES, topology_observables
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event


def line(points: list[tuple[int, int]], charge: float = 1.0) -> np.ndarray:
    """A 64x64 image with the pixels of straight segments between successive ``points`` (row, col)."""
    image = np.zeros((64, 64), np.float32)
    for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
        steps = max(abs(r1 - r0), abs(c1 - c0))
        rows = np.rint(np.linspace(r0, r1, steps + 1)).astype(int)
        cols = np.rint(np.linspace(c0, c1, steps + 1)).astype(int)
        image[rows, cols] = charge
    return image


def test_a_line_is_one_cluster_with_all_the_charge_and_no_gap():
    images = np.stack([line([(30, 5), (30, 58)]), line([(5, 5), (58, 58)]), line([(4, 10), (60, 31)])])
    out = topology_observables(images)
    assert out["n_clusters"].tolist() == [1, 1, 1]
    assert out["n_clusters_3plus"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(out["largest_share"], 1.0)
    assert out["track_gaps"].tolist() == [0, 0, 0]  # whatever the direction: sqrt(2) steps are no gap


def test_a_line_cut_in_three_is_three_clusters_and_two_gaps():
    image = line([(30, 4), (30, 59)])  # 56 pixels
    image[30, 20:24] = 0  # pieces of 16, 16 and 16 pixels
    image[30, 40:44] = 0
    image[30, 44:60] *= 2.0  # the last piece holds half the charge
    diagonal = line([(4, 4), (59, 59)])
    for k in (20, 21, 38, 39, 40):
        diagonal[k, k] = 0  # a 2-pixel and a 3-pixel cut along the diagonal
    out = topology_observables(np.stack([image, diagonal]))
    assert out["n_clusters"].tolist() == [3, 3]
    assert out["n_clusters_3plus"].tolist() == [3, 3]
    assert out["largest_share"][0] == pytest.approx(0.5)
    assert out["track_gaps"].tolist() == [2, 2]


def test_scattered_pixels_empty_images_and_blocks(monkeypatch):
    scattered = np.zeros((64, 64), np.float32)
    scattered[[5, 20, 40, 60], [5, 50, 10, 33]] = [1.0, 1.0, 2.0, 4.0]
    scattered[10:12, 30] = 1.0  # a pair: a cluster, not one of 3 or more pixels
    blob = np.zeros((64, 64), np.float32)
    blob[0, 0:3] = 1.0  # at the edge next to the previous image's last row: images never join
    images = np.stack([scattered, np.zeros((64, 64), np.float32), blob] * 4)
    out = topology_observables(images)
    assert out["n_clusters"][:3].tolist() == [5, 0, 1]
    assert out["n_clusters_3plus"][:3].tolist() == [0, 0, 1]
    assert out["largest_share"][0] == pytest.approx(4 / 10) and np.isnan(out["largest_share"][1])
    assert out["track_gaps"][1] == 0
    for name in TOPOLOGY_OBSERVABLES:  # identical for every repeat, and when labelled in blocks of 2
        np.testing.assert_array_equal(out[name].reshape(4, 3), np.tile(out[name][:3], (4, 1)))
    nothing = topology_observables(np.zeros((2, 64, 64), np.float32))
    assert nothing["n_clusters"].tolist() == [0, 0] and nothing["track_gaps"].tolist() == [0, 0]
    monkeypatch.setattr(topology2d, "CHUNK", 2)
    split = topology_observables(images)
    for name in TOPOLOGY_OBSERVABLES:
        np.testing.assert_array_equal(split[name], out[name])


def test_image_set_scores_include_topology_next_to_their_floor(monkeypatch):
    monkeypatch.setattr(c2st, "c2st_accuracy", lambda *args, **kwargs: 0.5)  # a classifier's training: not tested here
    rng = np.random.default_rng(0)
    images = np.stack([line([(int(r), 5), (int(r) + 20, 58)]) for r in rng.integers(5, 40, 30)])
    cut = DEGRADATIONS["cut_tracks"](images, 1.0, np.random.default_rng(1))

    def scored(x: np.ndarray) -> ScoredImages:
        n = len(x)
        probs = np.full((n, 3, 64, 64), 1 / 3, np.float32)
        return ScoredImages(x, probs, rng.normal(size=(n, 4)), np.zeros_like(x, np.int8))

    assert set(TOPOLOGY_OBSERVABLES) <= set(OBSERVABLES)
    floor, damaged = compare(scored(images), scored(images), 0, n_emd=4), compare(scored(images), scored(cut), 0, 4)
    for name in TOPOLOGY_OBSERVABLES:
        assert floor[f"kl_{name}"] == pytest.approx(0.0, abs=1e-9) and floor[f"chi2_{name}"] == 0.0
    assert damaged["kl_n_clusters"] > 1.0 and damaged["chi2_track_gaps"] > 10.0


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """~800 64x64 crops of 100 simulated mu- / e- / p events (as the SSNet training data)."""
    rng = np.random.default_rng(5)
    events = [simulate_event(SimConfig(species=["mu-", "e-", "p"]), rng) for _ in range(100)]
    return make_crop_set(events, 8, seed=5, progress=False).images


def halves(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(images))
    n = len(images) // 2
    return images[order[:n]], images[order[n : 2 * n]]


def topology_kls(ref: dict, images: np.ndarray) -> np.ndarray:
    """KL of each topology observable of ``images`` against the observables ``ref``."""
    cand = topology_observables(images)
    return np.array([observable_scores(ref[name], cand[name])[1] for name in TOPOLOGY_OBSERVABLES])


@pytest.mark.parametrize("name", ["cut_tracks", "scatter_fragments", "pixel_dropout"])
def test_topology_kls_sit_at_the_floor_undamaged_and_rise_with_strength(crops, name):
    """The floor band: each KL between the two halves of 5 random splits of the real crops; undamaged
    held-out crops score the floor of their split, the strongest damage at least 4x the band's top,
    and the summed KL rises with every step of strength."""
    band = np.array([topology_kls(topology_observables(a), b) for a, b in (halves(crops, s) for s in range(5))])
    ref, heldout = halves(crops, 0)
    ref_obs = topology_observables(ref)
    curve = np.array(
        [topology_kls(ref_obs, DEGRADATIONS[name](heldout, s, np.random.default_rng(1))) for s in STRENGTHS[name]]
    )
    np.testing.assert_allclose(curve[0], band[0])
    assert np.all(curve[0] <= band.max(axis=0))
    assert np.all(curve[-1] > 4 * band.max(axis=0)), (name, curve[-1], band.max(axis=0))
    assert np.all(np.diff(curve.sum(axis=1)) > 0), (name, curve.sum(axis=1))
