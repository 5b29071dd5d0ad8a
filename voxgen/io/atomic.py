"""Write-then-rename, so a failed command never leaves a half-written output.

Temporary files and folders are created with the modes ``open`` and ``mkdir`` give
(0666 / 0777 less the process umask), so a renamed output has the mode any new file would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from voxgen.errors import VoxgenError


def _temp_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<random hex>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _new_temp_file(path: Path) -> Path:
    """Create an empty file beside ``path`` (mode 0666 less the umask); returns its path."""
    tmp = _temp_sibling(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield ``<stage>/<name>`` in a fresh hidden folder beside ``path``; on success move what was
    written there (a file or a whole folder) onto ``path``, replacing the previous output.

    On failure ``path`` is left as it was, and a ``VoxgenError`` naming the staged path is
    re-raised naming ``path``. Replacing a folder takes two renames (the old one aside, the new
    one in), undone if the second fails; the old one is then deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = _temp_sibling(path)
    stage.mkdir(mode=0o777)
    new = stage / path.name
    try:
        yield new
        if new.exists() or new.is_symlink():
            _move_into_place(new, path, stage / f"{path.name}.previous")
    except VoxgenError as err:
        raise type(err)(str(err).replace(str(new), str(path))) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _move_into_place(new: Path, path: Path, previous: Path) -> None:
    """Rename ``new`` onto ``path``; an existing folder (or a file a folder replaces) goes to ``previous``."""
    if path.exists() and (path.is_dir() or new.is_dir()):
        os.rename(path, previous)
        try:
            os.rename(new, path)
        except BaseException:
            os.rename(previous, path)
            raise
    else:
        os.replace(new, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through ``atomic_path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
