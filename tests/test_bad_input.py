"""Bad input: a one-line error naming the file/event/key, non-zero exit, no partial output."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from voxgen.cli import main
from voxgen.io.pilarnet import VLEN_F32

GOOD_POINT = np.array([[10, 20, 30, 1.0, 0, 50, 0.3, 0], [11, 20, 30, 2.0, 0, 90, 0.3, 0]], np.float32)
GOOD_CLUSTER = np.array([[2, 0, 0, 0, 1, 2]], np.float32)


def write_raw(path, point, cluster=GOOD_CLUSTER, with_point=True):
    with h5py.File(path, "w") as f:
        if with_point:
            f.create_dataset("point", (2,), dtype=VLEN_F32)
            f["point"][0] = GOOD_POINT.ravel()
            f["point"][1] = np.asarray(point, np.float32).ravel()
        f.create_dataset("cluster", (2,), dtype=VLEN_F32)
        f["cluster"][0] = GOOD_CLUSTER.ravel()
        f["cluster"][1] = np.asarray(cluster, np.float32).ravel()
        f.create_dataset("cluster_extra", (2,), dtype=VLEN_F32)
        f["cluster_extra"][0] = np.zeros(5, np.float32)
        f["cluster_extra"][1] = np.zeros(5 * (np.asarray(cluster).size // 6), np.float32)
    return path


def bad_files(tmp_path):
    nan = GOOD_POINT.copy()
    nan[1, 3] = np.nan
    outside = GOOD_POINT.copy()
    outside[0, 2] = 800
    (tmp_path / "text.h5").write_text("not hdf5 at all\n")
    return {
        "missing": (tmp_path / "missing.h5", "no such file"),
        "not_hdf5": (tmp_path / "text.h5", "not an HDF5 file"),
        "no_point": (write_raw(tmp_path / "np.h5", GOOD_POINT, with_point=False), "no 'point' dataset"),
        "not_multiple_of_8": (
            write_raw(tmp_path / "m8.h5", GOOD_POINT.ravel()[:-3]),
            "event 1: 'point' has 13 values, not a multiple of 8",
        ),
        "cluster_sizes": (
            write_raw(tmp_path / "cs.h5", GOOD_POINT, cluster=[[3, 0, 0, 0, 1, 2]]),
            "event 1: cluster sizes sum to 3 but there are 2 points",
        ),
        "nan_energy": (write_raw(tmp_path / "nan.h5", nan), "event 1: non-finite (NaN/inf) energy"),
        "outside_grid": (write_raw(tmp_path / "out.h5", outside), "event 1: coordinates outside the grid"),
        "empty_event": (
            write_raw(tmp_path / "empty.h5", np.zeros((0, 8)), cluster=np.zeros((0, 6))),
            "event 1: empty event",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not_hdf5",
        "no_point",
        "not_multiple_of_8",
        "cluster_sizes",
        "nan_energy",
        "outside_grid",
        "empty_event",
    ],
)
@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_bad_file_one_line_error_no_output(tmp_path, capsys, case, fmt):
    path, message = bad_files(tmp_path)[case]
    out = tmp_path / "result" / f"events.{fmt}"
    code = main(["export", f"in={path}", f"out={out}", f"format={fmt}"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and message in err
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir())), "partial output left behind"


def test_good_event_of_the_same_file_still_reads(tmp_path):
    """Errors are per event: event 0 of a file whose event 1 is corrupt can be shown."""
    path, _ = bad_files(tmp_path)["nan_energy"]
    assert main(["export", f"in={path}", f"out={tmp_path / 'ok.h5'}", "format=h5", "events=[0]"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "in=x.h5", "colour=red"], "unknown config key 'colour'"),
        (["inspect", "in=x.h5", "+colour=red"], "unknown config key 'colour'"),
        (["simulate", "sim.nonsense=1"], "unknown config key 'sim.nonsense'"),
        (["inspect", "in=x.h5", "max_events=many"], "bad value for 'max_events'"),
        (["inspect"], "missing required key 'in'"),
        (["inspect", "conf=nope"], "unknown recipe 'nope'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_config_errors_name_the_key(capsys, args, message):
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "voxgen.cli", "inspect", f"in={tmp_path}/none.h5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("none.h5: no such file or folder")
