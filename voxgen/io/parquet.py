"""Events as Parquet: one row per event, voxels and tables as list columns.

Columns (units as in ``voxgen.events``: voxel indices, MeV, MeV/c, voxel-unit vertices):

- scalars: ``event`` (int64 index), ``n_voxels``, ``total_energy`` (MeV, float64), ``grid``,
  ``primary_pid``, ``primary_momentum`` (of the first particle; null when there is none)
- per voxel (lists of length ``n_voxels``): ``x``, ``y``, ``z`` (int32), ``energy`` (float32),
  ``electrons``, ``time`` (us), ``dx`` (cm) (float32, null when absent), ``cluster`` (int32 row
  of the cluster table), and the derived labels ``semantic``, ``pid`` (int16), ``instance``
  (int32) (null when unlabelled)
- per cluster (lists of length K, null without a table): ``cluster_fragment``,
  ``cluster_group``, ``cluster_interaction`` (int32), ``cluster_semantic``, ``cluster_pid``
  (int16), ``cluster_momentum``, ``cluster_vertex_x/y/z``, ``cluster_lead`` (float32)
- per particle (lists, empty when none): ``particle_pid``, ``particle_group`` (int32),
  ``particle_momentum``, ``particle_vertex_x/y/z``, ``particle_direction_x/y/z`` (float64)

``read_parquet`` rebuilds the events from these columns (the derived labels are not read).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voxgen.errors import BadInput, ConfigError
from voxgen.events import Clusters, Event, Particle
from voxgen.io.atomic import atomic_path

ROW_GROUP_BYTES = 64 << 20  # target uncompressed size of one row group

VOXEL_COLUMNS = {
    "x": pa.int32(),
    "y": pa.int32(),
    "z": pa.int32(),
    "energy": pa.float32(),
    "electrons": pa.float32(),
    "time": pa.float32(),
    "dx": pa.float32(),
    "cluster": pa.int32(),
    "semantic": pa.int16(),
    "pid": pa.int16(),
    "instance": pa.int32(),
}
CLUSTER_COLUMNS = {
    "fragment": pa.int32(),
    "group": pa.int32(),
    "interaction": pa.int32(),
    "semantic": pa.int16(),
    "pid": pa.int16(),
    "momentum": pa.float32(),
    "vertex_x": pa.float32(),
    "vertex_y": pa.float32(),
    "vertex_z": pa.float32(),
    "lead": pa.float32(),
}
PARTICLE_COLUMNS = {
    "pid": pa.int32(),
    "group": pa.int32(),
    "momentum": pa.float64(),
    "vertex_x": pa.float64(),
    "vertex_y": pa.float64(),
    "vertex_z": pa.float64(),
    "direction_x": pa.float64(),
    "direction_y": pa.float64(),
    "direction_z": pa.float64(),
}
SCHEMA = pa.schema(
    [
        ("event", pa.int64()),
        ("n_voxels", pa.int32()),
        ("total_energy", pa.float64()),
        ("grid", pa.int32()),
        ("primary_pid", pa.int32()),
        ("primary_momentum", pa.float64()),
    ]
    + [(name, pa.list_(t)) for name, t in VOXEL_COLUMNS.items()]
    + [(f"cluster_{name}", pa.list_(t)) for name, t in CLUSTER_COLUMNS.items()]
    + [(f"particle_{name}", pa.list_(t)) for name, t in PARTICLE_COLUMNS.items()]
)
DERIVED_COLUMNS = (
    "event",
    "n_voxels",
    "total_energy",
    "primary_pid",
    "primary_momentum",
    "semantic",
    "pid",
    "instance",
)
READ_COLUMNS = [name for name in SCHEMA.names if name not in DERIVED_COLUMNS]


def write_parquet(
    events: Iterable[Event], out: str | os.PathLike, events_per_shard: int = 10000, start_index: int = 0
) -> list[Path]:
    """Write events as Parquet shards of ``events_per_shard`` rows; returns the paths written.

    ``out`` ending in ``.parquet`` with at most one shard's worth of events is written as that
    file; otherwise ``out`` is a folder of ``part-NNNNN.parquet`` shards, numbered from
    ``start_index // events_per_shard`` (so writers of aligned chunks can share a folder).
    ``event`` counts from ``start_index``. Events are streamed and validated; a bad one
    raises ``BadInput`` naming its index, and every shard is written atomically.
    """
    out = Path(out)
    if events_per_shard < 1:
        raise ConfigError(f"events_per_shard: must be at least 1, got {events_per_shard}")
    stream = iter(events)
    first = list(itertools.islice(stream, events_per_shard))
    peek = next(stream, None)
    if out.suffix == ".parquet" and peek is None and not out.is_dir():
        return [_write_shard(first, out, start_index)]
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder, cannot hold Parquet shards")
    rest = iter(()) if peek is None else itertools.chain([peek], stream)
    shards = itertools.chain([first], _batches(rest, events_per_shard))
    paths, index = [], start_index
    for k, batch in enumerate(shards, start=start_index // events_per_shard):
        paths.append(_write_shard(batch, out / f"part-{k:05d}.parquet", index))
        index += len(batch)
    return paths


def read_parquet(path: str | os.PathLike) -> list[Event]:
    """Events of a Parquet file, or of the ``*.parquet`` shards of a folder (in name order)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise BadInput(f"{path}: no .parquet files")
    return [event for file in files for event in _read_shard(file)]


