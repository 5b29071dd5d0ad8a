"""PILArNet-M v1 and v2 layouts: what other loaders read from voxgen's files, and voxgen's own reading."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from voxgen.cli import main
from voxgen.errors import BadInput, ConfigError
from voxgen.events import Clusters, Event, Particle
from voxgen.io.export import export_events
from voxgen.io.pilarnet import PilarnetReader, write_events

LOWE = 4


def polarmae_read(path) -> list[tuple[list[np.ndarray], np.ndarray, np.ndarray]]:
    """Each event as PoLAr-MAE's ``PILArNet`` dataset reads it: ``point`` as (-1, 8), ``cluster``
    as (-1, 5), the first cluster dropped as low-energy scatters, points split by cluster size,
    semantic type in the last column. Returns (points per cluster, sizes, semantic types)."""
    out = []
    with h5py.File(path, "r") as f:
        for i in range(len(f["point"])):
            point = f["point"][i].reshape(-1, 8)
            cluster = f["cluster"][i].reshape(-1, 5)
            sizes, semantic = cluster[:, 0].astype(np.int64), cluster[:, -1]
            point, sizes, semantic = point[sizes[0] :], sizes[1:], semantic[1:]
            out.append((np.split(point, np.cumsum(sizes)[:-1]), sizes, semantic))
    return out


def expected_clusters(event: Event) -> list[tuple[int, np.ndarray]]:
    """(semantic type, (M, 8)-style rows x, y, z, energy) of each cluster that is not low energy, in order."""
    if event.clusters is None:
        return [(-1, np.column_stack([event.coords, event.energy]))]
    return [
        (int(semantic), np.column_stack([event.coords, event.energy])[event.cluster == k])
        for k, semantic in enumerate(event.clusters.semantic)
        if semantic != LOWE
    ]


def event_with(semantic: list[int], sizes: list[int], rng: np.random.Generator) -> Event:
    """Clusters of the given semantic types and sizes, voxels interleaved (not in cluster order)."""
    k, n = len(semantic), sum(sizes)
    cluster = rng.permutation(np.repeat(np.arange(k), sizes))
    return Event(
        coords=rng.integers(0, 768, (n, 3)),
        energy=rng.uniform(0.01, 5, n),
        electrons=rng.uniform(0, 1e5, n),
        time=rng.uniform(0, 100, n),
        dx=rng.uniform(0.3, 0.6, n),
        cluster=cluster,
        clusters=Clusters.build(semantic=semantic, pid=[-1 if s == LOWE else 2 for s in semantic], group=np.arange(k)),
        particles=[Particle(pid=2, momentum=300.0, vertex=(1.0, 2.0, 3.0), direction=(0.0, 0.6, 0.8), group=0)],
    )


@pytest.fixture
def layout_events(events) -> list[Event]:
    """Low-energy clusters first, later, twice, or absent; an unlabelled event; the shared fixtures."""
    rng = np.random.default_rng(5)
    return [
        event_with([LOWE, 1, 0], [4, 6, 5], rng),
        event_with([1, LOWE, 0, LOWE, 3], [5, 3, 7, 2, 4], rng),
        event_with([0, 1], [6, 3], rng),
        Event(coords=[[1, 2, 3], [4, 5, 6]], energy=[1.0, 2.0]),
        *events,
    ]


def test_v1_file_reads_in_polarmae_loader(tmp_path, layout_events):
    path = write_events(tmp_path / "generic_v2_10_v1.h5", layout_events, layout="v1")
    with h5py.File(path, "r") as f:
        assert set(f) == {"point", "cluster", "particle"}
    read = polarmae_read(path)
    assert len(read) == len(layout_events)
    for (points, sizes, semantic), event in zip(read, layout_events):
        expected = expected_clusters(event)
        np.testing.assert_array_equal(semantic, [s for s, _ in expected])
        np.testing.assert_array_equal(sizes, [len(rows) for _, rows in expected])
        for got, (_, rows) in zip(points, expected):
            np.testing.assert_array_equal(got[:, :4], rows)


def test_v2_file_is_not_the_v1_layout(tmp_path):
    """A (K, 6) table of 3 clusters has 18 values: no (K, 5) reshape, the reason v1 exists."""
    event = event_with([LOWE, 1, 0], [4, 6, 5], np.random.default_rng(0))
    with h5py.File(write_events(tmp_path / "v2.h5", [event]), "r") as f:
        assert f["cluster"][0].size == 18
        with pytest.raises(ValueError):
            f["cluster"][0].reshape(-1, 5)


def test_voxgen_reads_v1_back(tmp_path, layout_events):
    """Same voxels with the same semantic labels; low-energy clusters merged into the first one;
    no empty placeholder cluster; truth particles kept; per-cluster PID not in v1."""
    reader = PilarnetReader(write_events(tmp_path / "v1.h5", layout_events, layout="v1"))
    assert reader.versions[reader.paths[0]] == 1
    for read, event in zip(reader, layout_events):
        semantic = np.full(len(event), -1) if event.semantic is None else event.semantic
        order_read = np.lexsort((read.energy, *read.coords.T))
        order_event = np.lexsort((event.energy, *event.coords.T))
        np.testing.assert_array_equal(read.coords[order_read], event.coords[order_event])
        np.testing.assert_array_equal(read.energy[order_read], event.energy[order_event])
        np.testing.assert_array_equal(read.semantic[order_read], semantic[order_event])
        n_lowe = 0 if event.clusters is None else int((event.clusters.semantic == LOWE).sum())
        n_clusters = 1 if event.clusters is None else len(event.clusters)
        assert len(read.clusters) == n_clusters - max(n_lowe - 1, 0)
        assert np.all(read.clusters.pid == -1)
        assert [p.as_row().tolist() for p in read.particles] == [p.as_row().tolist() for p in event.particles]


def test_v1_round_trip_of_a_simulator_like_event_is_exact_but_cluster_truth(tmp_path):
    """Low-energy cluster first and voxels in cluster order (as the simulator writes): v1 keeps
    every voxel column, the voxel clusters and ids; only PID, momentum, vertex and lead go."""
    event = event_with([LOWE, 1, 0], [4, 6, 5], np.random.default_rng(1))
    event = event.select(np.argsort(event.cluster, kind="stable"))
    read = PilarnetReader(write_events(tmp_path / "v1.h5", [event], layout="v1"))[0]
    for name in ("coords", "energy", "electrons", "time", "dx", "cluster"):
        np.testing.assert_array_equal(getattr(read, name), getattr(event, name), err_msg=name)
    for name in ("fragment", "group", "interaction", "semantic"):
        np.testing.assert_array_equal(getattr(read.clusters, name), getattr(event.clusters, name), err_msg=name)


def test_v2_stays_the_default_and_reads_back_identically(tmp_path, layout_events):
    path = write_events(tmp_path / "v2.h5", layout_events)
    with h5py.File(path, "r") as f:
        assert set(f) == {"point", "cluster", "cluster_extra", "particle"}
    labelled = [e for e in layout_events if e.clusters is not None]
    path = write_events(tmp_path / "labelled.h5", labelled, layout="v2")
    for read, event in zip(PilarnetReader(path), labelled):
        order = np.argsort(event.cluster, kind="stable")
        assert read.equals(event.select(order))


def test_unknown_layout_is_a_config_error(tmp_path, events):
    with pytest.raises(ConfigError, match="layout: unknown PILArNet-M layout 'v3'"):
        write_events(tmp_path / "x.h5", events, layout="v3")
    with pytest.raises(ConfigError, match="layout: unknown PILArNet-M layout 'v3'"):
        export_events(events, tmp_path / "x.h5", "h5", layout="v3")
    assert list(tmp_path.iterdir()) == []


def test_export_layout_v1_through_library_and_cli(tmp_path, layout_events, capsys):
    (path,) = export_events(layout_events, tmp_path / "lib.h5", "h5", layout="v1")
    assert [len(sizes) for _, sizes, _ in polarmae_read(path)] == [len(expected_clusters(e)) for e in layout_events]
    cli_out = tmp_path / "cli.h5"
    assert main(["export", f"in={path}", f"out={cli_out}", "format=h5", "layout=v1", "events=[1]"]) == 0
    (points, sizes, semantic), *rest = polarmae_read(cli_out)
    assert not rest
    np.testing.assert_array_equal(semantic, [1, 0, 3])
    np.testing.assert_array_equal(sizes, [5, 7, 4])
    assert main(["export", f"in={path}", f"out={tmp_path / 'bad.h5'}", "format=h5", "layout=v0"]) == 2
    assert "layout: unknown PILArNet-M layout 'v0'" in capsys.readouterr().err


def test_simulate_layout_v1_reads_in_polarmae_loader(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", f"out={out}", "splits.train=3", "splits.val=0", "splits.test=0", "workers=0", "progress=false"]
    assert main([*args, "layout=v1"]) == 0
    (shard,) = sorted((out / "train").glob("*.h5"))
    events = PilarnetReader(shard)
    for (points, sizes, semantic), event in zip(polarmae_read(shard), events, strict=True):
        assert sizes.sum() == (event.semantic != LOWE).sum() and len(points) == len(sizes)
        assert set(semantic.tolist()) <= {0, 1, 2, 3}
    assert main(["simulate", f"out={tmp_path / 'bad'}", "layout=v3"]) == 2
    assert "layout: unknown PILArNet-M layout 'v3'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_grid_travels_with_an_h5_file(tmp_path, events):
    small = [replace(e, coords=e.coords % 128, grid=128) for e in events]
    for layout in ("v1", "v2"):
        path = write_events(tmp_path / f"{layout}.h5", small, layout=layout)
        assert {e.grid for e in PilarnetReader(path)} == {128}
    assert {e.grid for e in PilarnetReader(write_events(tmp_path / "big.h5", events))} == {768}
    with pytest.raises(BadInput, match="different grids"):
        write_events(tmp_path / "mixed.h5", [small[0], events[0]])
