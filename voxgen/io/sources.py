"""Open any event file voxgen reads: PILArNet-M ``.h5`` (file or folder) or Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from voxgen.errors import BadInput
from voxgen.events import Event


def open_events(path: str | os.PathLike, **reader_options) -> Sequence[Event]:
    """Random-access events from ``path``: a ``.h5``/``.parquet`` file or a folder of them.

    ``reader_options`` go to ``PilarnetReader`` (min_points, energy_threshold, drop_lowe).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    kind = path.suffix
    if path.is_dir():
        kinds = {p.suffix for p in path.iterdir() if p.suffix in (".h5", ".parquet")}
        if len(kinds) != 1:
            raise BadInput(
                f"{path}: expected a folder of .h5 or of .parquet files, found {'both' if kinds else 'neither'}"
            )
        kind = kinds.pop()
    if kind == ".parquet":
        from voxgen.io.parquet import read_parquet

        return read_parquet(path)
    if kind in (".h5", ".hdf5") or path.is_file():
        from voxgen.io.pilarnet import PilarnetReader

        return PilarnetReader(path, **reader_options)
    raise BadInput(f"{path}: unknown event file type")


def event_at(events: Sequence[Event], index: int, where: str | os.PathLike) -> Event:
    """``events[index]`` with a one-line error naming the file when out of range."""
    if not 0 <= index < len(events):
        raise BadInput(f"{where}: event {index} out of range (it has {len(events)} events)")
    return events[index]
