"""The 3D topology figures count what they say, and their KL sees broken events."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.evaluate.degrade_events import (
    EVENT_DEGRADATIONS,
    STRENGTHS,
    degradation_curves,
    topology_kl,
    topology_table,
)
from voxgen.evaluate.event_sets import EVENT_OBSERVABLES, describe_events, evaluate_events
from voxgen.evaluate.topology import TOPOLOGY_OBSERVABLES, component_labels, topology_observables
from voxgen.events import Clusters, Event, centred_crop
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event

N_HALF = 150  # events per half: the KL floor of 20-bin histograms shrinks from ~3 nats at 20 events to ~0.2
RESPLITS = 5


def line(n: int = 100, start=(10, 10, 10), step=(1, 1, 1)) -> np.ndarray:
    """(n, 3) voxels of a straight 26-connected line."""
    return np.asarray(start) + np.arange(n)[:, None] * np.asarray(step)


def event(coords: np.ndarray, energy: np.ndarray | None = None, grid: int = 128) -> Event:
    return Event(coords=coords, energy=np.ones(len(coords)) if energy is None else energy, grid=grid)


@pytest.mark.parametrize("step", [(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 1, 0)])
def test_a_straight_line_is_one_cluster_with_all_the_energy_and_no_gap(step):
    coords = line(40, step=step)
    if step == (2, 1, 0):  # a 2-voxel stride is not 26-connected: fill the skipped voxels
        coords = np.concatenate([coords, coords[:-1] + [1, 0, 0]])
    out = topology_observables(event(coords, grid=256))
    assert out == {"n_clusters": 1.0, "n_clusters_3plus": 1.0, "largest_share": 1.0, "track_gaps": 0.0}


def test_a_line_cut_in_three_is_three_clusters_and_two_gaps():
    keep = np.r_[0:30, 34:60, 65:100]  # two cuts of 4 and 5 voxels
    out = topology_observables(event(line()[keep]))
    assert out["n_clusters"] == 3 and out["n_clusters_3plus"] == 3 and out["track_gaps"] == 2
    assert out["largest_share"] == pytest.approx(35 / 91)


def test_two_blobs_far_apart_are_two_clusters():
    cube = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    coords = np.concatenate([cube + 5, cube + 80, [[60, 60, 60]]])  # and one stray voxel
    energy = np.r_[np.full(27, 1.0), np.full(27, 3.0), 4.0]
    out = topology_observables(event(coords, energy))
    assert out["n_clusters"] == 3 and out["n_clusters_3plus"] == 2
    assert out["largest_share"] == pytest.approx(81 / 112)


def test_diagonal_neighbours_join_and_duplicates_merge():
    corner = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 1], [3, 3, 3]])
    assert component_labels(np.unique(corner, axis=0)).tolist() == [0, 0, 1]
    assert topology_observables(event(corner))["n_clusters"] == 2


def test_a_5000_voxel_event_takes_milliseconds():
    import time

    rng = np.random.default_rng(0)
    big = event(rng.integers(0, 768, (5000, 3)), rng.random(5000), grid=768)
    topology_observables(big)
    start = time.perf_counter()
    for _ in range(5):
        topology_observables(big)
    assert (time.perf_counter() - start) / 5 < 0.05


def test_the_event_yardstick_scores_topology():
    assert set(TOPOLOGY_OBSERVABLES) <= set(EVENT_OBSERVABLES)
    cut = event(line()[np.r_[0:30, 34:60, 65:100]])
    described = describe_events([event(line()), cut], progress=False)
    assert described["n_clusters"].tolist() == [1.0, 3.0] and described["track_gaps"].tolist() == [0.0, 2.0]


def test_evaluate_events_reports_topology_next_to_its_floor():
    lines = [event(line(60, start=(10 + i, 20, 30))) for i in range(8)]
    broken = [event(line(60, start=(10 + i, 20, 30))[np.r_[0:20, 24:40, 44:60]]) for i in range(4)]
    scores = evaluate_events(lines, broken, n=4, n_pairs=2, progress=False)
    for name in TOPOLOGY_OBSERVABLES:
        assert scores["floor"][f"kl_{name}"] == 0.0 and f"chi2_{name}" in scores["candidate"]
    assert scores["candidate"]["kl_n_clusters"] > 10 and scores["candidate"]["kl_track_gaps"] > 10


@pytest.fixture(scope="module")
def real():
    """2 x N_HALF simulated single-particle events (all species), each on its centred 128^3 crop."""
    rng = np.random.default_rng(3)
    return [centred_crop(simulate_event(SimConfig(), rng), 128) for _ in range(2 * N_HALF)]


@pytest.mark.parametrize("name", sorted(EVENT_DEGRADATIONS))
def test_degradations_keep_events_valid_and_strength_zero_is_the_identity(real, name):
    degrade = EVENT_DEGRADATIONS[name]
    labelled = real[0]
    assert labelled.cluster is not None
    same = degrade(labelled, 0.0, np.random.default_rng(0))
    assert same.equals(labelled) and same.coords is not labelled.coords
    for e in real[:20]:
        damaged = degrade(e, 1.0, np.random.default_rng(1))
        damaged.validate(name)
        assert damaged.grid == e.grid and len(damaged.energy) == len(damaged.cluster)
    assert not all(np.array_equal(degrade(e, 1.0, np.random.default_rng(1)).coords, e.coords) for e in real[:20])


def test_degradation_figures():
    track = event(line(100, step=(1, 0, 0)), np.ones(100))
    cut = EVENT_DEGRADATIONS["cut_tracks"](track, 0.25, np.random.default_rng(0))  # 2 cuts of 3 voxels
    assert len(cut) == 94 and topology_observables(cut) | {"largest_share": 0} == {
        "n_clusters": 3.0,
        "n_clusters_3plus": 3.0,
        "largest_share": 0,
        "track_gaps": 2.0,
    }
    dropped = [len(EVENT_DEGRADATIONS["drop_voxels"](track, 0.5, np.random.default_rng(s))) for s in range(20)]
    assert np.mean(dropped) == pytest.approx(75, abs=2)  # strength 0.5 drops a quarter
    scattered = EVENT_DEGRADATIONS["scatter_fragments"](track, 1.0, np.random.default_rng(0))
    assert topology_observables(scattered)["n_clusters"] >= 6  # 8 pieces, a few may still touch
    labelled = Event(coords=line(10), energy=np.ones(10), cluster=np.zeros(10), clusters=Clusters.build([1], [2]))
    jittered = EVENT_DEGRADATIONS["jitter_coordinates"](labelled, 1.0, np.random.default_rng(0))
    assert jittered.semantic.tolist() == [1] * 10 and np.array_equal(jittered.energy, labelled.energy)


def test_topology_kl_sits_at_the_floor_at_strength_zero_and_far_above_it_at_one(real):
    reference, heldout = real[:N_HALF], real[N_HALF:]
    table = topology_table(real)
    rng = np.random.default_rng(0)
    band = 0.0  # the largest real-vs-real topology KL over random halvings
    for _ in range(RESPLITS):
        order = rng.permutation(len(real))
        halves = [{k: v[order[s]] for k, v in table.items()} for s in (slice(0, N_HALF), slice(N_HALF, None))]
        band = max(band, topology_kl(*halves)["topology"])
    floor = topology_kl(topology_table(reference), topology_table(heldout))["topology"]
    band = max(band, floor)
    curves = degradation_curves(reference, heldout, (0.0, 1.0), seed=0)
    for name, curve in curves.items():
        assert curve["topology"][0] == pytest.approx(floor), name
        assert curve["topology"][1] >= 3 * band + 1.0, (name, curve["topology"], band)
    assert STRENGTHS[0] == 0.0 and STRENGTHS[-1] == 1.0