def events_to_table(events: list[Event], start_index: int = 0) -> pa.Table:
    """The Parquet table (schema ``SCHEMA``, one row per event) of ``events``."""
    firsts = [e.particles[0] if e.particles else None for e in events]
    columns = {
        "event": np.arange(start_index, start_index + len(events), dtype=np.int64),
        "n_voxels": [len(e) for e in events],
        "total_energy": [e.total_energy for e in events],
        "grid": [e.grid for e in events],
        "primary_pid": [None if p is None else p.pid for p in firsts],
        "primary_momentum": [None if p is None else p.momentum for p in firsts],
    }
    for i, axis in enumerate("xyz"):
        columns[axis] = _list_array([e.coords[:, i] for e in events], VOXEL_COLUMNS[axis])
    for name in ("energy", "electrons", "time", "dx", "cluster", "semantic", "pid", "instance"):
        columns[name] = _list_array([getattr(e, name) for e in events], VOXEL_COLUMNS[name])
    for name, kind in CLUSTER_COLUMNS.items():
        columns[f"cluster_{name}"] = _list_array(
            [None if e.clusters is None else _cluster_field(e.clusters, name) for e in events], kind
        )
    rows = [np.array([_particle_row(p) for p in e.particles], np.float64).reshape(-1, 9) for e in events]
    for j, (name, kind) in enumerate(PARTICLE_COLUMNS.items()):
        columns[f"particle_{name}"] = _list_array([r[:, j] for r in rows], kind)
    return pa.table(columns, schema=SCHEMA)


def table_to_events(table: pa.Table, where: str) -> list[Event]:
    """Rebuild the events of a table written by ``events_to_table``."""
    missing = [name for name in READ_COLUMNS if name not in table.column_names]
    if missing:
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise BadInput(f"{where}: not a voxgen Parquet file (missing columns {', '.join(missing[:4])}{more})")
    lists = {
        name: _split_list(table[name], SCHEMA.field(name).type.value_type) for name in READ_COLUMNS if name != "grid"
    }
    grids = table["grid"].to_pylist()
    events = []
    for i, grid in enumerate(grids):
        clusters = None
        if lists["cluster_semantic"][i] is not None:
            clusters = Clusters(
                vertex=np.stack([lists[f"cluster_vertex_{a}"][i] for a in "xyz"], axis=1),
                **{name: lists[f"cluster_{name}"][i] for name in CLUSTER_COLUMNS if not name.startswith("vertex_")},
            )
        particle_rows = np.stack([lists[f"particle_{name}"][i] for name in PARTICLE_COLUMNS], axis=1)
        events.append(
            Event(
                coords=np.stack([lists[axis][i] for axis in "xyz"], axis=1),
                energy=lists["energy"][i],
                electrons=lists["electrons"][i],
                time=lists["time"][i],
                dx=lists["dx"][i],
                cluster=lists["cluster"][i],
                clusters=clusters,
                particles=[_particle_from_row(row) for row in particle_rows],
                grid=int(grid),
            )
        )
    return events


def _write_shard(events: list[Event], path: Path, start_index: int) -> Path:
    for i, event in enumerate(events):
        event.validate(where=f"{path} event {start_index + i}")
    table = events_to_table(events, start_index)
    row_bytes = table.nbytes / max(table.num_rows, 1)
    rows_per_group = max(1, int(ROW_GROUP_BYTES // max(row_bytes, 1)))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=rows_per_group, compression="zstd")
    return path


def _read_shard(path: Path) -> list[Event]:
    try:
        names = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in READ_COLUMNS if c in names])
    except (pa.ArrowInvalid, OSError) as err:
        raise BadInput(f"{path}: not a readable Parquet file ({err})") from None
    return table_to_events(table, str(path))


def _batches(items: Iterator[Event], size: int) -> Iterator[list[Event]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _list_array(arrays: list[np.ndarray | None], kind: pa.DataType) -> pa.ListArray:
    """One list per entry of ``arrays`` (None -> null), built from one flat values array."""
    dtype = kind.to_pandas_dtype()
    lengths = np.array([0 if a is None else len(a) for a in arrays], dtype=np.int64)
    present = [np.asarray(a, dtype=dtype) for a in arrays if a is not None]
    values = np.concatenate(present) if present else np.zeros(0, dtype)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), type=pa.int32())
    null = np.array([a is None for a in arrays], dtype=bool)
    return pa.ListArray.from_arrays(
        offsets, pa.array(values, type=kind), type=pa.list_(kind), mask=pa.array(null) if null.any() else None
    )


def _split_list(column: pa.ChunkedArray, kind: pa.DataType) -> list[np.ndarray | None]:
    """Per-row numpy arrays (writable copies) of a list column; None for null rows."""
    lists = column.combine_chunks()
    valid = lists.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    values = np.array(lists.flatten().to_numpy(zero_copy_only=False), dtype=kind.to_pandas_dtype())
    parts = np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return [part if ok else None for part, ok in zip(parts, valid)]


def _cluster_field(clusters: Clusters, name: str) -> np.ndarray:
    if name.startswith("vertex_"):
        return clusters.vertex[:, "xyz".index(name[-1])]
    return getattr(clusters, name)


def _particle_row(p: Particle) -> tuple[float, ...]:
    """pid, group, momentum, vertex xyz, direction xyz: the order of ``PARTICLE_COLUMNS``."""
    return (p.pid, p.group, p.momentum, *p.vertex, *p.direction)


def _particle_from_row(row: np.ndarray) -> Particle:
    r = [float(v) for v in row]
    return Particle(
        pid=int(r[0]), group=int(r[1]), momentum=r[2], vertex=(r[3], r[4], r[5]), direction=(r[6], r[7], r[8])
    )
