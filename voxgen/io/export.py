"""One entry point for writing events in any export format voxgen knows."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

from voxgen.errors import BadInput, ConfigError
from voxgen.events import Event
from voxgen.io.mesh import MESH_SUFFIXES, write_mesh
from voxgen.io.parquet import write_parquet
from voxgen.io.pilarnet import write_events

FORMATS = ("parquet", "h5", "ply", "glb")


def export_events(
    events: Iterable[Event],
    out: str | os.PathLike,
    fmt: str,
    *,
    events_per_shard: int = 10000,
    start_index: int = 0,
    color_by: str = "energy",
    max_voxels: int = 200_000,
) -> list[Path]:
    """Write ``events`` to ``out`` as ``fmt``; returns the files written.

    - ``parquet``: ``write_parquet`` (``events_per_shard``, ``start_index``)
    - ``h5``: one PILArNet-M v2 file (``voxgen.io.pilarnet.write_events``)
    - ``ply``/``glb``: one mesh per event (``color_by``, ``max_voxels``): ``out`` is a folder
      of ``event_00000.<fmt>``, ... or, for exactly one event, a ``.<fmt>`` file

    Options that do not apply to ``fmt`` are ignored.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown export format '{fmt}' (choose {', '.join(FORMATS)})")
    if fmt == "parquet":
        return write_parquet(events, out, events_per_shard=events_per_shard, start_index=start_index)
    if fmt == "h5":
        return [write_events(out, events)]
    return _write_meshes(events, out, fmt, color_by=color_by, max_voxels=max_voxels)


def _write_meshes(events: Iterable[Event], out: Path, fmt: str, **mesh_options) -> list[Path]:
    stream = iter(events)
    head = list(itertools.islice(stream, 2))
    if not head:
        raise BadInput(f"{out}: no events to export")
    if out.suffix in MESH_SUFFIXES:
        if out.suffix != f".{fmt}":
            raise ConfigError(f"out: '{out.name}' is not a .{fmt} file (format={fmt})")
        if len(head) > 1:
            raise ConfigError(f"out: '{out.name}' holds one event but there are more; give a folder")
        return [write_mesh(head[0], out, **mesh_options)]
    return [
        write_mesh(event, out / f"event_{i:05d}.{fmt}", **mesh_options)
        for i, event in enumerate(itertools.chain(head, stream))
    ]
