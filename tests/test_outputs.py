"""Outputs other people can read and trust: file modes, whole replacement, usable paths, one-line errors."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from voxgen.cli import main
from voxgen.errors import BadInput
from voxgen.io import parquet as parquet_module
from voxgen.io.atomic import atomic_output, atomic_path, write_text_atomic
from voxgen.io.parquet import read_parquet, write_parquet
from voxgen.io.pilarnet import PilarnetReader, write_events


@pytest.fixture
def h5_in(tmp_path, events):
    """The six shared fixture events as one v2 file."""
    return write_events(tmp_path / "input" / "six.h5", events)


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    saved = os.umask(0o022)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(saved)


def modes(root) -> dict[str, int]:
    """Permission bits of every file and folder under ``root`` (relative name -> mode)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, h5_in, umask, mask, file_mode, folder_mode):
    umask(mask)
    out = tmp_path / "out"
    out.mkdir()
    exports = [
        ("shards", "format=parquet", "events_per_shard=4"),
        ("file.parquet", "format=parquet"),
        ("file_h5.h5", "format=h5"),
        ("h5_shards", "format=h5", "events_per_shard=4", "layout=v1"),
        ("meshes", "format=glb", "events=[0,1]"),
    ]
    for name, *options in exports:
        assert main(["export", f"in={h5_in}", f"out={out / name}", *options]) == 0
    assert main(["inspect", f"in={h5_in}", f"out={out / 'summary'}", "progress=false"]) == 0
    write_text_atomic(out / "cache" / "done.json", "{}\n")
    with atomic_path(out / "weights.bin") as tmp:
        tmp.write_bytes(b"\0")
    found = modes(out)
    wrong = {
        name: oct(mode) for name, mode in found.items() if mode != (folder_mode if (out / name).is_dir() else file_mode)
    }
    assert wrong == {}
    assert len(found) == 28  # 8 data files in 3 folders, 10 export records, inspect's folder + 3, cache 2, weights


def test_event_display_gets_the_mode_the_umask_gives(tmp_path, h5_in, umask):
    umask(0o027)
    png = tmp_path / "display.png"
    assert main(["show", f"in={h5_in}", f"out={png}"]) == 0
    written = {name: oct(mode) for name, mode in modes(tmp_path).items() if name.startswith("display")}
    assert written == {"display.config.yaml": "0o640", "display.manifest.json": "0o640", "display.png": "0o640"}


