"""One entry point for writing events in any export format voxgen knows.

An export replaces its output as a whole: the new file or folder is written in a hidden
sibling folder and moved onto ``out`` only when complete, so ``out`` holds one export's files
(those its manifest lists) and a failure leaves the previous output as it was. An existing
folder is replaced only when every file in it is one an export writes (``OWNED_NAME``).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from voxgen.errors import BadInput, ConfigError
from voxgen.events import Event
from voxgen.io.atomic import atomic_output
from voxgen.io.mesh import MESH_SUFFIXES, write_mesh
from voxgen.io.outputs import check_output_path
from voxgen.io.parquet import write_parquet
from voxgen.io.pilarnet import LAYOUT_DATASETS, write_events

FORMATS = ("parquet", "h5", "ply", "glb")
FILE_SUFFIXES = {"parquet": (".parquet",), "h5": (".h5", ".hdf5"), "ply": (".ply",), "glb": (".glb",)}
_SHARD = r"(part-\d{5,}\.(parquet|h5)|event_\d{5,}\.(ply|glb))"
OWNED_NAME = re.compile(rf"{_SHARD}|\.{_SHARD}\.\w+\.tmp")  # shards, meshes, their temporary files


def export_events(
    events: Iterable[Event],
    out: str | os.PathLike,
    fmt: str,
    *,
    events_per_shard: int = 10000,
    color_by: str = "energy",
    max_voxels: int = 200_000,
    layout: str = "v2",
) -> list[Path]:
    """Write ``events`` to ``out`` as ``fmt``, replacing a previous export there; returns the files.

    - ``parquet``: ``write_parquet`` (``events_per_shard``)
    - ``h5``: PILArNet-M in ``layout`` ("v1" or "v2", ``voxgen.io.pilarnet``): one file for
      ``out`` ending in ``.h5`` with at most ``events_per_shard`` events, else a folder of
      ``part-NNNNN.h5`` shards of ``events_per_shard`` events
    - ``ply``/``glb``: one mesh per event (``color_by``, ``max_voxels``): ``out`` is a folder
      of ``event_00000.<fmt>``, ... or, for exactly one event, a ``.<fmt>`` file

    Options that do not apply to ``fmt`` are ignored. ``out`` and the options are checked
    before any work (``check_export``).
    """
    out = Path(out)
    check_export(out, fmt, events_per_shard=events_per_shard, layout=layout)
    with atomic_output(out) as staged:
        if fmt == "parquet":
            written = write_parquet(events, staged, events_per_shard=events_per_shard)
        elif fmt == "h5":
            written = _write_h5(events, staged, events_per_shard, layout)
        else:
            written = _write_meshes(events, staged, fmt, color_by=color_by, max_voxels=max_voxels)
        return [out / path.relative_to(staged) for path in written]


def check_export(out: Path, fmt: str, *, events_per_shard: int = 10000, layout: str = "v2") -> None:
    """Raise a one-line error unless the options are valid and ``out`` can take an export as
    ``fmt``: a writable place and, if it exists, a ``.<fmt>`` file or a folder of export files
    only (never a user's files)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown export format '{fmt}' (choose {', '.join(FORMATS)})")
    if events_per_shard < 1:
        raise ConfigError(f"events_per_shard: must be at least 1, got {events_per_shard}")
    if layout not in LAYOUT_DATASETS:
        raise ConfigError(f"layout: unknown PILArNet-M layout '{layout}' (choose {', '.join(LAYOUT_DATASETS)})")
    if out.suffix in MESH_SUFFIXES and fmt in ("ply", "glb") and out.suffix != f".{fmt}":
        raise ConfigError(f"out: '{out.name}' is not a .{fmt} file (format={fmt})")
    check_output_path(out, kind=None)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not (p.is_file() and OWNED_NAME.fullmatch(p.name)))
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise BadInput(
                f"{out}: holds files voxgen export did not write ({', '.join(foreign[:3])}{more}); "
                "an export replaces its whole folder, so give a new or empty one"
            )
    elif out.exists() and out.suffix not in FILE_SUFFIXES[fmt]:
        raise BadInput(f"{out}: exists and is not a .{fmt} file; refusing to replace it")


def _batches(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    while batch := list(itertools.islice(events, size)):
        yield batch


def _write_h5(events: Iterable[Event], out: Path, events_per_shard: int, layout: str) -> list[Path]:
    shards = _batches(iter(events), events_per_shard)
    head = list(itertools.islice(shards, 2))
    if out.suffix in FILE_SUFFIXES["h5"] and len(head) <= 1:
        return [write_events(out, head[0] if head else [], layout)]
    return [
        write_events(out / f"part-{k:05d}.h5", batch, layout) for k, batch in enumerate(itertools.chain(head, shards))
    ]


def _write_meshes(events: Iterable[Event], out: Path, fmt: str, **mesh_options) -> list[Path]:
    stream = iter(events)
    head = list(itertools.islice(stream, 2))
    if not head:
        raise BadInput(f"{out}: no events to export")
    if out.suffix in MESH_SUFFIXES:
        if len(head) > 1:
            raise ConfigError(f"out: '{out.name}' holds one event but there are more; give a folder")
        return [write_mesh(head[0], out, **mesh_options)]
    return [
        write_mesh(event, out / f"event_{i:05d}.{fmt}", **mesh_options)
        for i, event in enumerate(itertools.chain(head, stream))
    ]
