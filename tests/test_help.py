"""The command line's help, version and manners: described keys, closed pipes, progress bars."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import voxgen
from voxgen import config
from voxgen.cli import COMMANDS, main
from voxgen.config import compose_config, recipes

# subprocesses import the voxgen under test, wherever they run
ENV = {**os.environ, "PYTHONPATH": str(Path(voxgen.__file__).resolve().parents[1])}
ROW = re.compile(r"^  (?P<key>\S+) = (?P<value>.*?)(?: {3,}(?P<description>\S.*))?$")


def help_rows(capsys, *args: str) -> dict[str, tuple[str, str]]:
    """``voxgen <args> --help`` as {key: (default, description)} (description '' where missing)."""
    assert main([*args, "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {m["key"]: (m["value"], m["description"] or "") for m in map(ROW.match, lines) if m}
    assert rows, lines
    return rows


def command_recipes() -> list[tuple[str, str]]:
    """(command, recipe) for every recipe of every command: train takes every recipe that is not a
    command's own; sample those with a ``ckpt`` key; the other commands their own recipe."""
    trained = [r for r in recipes() if r not in COMMANDS]
    pairs = [(c, c) for c in COMMANDS if c in recipes()] + [("train", r) for r in trained]
    return pairs + [("sample", r) for r in trained if "ckpt" in compose_config(r, [])]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"voxgen {voxgen.__version__}"


def test_train_help_describes_its_keys_and_leaves_out_sampling(capsys):
    rows = help_rows(capsys, "train")
    assert rows["trainer.lr"] == ("0.001", "learning rate (peak, before the schedule)")
    assert rows["model.fine_events"][0] == "8"
    assert rows["model.fine_events"][1].startswith("events of a training step whose finest level is trained")
    assert rows["report.n"] == ("150", "events generated with held-out conditions and scored against held-out events")
    assert not {"ckpt", "n", "cond", "format"} & set(rows)
    assert len(rows) < 64


def test_sample_help_describes_sampling_and_leaves_out_training(capsys):
    rows = help_rows(capsys, "sample", "conf=vpsde2d")
    assert rows["ckpt"] == ("null", "run folder or checkpoint to sample from")
    assert rows["n"] == ("64", "images")
    assert rows["sampler.steps"] == ("1000", "time steps (network evaluations; x2 with guidance)")
    assert {"trainer.device", "trainer.progress", "seed", "out", "cond"} <= set(rows)
    assert not any(key.startswith(("trainer.lr", "model.", "data.", "transform.")) for key in rows)


def test_help_shows_overridden_values(capsys):
    rows = help_rows(capsys, "train", "conf=ssnet3d", "trainer.lr=0.5", "trainer=ssnet2d_paper")
    assert rows["trainer.lr"][0] == "0.5" and rows["trainer.schedule"][0] == "step"


@pytest.mark.parametrize("command, recipe", command_recipes())
def test_every_key_a_command_lists_has_a_description(capsys, command, recipe):
    """A key without its ``# comment`` in conf/ fails here."""
    rows = help_rows(capsys, command, f"conf={recipe}")
    assert not [key for key, (_, description) in rows.items() if not description]


def test_key_comments_read_nested_keys_flow_values_and_quotes():
    text = (
        "# header\n"
        "defaults:\n"
        "  - data: x\n"
        "a: 1            # first\n"
        "b:              # a block\n"
        "  c: 'x # y'    # quoted hash\n"
        "  d: {e: 1}\n"
        "  e-: [1, 2]   # list\n"
        "planes:\n"
        "  - {name: U}\n"
        "f: https://x.org/#frag\n"
    )
    assert config.key_comments(text) == {
        "defaults": "",
        "a": "first",
        "b": "a block",
        "b.c": "quoted hash",
        "b.d": "",
        "b.e-": "list",
        "planes": "",
        "f": "",
    }


def test_help_into_a_closed_pipe_exits_quietly(tmp_path):
    """``voxgen --help | head -1``: no 'Broken pipe' message, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before voxgen writes
    result = subprocess.run(
        [sys.executable, "-m", "voxgen.cli", "train", "--help"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
    )
    os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1


FAIL_IN_A_PROGRESS_LOOP = """
import sys
from tqdm import tqdm
import voxgen.tasks
from voxgen.cli import main
from voxgen.errors import BadInput

def inspect(cfg):  # a bar held in a variable, as the training loop holds its own
    bar = tqdm(total=5, desc="inspect", mininterval=0)
    for i in range(5):
        if i == 2:
            raise BadInput("data.h5 event 2: broken")
        bar.update()

voxgen.tasks.inspect = inspect
sys.exit(main(["inspect", "in=data.h5"]))
"""


def test_error_line_is_the_last_line_below_an_open_progress_bar(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FAIL_IN_A_PROGRESS_LOOP], capture_output=True, text=True, cwd=tmp_path, env=ENV
    )
    assert result.returncode == 2
    lines = result.stderr.replace("\r", "\n").strip().splitlines()
    assert lines[-1] == "voxgen inspect: error: data.h5 event 2: broken", result.stderr
    assert any("inspect:" in line for line in lines[:-1])  # the bar was drawn, above the error