# ---- whole replacement ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, suffix", [("parquet", "parquet"), ("h5", "h5"), ("glb", "glb")])
def test_re_export_replaces_the_previous_folder(tmp_path, h5_in, fmt, suffix):
    out = tmp_path / "out"
    assert main(["export", f"in={h5_in}", f"out={out}", f"format={fmt}", "events_per_shard=1"]) == 0
    assert len(list(out.iterdir())) == 6
    assert main(["export", f"in={h5_in}", f"out={out}", f"format={fmt}", "events=[4]"]) == 0
    name = f"event_00000.{suffix}" if fmt == "glb" else f"part-00000.{suffix}"
    assert sorted(p.name for p in out.iterdir()) == [name]
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["outputs"] == [str(out / name)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
    if fmt != "glb":
        reread = read_parquet(out) if fmt == "parquet" else list(PilarnetReader(out))
        assert len(reread) == 1 and reread[0].equals(PilarnetReader(h5_in)[4])


def test_parquet_folder_re_export_reads_as_the_new_events(tmp_path, h5_in):
    """Six events in six shards, then one: pandas and voxgen both see one event."""
    out = tmp_path / "events"
    assert main(["export", f"in={h5_in}", f"out={out}", "events_per_shard=1"]) == 0
    assert main(["export", f"in={h5_in}", f"out={out}", "events=[2]"]) == 0
    assert len(pd.read_parquet(out)) == 1 and len(read_parquet(out)) == 1


def test_file_and_folder_outputs_replace_each_other(tmp_path, h5_in):
    out = tmp_path / "events.parquet"
    assert main(["export", f"in={h5_in}", f"out={out}", "events=[0]"]) == 0
    assert out.is_file()
    assert main(["export", f"in={h5_in}", f"out={out}", "events_per_shard=2"]) == 0
    assert out.is_dir() and len(read_parquet(out)) == 6
    assert main(["export", f"in={h5_in}", f"out={out}", "events=[5]"]) == 0
    assert out.is_file() and len(read_parquet(out)) == 1


def test_folder_with_files_voxgen_did_not_write_is_refused(tmp_path, h5_in, capsys):
    out = tmp_path / "shared"
    assert main(["export", f"in={h5_in}", f"out={out}", "events_per_shard=3"]) == 0
    (out / "notes.txt").write_text("mine\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["export", f"in={h5_in}", f"out={out}", "events=[0]"]) == 2
    err = one_line_error(capsys)
    assert f"{out}: holds files voxgen export did not write (notes.txt)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_existing_file_of_another_kind_is_refused(tmp_path, h5_in, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    assert main(["export", f"in={h5_in}", f"out={notes}"]) == 2
    assert f"{notes}: exists and is not a .parquet file" in one_line_error(capsys)
    assert notes.read_text() == "mine\n"


def test_failed_export_leaves_the_previous_output(tmp_path, h5_in, monkeypatch, capsys):
    out = tmp_path / "events"
    assert main(["export", f"in={h5_in}", f"out={out}", "events_per_shard=2"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write, calls = parquet_module.pq.write_table, []

    def fail_on_second_shard(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(parquet_module.pq, "write_table", fail_on_second_shard)
    assert main(["export", f"in={h5_in}", f"out={out}", "events_per_shard=1"]) == 1
    assert "No space left on device" in one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events",
        "events.config.yaml",
        "events.manifest.json",
        "input",
    ]


def test_staged_errors_name_the_final_path(tmp_path, events):
    bad = events[1]
    bad.energy[0] = np.nan
    out = tmp_path / "events"
    with pytest.raises(BadInput, match=rf"^{out}/part-00000\.parquet event 1: non-finite"):
        with atomic_output(out) as staged:
            write_parquet(events, staged)
    assert list(tmp_path.iterdir()) == []


# ---- one-line errors --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "[a]", "[1.5]", "[]", "[true]", "[[1]]", "{a: 1}"])
def test_bad_event_selection_is_one_line(tmp_path, h5_in, capsys, value):
    out = tmp_path / "out.parquet"
    assert main(["export", f"in={h5_in}", f"out={out}", f"events={value}"]) == 2
    assert "events: expected an event index or a non-empty list of them" in one_line_error(capsys)
    assert not out.exists()


def test_single_event_index_is_accepted(tmp_path, h5_in):
    out = tmp_path / "three.parquet"
    assert main(["export", f"in={h5_in}", f"out={out}", "events=3"]) == 0
    (read,) = read_parquet(out)
    assert read.equals(PilarnetReader(h5_in)[3])


@pytest.mark.parametrize("value", ["6", "[0,6]", "-1"])
def test_event_index_out_of_range_is_one_line(tmp_path, h5_in, capsys, value):
    assert main(["export", f"in={h5_in}", f"out={tmp_path / 'o.parquet'}", f"events={value}"]) == 2
    err = one_line_error(capsys)
    assert f"{h5_in}: event " in err and "out of range (it has 6 events)" in err


@pytest.mark.parametrize("command", ["inspect", "export", "show"])
def test_truncated_hdf5_names_the_file(tmp_path, h5_in, capsys, command):
    truncated = tmp_path / "truncated.h5"
    data = h5_in.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    outs = {"inspect": [], "export": [f"out={tmp_path / 'x.parquet'}"], "show": [f"out={tmp_path / 'x.png'}"]}
    assert main([command, f"in={truncated}", *outs[command]]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"voxgen {command}: error: {truncated}: unreadable HDF5 file (")


@pytest.mark.parametrize(
    "command, out", [("export", "blocker/x.parquet"), ("show", "blocker/x.png"), ("inspect", "blocker/x")]
)
def test_output_under_a_file_is_refused_before_any_work(tmp_path, capsys, command, out):
    """The input does not even exist: the output is checked first, in one line naming it."""
    (tmp_path / "blocker").write_text("")
    args = [command, f"in={tmp_path / 'missing.h5'}", f"out={tmp_path / out}"]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert f"{tmp_path / out}: cannot be written, {tmp_path / 'blocker'} is a file, not a folder" in err


def test_show_into_a_folder_is_refused(tmp_path, h5_in, capsys):
    assert main(["show", f"in={h5_in}", f"out={tmp_path}"]) == 2
    assert f"{tmp_path}: is a folder, not a file" in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_refused(tmp_path, h5_in, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["export", f"in={h5_in}", f"out={locked / 'x.parquet'}"]) == 2
    assert f"{locked} is not writable" in one_line_error(capsys)


# ---- inspect output and input format ----------------------------------------------------------


def test_inspect_only_prints_unless_given_out(tmp_path, h5_in, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", f"in={h5_in}", "progress=false"]) == 0
    assert "events: 6" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]
    assert main(["inspect", f"in={h5_in}", "out=summary", "progress=false"]) == 0
    assert sorted(p.name for p in (tmp_path / "summary").iterdir()) == ["config.yaml", "manifest.json", "summary.json"]


@pytest.fixture
def mixed_folder(tmp_path, events):
    """A samples/ folder holding both kinds: two events as .h5, three as .parquet."""
    folder = tmp_path / "samples"
    write_events(folder / "events.h5", events[:2])
    write_parquet(events[:3], folder / "events.parquet")
    return folder


def test_folder_with_both_kinds_says_to_pass_format(mixed_folder, capsys):
    assert main(["inspect", f"in={mixed_folder}", "progress=false"]) == 2
    err = one_line_error(capsys)
    assert f"{mixed_folder}: holds both .h5 and .parquet files; pass format=h5 or format=parquet" in err


@pytest.mark.parametrize("fmt, n", [("h5", 2), ("parquet", 3)])
def test_format_picks_the_files_read(tmp_path, mixed_folder, capsys, fmt, n):
    assert main(["inspect", f"in={mixed_folder}", f"format={fmt}", "progress=false"]) == 0
    assert f"events: {n}" in capsys.readouterr().out
    out = tmp_path / "picked.parquet"
    assert main(["export", f"in={mixed_folder}", f"in_format={fmt}", f"out={out}"]) == 0
    assert len(read_parquet(out)) == n
    assert main(["export", f"in={mixed_folder}", f"out={out}"]) == 2
    assert "pass in_format=h5 or in_format=parquet" in one_line_error(capsys)


def test_format_that_contradicts_the_file_is_one_line(h5_in, capsys):
    assert main(["inspect", f"in={h5_in}", "format=parquet", "progress=false"]) == 2
    assert f"format: {h5_in} is not a parquet file" in one_line_error(capsys)
    assert main(["inspect", f"in={h5_in}", "format=csv", "progress=false"]) == 2
    assert "format: unknown input format 'csv'" in one_line_error(capsys)
