"""Parquet round trips and sharding, cube meshes, the export dispatcher, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trimesh

from voxgen.errors import BadInput, ConfigError
from voxgen.events import GRID_SIZE, VOXEL_MM, Clusters, Event, Particle
from voxgen.io import mesh as mesh_module
from voxgen.io import parquet as parquet_module
from voxgen.io.export import export_events
from voxgen.io.mesh import event_to_mesh, write_mesh
from voxgen.io.parquet import read_parquet, write_parquet
from voxgen.io.pilarnet import PilarnetReader


def labelled_event(rng: np.random.Generator, n_clusters: int = 3, grid: int = GRID_SIZE) -> Event:
    """Voxels in ``n_clusters`` blobs with all optional columns, a cluster table and particles."""
    sizes = rng.integers(2, 12, size=n_clusters)
    n = int(sizes.sum())
    clusters = Clusters.build(
        semantic=rng.integers(0, 5, n_clusters),
        pid=rng.integers(0, 5, n_clusters),
        group=np.arange(n_clusters),
        interaction=np.zeros(n_clusters),
        momentum=rng.uniform(10, 900, n_clusters),
        vertex=rng.uniform(0, grid, (n_clusters, 3)),
        lead=rng.uniform(0, 1, n_clusters),
    )
    particles = [
        Particle(
            pid=int(clusters.pid[k]),
            momentum=float(rng.uniform(10, 900)),
            vertex=tuple(rng.uniform(0, grid, 3)),
            direction=(0.0, 0.6, 0.8),
            group=k,
        )
        for k in range(n_clusters)
    ]
    return Event(
        coords=distinct_coords(rng, n, grid),
        energy=rng.uniform(0.01, 5, n),
        electrons=rng.uniform(0, 1e5, n),
        time=rng.uniform(0, 100, n),
        dx=rng.uniform(0.3, 0.6, n),
        cluster=np.repeat(np.arange(n_clusters), sizes),
        clusters=clusters,
        particles=particles,
        grid=grid,
    )


def unlabelled_event(rng: np.random.Generator, n: int = 7, grid: int = GRID_SIZE) -> Event:
    """Voxels and energies only: no labels, optional columns or particles."""
    return Event(coords=distinct_coords(rng, n, grid), energy=rng.uniform(0.01, 5, n), grid=grid)


def distinct_coords(rng: np.random.Generator, n: int, grid: int) -> np.ndarray:
    """(n, 3) distinct voxel indices in [0, grid)."""
    return np.stack(np.unravel_index(rng.choice(grid**3, n, replace=False), (grid,) * 3), axis=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


@pytest.fixture
def mixed(rng) -> list[Event]:
    """Labelled, unlabelled, a particle with unknown (NaN) direction, a table without voxel index."""
    foreign = labelled_event(rng, 2)
    foreign.particles.append(Particle(pid=2, momentum=123.5, vertex=(1.0, 2.0, 3.0), direction=(float("nan"),) * 3))
    table_only = labelled_event(rng, 1)
    table_only.cluster = None
    return [
        labelled_event(rng, 3),
        unlabelled_event(rng),
        foreign,
        labelled_event(rng, 1),
        table_only,
        unlabelled_event(rng, n=1),
    ]


def assert_same_events(read: list[Event], written: list[Event], exact_particles: bool = True) -> None:
    """``Event.equals`` for each pair; with ``exact_particles`` also the particles in float64."""

    def rows(e: Event) -> np.ndarray:
        return np.array([(p.pid, p.group, p.momentum, *p.vertex, *p.direction) for p in e.particles], dtype=np.float64)

    assert len(read) == len(written)
    for a, b in zip(read, written):
        assert a.equals(b)
        assert not exact_particles or np.array_equal(rows(a), rows(b), equal_nan=True)


# ---- Parquet ----------------------------------------------------------------------------------


def test_parquet_round_trip_is_identical(tmp_path, mixed):
    paths = write_parquet(mixed, tmp_path / "events.parquet")
    assert paths == [tmp_path / "events.parquet"]
    assert_same_events(read_parquet(paths[0]), mixed)


@pytest.mark.parametrize("kind", ["labelled", "unlabelled"])
def test_parquet_round_trip_of_one_kind(tmp_path, rng, kind):
    make = labelled_event if kind == "labelled" else unlabelled_event
    events = [make(rng) for _ in range(4)]
    assert_same_events(read_parquet(write_parquet(events, tmp_path / "e.parquet")[0]), events)


def test_parquet_read_gives_writable_arrays(tmp_path, rng):
    (event,) = read_parquet(write_parquet([labelled_event(rng)], tmp_path / "e.parquet")[0])
    event.energy[0] = 1.0
    event.coords[0, 0] = 1


def test_parquet_shards_read_by_pandas_and_polars(tmp_path, rng):
    events = [labelled_event(rng, 2) if i % 3 else unlabelled_event(rng) for i in range(25)]
    out = tmp_path / "shards"
    paths = write_parquet(events, out, events_per_shard=10)
    assert [p.name for p in paths] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(p).metadata.num_rows for p in paths] == [10, 10, 5]
    frame = pd.read_parquet(out)
    assert len(frame) == 25 and list(frame["event"]) == list(range(25))
    np.testing.assert_allclose(frame["total_energy"], [e.total_energy for e in events], rtol=1e-12)
    polars_frame = pl.read_parquet(str(out / "*.parquet"))
    assert polars_frame.height == 25
    assert polars_frame["n_voxels"].to_list() == [len(e) for e in events]
    assert_same_events(read_parquet(out), events)


def test_parquet_file_name_with_more_than_one_shard_becomes_a_folder(tmp_path, rng):
    events = [unlabelled_event(rng) for _ in range(3)]
    out = tmp_path / "many.parquet"
    paths = write_parquet(events, out, events_per_shard=2)
    assert out.is_dir() and [p.parent for p in paths] == [out, out]
    assert_same_events(read_parquet(out), events)


def test_parquet_start_index_numbers_events_and_shards(tmp_path, rng):
    events = [unlabelled_event(rng) for _ in range(4)]
    paths = write_parquet(events, tmp_path / "d", events_per_shard=2, start_index=20)
    assert [p.name for p in paths] == ["part-00010.parquet", "part-00011.parquet"]
    assert list(pd.read_parquet(tmp_path / "d")["event"]) == [20, 21, 22, 23]


def test_parquet_columns_and_dtypes(tmp_path, mixed):
    path = write_parquet(mixed, tmp_path / "e.parquet")[0]
    schema = pq.read_schema(path)
    expected = {
        "event": pa.int64(),
        "n_voxels": pa.int32(),
        "total_energy": pa.float64(),
        "grid": pa.int32(),
        "primary_pid": pa.int32(),
        "primary_momentum": pa.float64(),
        "x": pa.list_(pa.int32()),
        "energy": pa.list_(pa.float32()),
        "dx": pa.list_(pa.float32()),
        "semantic": pa.list_(pa.int16()),
        "pid": pa.list_(pa.int16()),
        "instance": pa.list_(pa.int32()),
        "cluster": pa.list_(pa.int32()),
        "cluster_semantic": pa.list_(pa.int16()),
        "cluster_vertex_z": pa.list_(pa.float32()),
        "cluster_lead": pa.list_(pa.float32()),
        "particle_pid": pa.list_(pa.int32()),
        "particle_direction_y": pa.list_(pa.float64()),
        "particle_group": pa.list_(pa.int32()),
    }
    for name, kind in expected.items():
        assert schema.field(name).type == kind, name
    table = pq.read_table(path).to_pylist()
    labelled, unlabelled = table[0], table[1]
    assert labelled["semantic"] == mixed[0].semantic.tolist()
    assert labelled["instance"] == mixed[0].instance.tolist()
    assert labelled["primary_pid"] == mixed[0].particles[0].pid
    for name in (
        "semantic",
        "pid",
        "instance",
        "cluster",
        "electrons",
        "cluster_pid",
        "primary_pid",
        "primary_momentum",
    ):
        assert unlabelled[name] is None, name
    assert unlabelled["particle_pid"] == [] and unlabelled["n_voxels"] == 7


def test_parquet_bad_event_names_its_index_and_writes_nothing(tmp_path, rng):
    bad = unlabelled_event(rng)
    bad.energy[2] = np.nan
    out = tmp_path / "out" / "e.parquet"
    with pytest.raises(BadInput, match=r"e\.parquet event 1: non-finite"):
        write_parquet([unlabelled_event(rng), bad], out)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_parquet_failed_write_leaves_no_file(tmp_path, rng, monkeypatch):
    def half_write(table, where, **kwargs):
        where.write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(parquet_module.pq, "write_table", half_write)
    out = tmp_path / "e.parquet"
    with pytest.raises(OSError, match="disk full"):
        write_parquet([labelled_event(rng)], out)
    assert list(tmp_path.iterdir()) == []


def test_read_parquet_bad_paths(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        read_parquet(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no .parquet files"):
        read_parquet(tmp_path / "empty")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    not_ours = r"other\.parquet: not a voxgen Parquet file \(missing columns grid, x, y, z and 24 more\)"
    with pytest.raises(BadInput, match=not_ours):
        read_parquet(tmp_path / "other.parquet")


# ---- meshes -----------------------------------------------------------------------------------


def test_mesh_has_one_cube_per_voxel(rng):
    event = labelled_event(rng)
    mesh = event_to_mesh(event)
    assert mesh.vertices.shape == (8 * len(event), 3)
    assert mesh.faces.shape == (12 * len(event), 3)
    np.testing.assert_allclose(mesh.bounds, [event.coords.min(0) * VOXEL_MM, (event.coords.max(0) + 1) * VOXEL_MM])


def test_mesh_cube_faces_point_outward():
    one = Event(coords=[[4, 5, 6]], energy=[1.0])
    assert event_to_mesh(one).volume == pytest.approx(VOXEL_MM**3)
    assert event_to_mesh(one, voxel_size=1.0).volume == pytest.approx(1.0)


def test_mesh_merges_duplicate_voxels():
    event = Event(coords=[[1, 1, 1], [1, 1, 1], [2, 1, 1]], energy=[1.0, 2.0, 0.5])
    assert len(event_to_mesh(event).vertices) == 8 * 2


def test_mesh_colours_by_semantic_and_energy():
    clusters = Clusters.build(semantic=[0, 1, 1], pid=[1, 2, 2])
    event = Event(
        coords=[[0, 0, 0], [2, 0, 0], [4, 0, 0]], energy=[0.1, 1.0, 10.0], cluster=[0, 1, 2], clusters=clusters
    )
    colours = event_to_mesh(event, color_by="semantic").visual.vertex_colors[::8]
    assert not np.array_equal(colours[0], colours[1])  # shower vs track
    np.testing.assert_array_equal(colours[1], colours[2])  # both tracks
    energy = event_to_mesh(event, color_by="energy").visual.vertex_colors[::8]
    assert len({tuple(c) for c in energy}) == 3


def test_mesh_keeps_the_most_energetic_voxels():
    event = Event(coords=np.stack([np.arange(10)] * 3, axis=1), energy=np.arange(1, 11), grid=16)
    with pytest.warns(UserWarning, match="10 voxels, meshing the 4 most energetic"):
        mesh = event_to_mesh(event, max_voxels=4)
    assert len(mesh.vertices) == 32
    assert mesh.bounds[0, 0] == 6 * VOXEL_MM


@pytest.mark.parametrize("suffix", [".ply", ".glb"])
def test_mesh_files_reload_with_the_same_bounds(tmp_path, rng, suffix):
    event = labelled_event(rng)
    expected = event_to_mesh(event, color_by="semantic")
    path = write_mesh(event, tmp_path / f"event{suffix}", color_by="semantic")
    loaded = trimesh.load(path, force="mesh", process=False)
    np.testing.assert_allclose(loaded.bounds, expected.bounds)
    assert len(loaded.vertices) == len(expected.vertices)
    np.testing.assert_array_equal(loaded.visual.vertex_colors, expected.visual.vertex_colors)


def test_mesh_bad_inputs_name_the_path(tmp_path, rng):
    with pytest.raises(BadInput, match=r"e\.ply: empty event"):
        write_mesh(Event(coords=np.zeros((0, 3)), energy=[]), tmp_path / "e.ply")
    with pytest.raises(BadInput, match=r"e\.obj: unknown mesh file type '\.obj'"):
        write_mesh(unlabelled_event(rng), tmp_path / "e.obj")
    with pytest.raises(BadInput, match=r"u\.glb: no semantic labels"):
        write_mesh(unlabelled_event(rng), tmp_path / "u.glb", color_by="semantic")
    with pytest.raises(ConfigError, match="color_by: unknown colouring 'pid'"):
        event_to_mesh(unlabelled_event(rng), color_by="pid")
    assert list(tmp_path.iterdir()) == []


def test_mesh_failed_write_leaves_no_file(tmp_path, rng, monkeypatch):
    def half_write(self, data):
        open(self, "wb").write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(mesh_module.Path, "write_bytes", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_mesh(unlabelled_event(rng), tmp_path / "e.glb")
    assert list(tmp_path.iterdir()) == []


# ---- export dispatch --------------------------------------------------------------------------


def test_export_unknown_format():
    message = r"^format: unknown export format 'x' \(choose parquet, h5, ply, glb\)$"
    with pytest.raises(ConfigError, match=message):
        export_events([], "out", "x")


def test_export_meshes_one_per_event(tmp_path, rng):
    events = [unlabelled_event(rng) for _ in range(3)]
    paths = export_events(events, tmp_path / "meshes", "ply", events_per_shard=5, color_by="energy")
    assert [p.name for p in paths] == ["event_00000.ply", "event_00001.ply", "event_00002.ply"]
    (single,) = export_events(events[:1], tmp_path / "one.glb", "glb")
    assert single == tmp_path / "one.glb" and single.is_file()


def test_export_mesh_file_needs_exactly_one_event(tmp_path, rng):
    events = [unlabelled_event(rng) for _ in range(2)]
    with pytest.raises(ConfigError, match="holds one event but there are more"):
        export_events(events, tmp_path / "two.ply", "ply")
    with pytest.raises(ConfigError, match=r"'one\.ply' is not a \.glb file"):
        export_events(events[:1], tmp_path / "one.ply", "glb")
    with pytest.raises(BadInput, match="no events to export"):
        export_events([], tmp_path / "none", "glb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_export_event_files_round_trip(tmp_path, mixed, fmt):
    labelled = [e for e in mixed if e.cluster is not None]
    (path,) = export_events(labelled, tmp_path / f"events.{fmt}", fmt, color_by="semantic")
    read = read_parquet(path) if fmt == "parquet" else list(PilarnetReader(path))
    assert_same_events(read, labelled, exact_particles=fmt == "parquet")
