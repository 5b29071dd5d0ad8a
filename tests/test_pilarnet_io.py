"""PILArNet-M v2 write/read round trips, v1 reading, filters and layout."""

from __future__ import annotations

import pickle

import h5py
import numpy as np

from voxgen.events import Event
from voxgen.io.pilarnet import VLEN_F32, PilarnetReader, write_events


def test_write_then_read_is_identical(tmp_path, events):
    path = write_events(tmp_path / "shard.h5", events)
    reader = PilarnetReader(path)
    assert len(reader) == len(events)
    for original, read in zip(events, reader):
        assert read.equals(original)


def test_layout_is_pilarnet_v2(tmp_path, events):
    path = write_events(tmp_path / "shard.h5", events)
    with h5py.File(path) as f:
        assert {"point", "cluster", "cluster_extra"} <= set(f)
        assert f["point"].dtype == VLEN_F32
        point = f["point"][0].reshape(-1, 8)
        cluster = f["cluster"][0].reshape(-1, 6)
        extra = f["cluster_extra"][0].reshape(-1, 5)
    e = events[0]
    np.testing.assert_array_equal(point[:, :3], e.coords)
    np.testing.assert_array_equal(point[:, 3], e.energy)
    np.testing.assert_array_equal(point[:, 5], e.electrons)
    # cluster k owns the next n_points[k] rows; semantic and PID in columns 4 and 5
    np.testing.assert_array_equal(cluster[:, 0], np.bincount(e.cluster))
    np.testing.assert_array_equal(cluster[:, 4], e.clusters.semantic)
    np.testing.assert_array_equal(cluster[:, 5], e.clusters.pid)
    np.testing.assert_allclose(extra[:, 1], e.clusters.momentum)


def test_reads_foreign_v1_and_v2_files(tmp_path):
    """Files written by hand as other tools do: v1 (5 cluster columns) and v2 without truth."""
    point = np.array(
        [[10, 20, 30, 1.5, 0, 100, 0.3, 0], [11, 20, 30, 0.5, 0, 40, 0.3, 0], [50, 60, 70, 2.0, 0, 90, 0.3, 0]],
        np.float32,
    )
    for version in (1, 2):
        path = tmp_path / f"v{version}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("point", (1,), dtype=VLEN_F32)[0] = point.ravel()
            cl = np.array([[2, 0, 0, 0, 1, 2], [1, 1, 1, 0, 0, 1]], np.float32)[:, : 4 + version]
            f.create_dataset("cluster", (1,), dtype=VLEN_F32)[0] = cl.ravel()
            if version == 2:
                ex = np.array([[0, 300, 10, 20, 30], [0, 50, 50, 60, 70]], np.float32)
                f.create_dataset("cluster_extra", (1,), dtype=VLEN_F32)[0] = ex.ravel()
        event = PilarnetReader(path)[0]
        np.testing.assert_array_equal(event.semantic, [1, 1, 0])
        np.testing.assert_array_equal(event.instance, [0, 0, 1])
        if version == 2:
            np.testing.assert_array_equal(event.pid, [2, 2, 1])
            assert [p.momentum for p in event.particles] == [300.0, 50.0]
            assert np.isnan(event.particles[0].direction[0])
        else:
            assert np.all(event.pid == -1) and event.particles == []


def test_filters_min_points_threshold_and_lowe(tmp_path, events):
    path = write_events(tmp_path / "shard.h5", events)
    sizes = np.array([len(e) for e in events])
    cut = int(np.median(sizes))
    reader = PilarnetReader(path, min_points=cut)
    assert len(reader) == int((sizes >= cut).sum())
    assert np.all(reader.n_points >= cut)
    thresholded = PilarnetReader(path, energy_threshold=1.0)[0]
    assert thresholded.energy.min() >= 1.0
    assert len(thresholded) == int((events[0].energy >= 1.0).sum())
    no_lowe = PilarnetReader(path, drop_lowe=True)
    for original, read in zip(events, no_lowe):
        assert not np.any(read.semantic == 4)
        assert len(read) == int((original.semantic != 4).sum())


def test_reader_pickles_without_handles(tmp_path, events):
    reader = PilarnetReader(write_events(tmp_path / "s.h5", events))
    reader[0]
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._handles == {}
    assert clone[1].equals(events[1])


def test_folder_of_shards_reads_in_order(tmp_path, events):
    write_events(tmp_path / "a_000.h5", events[:2])
    write_events(tmp_path / "a_001.h5", events[2:])
    reader = PilarnetReader(tmp_path)
    assert len(reader) == len(events)
    assert all(r.equals(e) for r, e in zip(reader, events))


def test_unlabelled_event_gets_one_unknown_cluster(tmp_path):
    e = Event(coords=[[1, 2, 3], [4, 5, 6]], energy=[1.0, 2.0])
    read = PilarnetReader(write_events(tmp_path / "u.h5", [e]))[0]
    np.testing.assert_array_equal(read.coords, e.coords)
    np.testing.assert_array_equal(read.semantic, [-1, -1])


def test_cluster_table_without_voxel_index_is_written_unlabelled(tmp_path, events):
    """An event with a cluster table but no per-voxel cluster (a Parquet row can be one) keeps
    its voxels and particles; its voxels become one cluster of unknown type."""
    table_only = events[0].select(np.ones(len(events[0]), bool))
    table_only.cluster = None
    read = PilarnetReader(write_events(tmp_path / "t.h5", [table_only]))[0]
    np.testing.assert_array_equal(read.coords, table_only.coords)
    np.testing.assert_array_equal(read.semantic, np.full(len(table_only), -1))
    assert [p.group for p in read.particles] == [p.group for p in table_only.particles]
