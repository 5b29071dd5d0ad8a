"""Open any event file voxgen reads: PILArNet-M ``.h5`` (file or folder) or Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from voxgen.errors import BadInput, ConfigError
from voxgen.events import Event

INPUT_FORMATS = {"h5": (".h5", ".hdf5"), "parquet": (".parquet",)}  # reader -> file suffixes
KNOWN_SUFFIXES = {suffix for suffixes in INPUT_FORMATS.values() for suffix in suffixes}


def open_events(
    path: str | os.PathLike, fmt: str | None = None, *, fmt_key: str = "format", **reader_options
) -> Sequence[Event]:
    """Random-access events from ``path``: a ``.h5``/``.parquet`` file or a folder of them.

    ``fmt`` ("h5" or "parquet") picks the reader, and in a folder holding both kinds the
    files read; None guesses from the suffixes. ``fmt_key`` is the config key that sets
    ``fmt``, named in errors. ``reader_options`` go to ``PilarnetReader`` (min_points,
    energy_threshold, drop_lowe).
    """
    path = Path(path)
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise ConfigError(f"{fmt_key}: unknown input format '{fmt}' (choose h5, parquet or null to guess)")
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if fmt is None:
        fmt = _guess_format(path, fmt_key)
    elif path.is_file() and path.suffix in KNOWN_SUFFIXES and path.suffix not in INPUT_FORMATS[fmt]:
        raise ConfigError(f"{fmt_key}: {path} is not a {fmt} file")
    if fmt == "parquet":
        from voxgen.io.parquet import read_parquet

        return read_parquet(path)
    from voxgen.io.pilarnet import PilarnetReader

    return PilarnetReader(path, **reader_options)


def _guess_format(path: Path, fmt_key: str) -> str:
    """The reader ("h5" or "parquet") for the suffix of a file, or of the files of a folder."""
    suffixes = {p.suffix for p in path.iterdir()} if path.is_dir() else {path.suffix}
    kinds = {name for name, known in INPUT_FORMATS.items() if suffixes & set(known)}
    if len(kinds) == 2:
        raise BadInput(f"{path}: holds both .h5 and .parquet files; pass {fmt_key}=h5 or {fmt_key}=parquet")
    if kinds:
        return kinds.pop()
    if path.is_dir():
        raise BadInput(f"{path}: expected a folder of .h5 or of .parquet files, found neither")
    return "h5"  # a file without a known suffix: HDF5 is checked by its signature


def event_at(events: Sequence[Event], index: int, where: str | os.PathLike) -> Event:
    """``events[index]`` with a one-line error naming the file when out of range."""
    if not 0 <= index < len(events):
        raise BadInput(f"{where}: event {index} out of range (it has {len(events)} events)")
    return events[index]


def event_indices(value: Any, n_events: int, where: str | os.PathLike, key: str = "events") -> list[int]:
    """The event indices a config value asks for: null = all, an index, or a list of indices.

    Raises ``ConfigError`` naming ``key`` for anything else (or an empty list) and
    ``BadInput`` naming ``where`` for an index outside 0..n_events-1.
    """
    if value is None:
        return list(range(n_events))
    items = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
    items = items if isinstance(items, list) else [items]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ConfigError(f"{key}: expected an event index or a non-empty list of them like [0,3,7], got {value!r}")
    for i in items:
        if not 0 <= i < n_events:
            raise BadInput(f"{where}: event {i} out of range (it has {n_events} events)")
    return items
