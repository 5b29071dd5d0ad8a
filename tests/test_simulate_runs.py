"""``voxgen simulate`` as a run: checked settings, workers that die with it, SIGTERM, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

import voxgen
import voxgen.sim.generator
from voxgen.cli import main

REPO = Path(voxgen.__file__).resolve().parents[1]
SMALL = ["splits.train=5", "splits.val=0", "splits.test=0", "events_per_shard=2", "workers=0", "progress=false"]


def simulate(out: Path, *overrides: str) -> int:
    return main(["simulate", f"out={out}", *SMALL, *overrides])


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- settings are range-checked before anything is written -------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("events_per_shard=0", "events_per_shard"),
        ("splits.train=-5", "splits.train"),
        ("splits.train=null", "splits.train"),
        ("workers=-1", "workers"),
        ("seed=-1", "seed"),
        ("splits.foo=3", "splits.foo"),
        ("sim.efield_kv_cm=nan", "sim.efield_kv_cm"),
        ("sim.tracking_cut_mev=0", "sim.tracking_cut_mev"),
        ("sim.lowe_threshold_mev=-1", "sim.lowe_threshold_mev"),
        ("sim.box_alpha=1.5", "sim.box_alpha"),
        ("sim.grid=null", "sim.grid"),
        ("sim.min_voxels=0", "sim.min_voxels"),
        ("sim.momentum_mev.p=[105,1e9]", "sim.momentum_mev.p"),
        ("sim.momentum_mev=null", "sim.momentum_mev"),
    ],
)
def test_bad_counts_are_one_line_naming_the_key(tmp_path, capsys, override, key):
    out = tmp_path / "sim"
    assert simulate(out, override) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("voxgen simulate: error: ") and key in err[0], err
    assert not out.exists()


def test_all_splits_empty_is_nothing_to_do(tmp_path, capsys):
    assert simulate(tmp_path / "sim", "splits.train=0") == 2
    assert "splits: every split has 0 events, nothing to simulate" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()


def test_unreachable_min_voxels_is_one_line(tmp_path, capsys):
    """5.8 MeV protons stop within a voxel or two: 10 voxels are never reached."""
    assert simulate(tmp_path / "sim", "sim.species=[p]", "sim.momentum_mev.p=[105,106]") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sim.min_voxels: no event with 10 voxels in 100 draws" in err[0]


# ---- a killed run resumes; another simulation's folder is refused -------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert simulate(out, "seed=4") == 0
    return out


def test_killed_run_resumes_to_the_same_bytes(finished, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sim"
    write_events, calls = voxgen.sim.generator.write_events, []

    def killed_at_second_shard(path, events, **options):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return write_events(path, events, **options)

    monkeypatch.setattr(voxgen.sim.generator, "write_events", killed_at_second_shard)
    assert simulate(out, "seed=4") == 130
    monkeypatch.undo()
    # the killed run's folder says what it holds, and holds no manifest
    assert "seed: 4" in (out / "config.yaml").read_text() and not (out / "manifest.json").exists()
    assert sorted(p.name for p in (out / "train").iterdir()) == ["train_single_000.h5"]
    kept = (out / "train" / "train_single_000.h5").stat().st_mtime_ns
    (out / "train" / ".train_single_001.h5.k2j3h4g5.tmp").write_bytes(b"partial")  # SIGKILL mid-write
    capsys.readouterr()

    assert simulate(out, "seed=4") == 0
    assert "resuming: 1 of 3 shards of train already done" in capsys.readouterr().out
    assert (out / "train" / "train_single_000.h5").stat().st_mtime_ns == kept
    shards = {k: v for k, v in files_of(out).items() if k.endswith(".h5")}
    assert shards == {k: v for k, v in files_of(finished).items() if k.endswith(".h5")}
    assert not list(out.rglob(".*.tmp"))
    assert len(json.loads((out / "manifest.json").read_text())["outputs"]) == 3


def test_an_unreadable_shard_is_redone(finished, tmp_path, capsys):
    out = tmp_path / "sim"
    assert simulate(out, "seed=4") == 0
    (out / "train" / "train_single_001.h5").unlink()
    last = out / "train" / "train_single_002.h5"
    last.write_bytes(last.read_bytes()[:1000])  # cut short
    capsys.readouterr()
    assert simulate(out, "seed=4") == 0
    assert "resuming: 1 of 3 shards of train already done" in capsys.readouterr().out
    assert files_of(out / "train") == files_of(finished / "train")


@pytest.mark.parametrize(
    "override, difference",
    [
        ("seed=5", "seed=4 (now seed=5)"),
        ("events_per_shard=3", "events_per_shard=2 (now events_per_shard=3)"),
        ("splits.train=6", "splits.train=5 (now splits.train=6)"),
        ("sim.mode=multi", "sim.mode=single (now sim.mode=multi)"),
    ],
)
def test_other_settings_are_refused_and_the_folder_untouched(finished, capsys, override, difference):
    before = files_of(finished)
    assert simulate(finished, "seed=4", override) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"voxgen simulate: error: {finished} holds a simulation with {difference}: choose another out= or delete it"
    ]
    assert files_of(finished) == before


def test_free_keys_resume_without_simulating(finished, capsys):
    before = files_of(finished / "train")
    assert simulate(finished, "seed=4", "workers=1") == 0
    assert "resuming: 3 of 3 shards of train already done" in capsys.readouterr().out
    assert files_of(finished / "train") == before


def test_foreign_files_are_refused(tmp_path, capsys):
    out = tmp_path / "sim"
    (out / "train").mkdir(parents=True)
    (out / "train" / "train_single_000.h5").write_bytes(b"someone else's")
    assert simulate(out) == 2
    assert "holds train/train_single_000.h5 but no simulate config.yaml" in capsys.readouterr().err
    assert files_of(out) == {"train/train_single_000.h5": b"someone else's"}
    (out / "notes.txt").write_text("mine")
    (out / "train" / "train_single_000.h5").unlink()
    assert simulate(out) == 2
    assert "holds notes.txt" in capsys.readouterr().err
    (out / "config.yaml").write_text("in: somewhere\n")  # another command's record
    assert simulate(out) == 2
    assert f"{out / 'config.yaml'} is not the config of a voxgen simulation" in capsys.readouterr().err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "sim.h5"
    out.write_bytes(b"x")
    assert simulate(out) == 2
    assert f"out: {out} is a file, not a folder" in capsys.readouterr().err


# ---- signals: SIGTERM like Ctrl-C; workers never outlive the command ----------------------


def test_sigterm_while_writing_removes_the_partial_shard(tmp_path, monkeypatch, capsys):
    """SIGTERM arrives while a shard is being written: exit 143, one line, no temporary file."""

    class NoHandler(Exception):
        pass

    def no_handler(signum, frame):  # in place of the default action, which would end pytest
        raise NoHandler("voxgen left SIGTERM unhandled")

    open_h5 = h5py.File

    def sigterm_on_write(path, mode="r", **kwargs):
        f = open_h5(path, mode, **kwargs)
        if mode == "w":
            os.kill(os.getpid(), signal.SIGTERM)
        return f

    previous = signal.signal(signal.SIGTERM, no_handler)
    try:
        monkeypatch.setattr(h5py, "File", sigterm_on_write)
        code = simulate(tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143
    assert capsys.readouterr().err.strip().splitlines() == ["voxgen simulate: interrupted (SIGTERM)"]
    assert not list(tmp_path.rglob("*.h5")) and not list(tmp_path.rglob(".*.tmp"))


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _workers(pid: int) -> list[int]:
    """The pool workers among ``_children(pid)`` (not multiprocessing's resource tracker)."""
    found = []
    for child in _children(pid):
        try:
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_simulation(out: Path) -> subprocess.Popen:
    """``voxgen simulate`` with 2 workers, returned once they work and the first shard is out."""
    command = [sys.executable, "-m", "voxgen.cli", "simulate", f"out={out}", "splits.train=2000"]
    command += ["splits.val=0", "splits.test=0", "events_per_shard=4", "workers=2", "progress=false"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("train/*.h5")) or len(_workers(process.pid)) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no workers and first shard: {process.communicate()}")
        time.sleep(0.1)
    return process


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The ``pids`` still alive after ``seconds``; those are then killed, not left running."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    process = _start_simulation(tmp_path)
    workers = _children(process.pid)
    process.kill()
    process.wait()
    left = _wait_gone(workers, 5.0)
    assert not left, f"workers {left} outlived their killed parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_exits_143_with_one_line_and_no_temporary_files(tmp_path):
    process = _start_simulation(tmp_path)
    workers = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert not _wait_gone(workers, 5.0)
    assert process.returncode == 143
    assert err.strip().splitlines() == ["voxgen simulate: interrupted (SIGTERM)"]
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_is_one_line(tmp_path):
    process = _start_simulation(tmp_path)
    workers = _children(process.pid)
    os.kill(_workers(process.pid)[0], signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    assert not _wait_gone(workers, 5.0)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        f"voxgen simulate: error: {tmp_path / 'train'}: a simulation worker died (killed? out of memory?); "
        "rerun to resume"
    ]
