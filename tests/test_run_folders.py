"""One run per folder: a rerun resumes the same run or is refused before anything is written;
zero training steps is an error, not a success."""

from __future__ import annotations

import csv

import pytest

from voxgen.cli import main
from voxgen.runs import load_model
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits

TINY = [
    "conf=ssnet2d",
    "model.base=8",
    "trainer.epochs=1",
    "trainer.progress=false",
    "trainer.device=cpu",
    "batch_size=8",
    "data.crops_per_event=2",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 0), ("b", 1)):
        simulate_splits(
            SimConfig(species=["mu-", "e-"]), root / name, {"train": 12, "test": 4}, seed=seed, progress=False
        )
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *TINY, f"out={out}", f"data.root={data / 'a'}"]) == 0
    return out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "change, named",
    [("model.base=16", "model.base=8 (now 16)"), ("data.root=B", "data.root="), ("trainer.lr=0.5", "trainer.lr=")],
)
def test_a_rerun_with_other_settings_is_refused_and_leaves_the_run_intact(data, trained, capsys, change, named):
    record = (trained / "config.yaml").read_bytes()
    checkpoint = (trained / "checkpoints" / "last.pt").read_bytes()
    change = change.replace("=B", f"={data / 'b'}")
    assert main(["train", *TINY, f"out={trained}", f"data.root={data / 'a'}", change]) != 0
    line = _one_line_error(capsys)
    assert named in line and "choose a new out=" in line
    assert (trained / "config.yaml").read_bytes() == record
    assert (trained / "checkpoints" / "last.pt").read_bytes() == checkpoint
    model, cfg = load_model(trained, "ssnet2d", "cpu")  # the run still loads, as trained
    assert cfg.model.base == 8


def test_the_same_run_resumes_says_so_and_logs_each_step_once(data, trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "config.yaml").write_text((trained / "config.yaml").read_text().replace(str(trained), str(run)))
    capsys.readouterr()
    assert main(["train", *TINY, f"out={run}", f"data.root={data / 'a'}", "trainer.epochs=2"]) == 0
    assert "resuming" in capsys.readouterr().out
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    assert (
        steps == sorted(set(steps))
        and steps[-1] > [int(r["step"]) for r in csv.DictReader((trained / "metrics.csv").open())][-1]
    )
    assert (
        main(["train", *TINY, f"out={run}", f"data.root={data / 'a'}", "trainer.epochs=2", "trainer.resume=false"]) != 0
    )
    assert "trainer.resume=false" in _one_line_error(capsys)


def test_a_folder_of_other_files_is_not_taken_over(data, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["train", *TINY, f"out={tmp_path}", f"data.root={data / 'a'}"]) != 0
    assert "not a voxgen run" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    "override, named",
    [
        ("batch_size=100000", "batch_size: 100000 is larger than"),
        ("batch_size=0", "batch_size: 0"),
        ("batch_size=-3", "batch_size: -3"),
        ("trainer.max_steps_per_epoch=-1", "trainer.max_steps_per_epoch: -1"),
    ],
)
def test_zero_training_steps_is_a_one_line_error_and_leaves_no_run(data, tmp_path, capsys, override, named):
    out = tmp_path / "run"
    assert main(["train", *TINY, f"out={out}", f"data.root={data / 'a'}", override]) != 0
    assert named in _one_line_error(capsys)
    assert not out.exists()
