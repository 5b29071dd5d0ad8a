"""Checks that an output path is usable, made before any work so a bad one costs nothing."""

from __future__ import annotations

import os
from pathlib import Path

from voxgen.errors import BadInput, ConfigError


def check_output_path(path: str | os.PathLike | None, kind: str | None = "file", key: str = "out") -> Path:
    """Raise ``BadInput`` naming ``path`` unless a ``kind`` ("file", "folder", None for either)
    can be written there (``ConfigError`` naming ``key`` when ``path`` is None).

    The nearest existing parent must be a writable folder (no file on the way) and an
    existing ``path`` must already be a ``kind``. Returns ``path`` as a ``Path``.
    """
    if path is None:
        raise ConfigError(f"{key}: no output path given (null)")
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise BadInput(f"{path}: is a folder, not a file")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise BadInput(f"{path}: is a file, not a folder")
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise BadInput(f"{path}: cannot be written, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{path}: cannot be written, {parent} is not writable")
    return path
