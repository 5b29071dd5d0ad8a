"""The event generator: determinism, labels, containment, modes, datasets."""

from __future__ import annotations

import numpy as np
import pytest

from voxgen.errors import ConfigError
from voxgen.io.pilarnet import PilarnetReader
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_dataset, simulate_event


def test_same_seed_same_event():
    a = simulate_event(SimConfig(), np.random.default_rng(11))
    b = simulate_event(SimConfig(), np.random.default_rng(11))
    assert a.equals(b)


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_events_are_valid_and_labelled(mode):
    rng = np.random.default_rng(4)
    for _ in range(8):
        e = simulate_event(SimConfig(), rng, mode)
        e.validate()  # in-grid coords, finite energies, consistent cluster index
        assert len(e) >= 10 and np.all(e.energy > 0)
        assert np.all(np.isin(e.semantic, [0, 1, 2, 3, 4]))
        assert np.all(np.diff(e.cluster) >= 0)  # cluster-ordered, as PILArNet stores points
        lowe = e.clusters.semantic == 4
        assert not lowe.any() or np.flatnonzero(lowe).tolist() == [0]  # low-energy cluster first
        assert np.all(e.time >= 0) and np.all(e.dx >= 0)
        assert np.all(e.dx[e.semantic == 1] > 0)  # track voxels carry path length (cm)


def test_single_particle_truth_and_containment():
    rng = np.random.default_rng(8)
    for _ in range(10):
        e = simulate_event(SimConfig(species=["p"], momentum_mev={"p": [300.0, 600.0]}), rng)
        [p] = e.particles
        assert p.pid == 4 and 300 <= p.momentum <= 600
        assert np.linalg.norm(p.direction) == pytest.approx(1.0, abs=1e-5)
        kinetic = np.hypot(p.momentum, 938.272) - 938.272
        assert e.total_energy == pytest.approx(kinetic, rel=0.15)  # contained: all energy visible


def test_multi_mode_has_several_primaries_at_one_vertex():
    e = simulate_event(SimConfig(mode="multi", n_primaries=[3, 3]), np.random.default_rng(2))
    assert len(e.particles) >= 3
    vertices = np.array([p.vertex for p in e.particles[:3]])
    assert np.allclose(vertices, vertices[0])
    assert len(np.unique(e.instance)) >= 2


def test_dataset_is_independent_of_workers(tmp_path):
    cfg = SimConfig()
    serial = simulate_dataset(cfg, tmp_path / "a", n_events=10, seed=5, workers=0, events_per_shard=4, progress=False)
    parallel = simulate_dataset(cfg, tmp_path / "b", n_events=10, seed=5, workers=2, events_per_shard=4, progress=False)
    assert [p.name for p in serial] == ["sim_single_000.h5", "sim_single_001.h5", "sim_single_002.h5"]
    a, b = PilarnetReader(serial), PilarnetReader(parallel)
    assert len(a) == len(b) == 10
    assert all(x.equals(y) for x, y in zip(a, b))


def test_rerun_with_fewer_events_removes_stale_shards(tmp_path):
    simulate_dataset(SimConfig(), tmp_path, n_events=6, seed=1, events_per_shard=2, progress=False)
    simulate_dataset(SimConfig(), tmp_path, n_events=2, seed=1, events_per_shard=2, progress=False)
    assert len(PilarnetReader(tmp_path)) == 2


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"mode": "both"}, "sim.mode"),
        ({"species": ["kaon"]}, "sim.species"),
        ({"momentum_mev": {"e-": [500.0, 100.0]}, "species": ["e-"]}, "sim.momentum_mev.e-"),
        ({"n_primaries": [0, 2]}, "sim.n_primaries"),
        ({"n_primaries": [1.5, 2]}, "sim.n_primaries"),
        ({"momentum_mev": {"p": [105.0, 1e9]}, "species": ["p"]}, "sim.momentum_mev.p"),
        ({"tracking_cut_mev": 0.0}, "sim.tracking_cut_mev"),
        ({"lowe_threshold_mev": -1.0}, "sim.lowe_threshold_mev"),
        ({"efield_kv_cm": float("nan")}, "sim.efield_kv_cm"),
        ({"box_alpha": 0.0}, "sim.box_alpha"),
        ({"box_alpha": 1.2}, "sim.box_alpha"),
        ({"grid": 10**6}, "sim.grid"),
        ({"grid": None}, "sim.grid"),
        ({"min_voxels": 0}, "sim.min_voxels"),
    ],
)
def test_bad_values_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        SimConfig(**kwargs)
