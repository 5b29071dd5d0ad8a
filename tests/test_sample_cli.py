"""`voxgen sample` checks its request and its output folder before sampling, warns about
conditions outside the run's training set, shows progress bars with totals, and replaces a
previous sample's outputs instead of leaving them beside the new ones."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import voxgen.sample
from voxgen.cli import main
from voxgen.config import compose_config
from voxgen.events import Event, Particle
from voxgen.generative.solvers import odeint_counted
from voxgen.runs import model_spec, save_conditions

FAST = ["n=2", "sampler.method=euler", "sampler.steps=2", "trainer.device=cpu", "trainer.progress=false"]
MUON_MOMENTA = [35.0, 300.0, 800.0]  # MeV/c: the muons of the run's training set
ELECTRON_MOMENTA = [100.0, 400.0]


def save_run(folder, cfg, model) -> None:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.save({"model": model.state_dict()}, folder / "checkpoints" / "last.pt")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An untrained flowmatch3d run with the smallest network, trained, as far as its
    conditions.npz says, on muons of 35-800 MeV/c and electrons of 100-400 MeV/c."""
    root = tmp_path_factory.mktemp("sample_run")
    torch.manual_seed(0)
    cfg = compose_config("flowmatch3d", ["model.widths=[8,16]", "model.emb_dim=16"])
    save_run(root, cfg, model_spec("flowmatch3d").build(cfg.model))
    pid = [2] * len(MUON_MOMENTA) + [1] * len(ELECTRON_MOMENTA)
    save_conditions(root, np.array(pid), np.array(MUON_MOMENTA + ELECTRON_MOMENTA))
    return root


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("sampling started before the request was checked")

    monkeypatch.setattr(voxgen.sample, "generate_events", refuse)


@pytest.mark.parametrize(
    "override, message",
    [
        ("cond.momentum=abc", "cond.momentum: 'abc' is not a number (a momentum in MeV/c"),
        ("cond.momentum=nan", "cond.momentum: nan MeV/c is not positive and finite"),
        ("cond.momentum=-5", "cond.momentum: -5 MeV/c is not positive and finite"),
        ("seed=-1", "seed: -1; need a non-negative seed"),
    ],
)
def test_bad_requests_are_one_line_before_sampling(run, tmp_path, capsys, no_sampling, override, message):
    code = main(["sample", f"ckpt={run}", f"out={tmp_path / 's'}", *FAST, override])
    assert code == 2 and message in one_line(capsys)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("where", ["parent_is_a_file", "out_is_a_file"])
def test_unusable_out_is_refused_before_sampling(run, tmp_path, capsys, no_sampling, where):
    (tmp_path / "file").write_text("a user's file\n")
    out = tmp_path / "file" / "s" if where == "parent_is_a_file" else tmp_path / "file"
    code = main(["sample", f"ckpt={run}", f"out={out}", *FAST])
    assert code == 2 and str(out) in one_line(capsys)
    assert (tmp_path / "file").read_text() == "a user's file\n"


def test_a_folder_holding_another_commands_outputs_is_refused(run, tmp_path, capsys, no_sampling):
    out = tmp_path / "eval"
    out.mkdir()
    record = json.dumps({"command": "evaluate", "outputs": [str(out / "metrics.json")]})
    (out / "manifest.json").write_text(record)
    (out / "metrics.json").write_text("{}")
    code = main(["sample", f"ckpt={run}", f"out={out}", *FAST])
    assert code == 2 and f"{out} holds the outputs of voxgen evaluate" in one_line(capsys)
    assert (out / "manifest.json").read_text() == record and (out / "metrics.json").is_file()


def test_requests_outside_the_training_conditions_are_named(run):
    warnings = voxgen.sample.condition_warnings
    assert warnings(run, "muon", 500.0) == [] and warnings(run, None, None) == []
    assert warnings(run, "muon", 100000.0) == [
        "cond.momentum: 100000 MeV/c lies outside the 35-800 MeV/c the run saw for muon in training; "
        "samples are an extrapolation"
    ]
    (electron_line,) = warnings(run, "electron", 600.0)
    assert "outside the 100-400 MeV/c the run saw for electron" in electron_line
    (proton_line,) = warnings(run, "proton", None)
    assert proton_line == "cond.particle: the run never saw a proton in training (it saw electron, muon)"
    (any_line,) = warnings(run, None, 20.0)
    assert "outside the 35-800 MeV/c the run saw for any particle" in any_line


def test_a_request_outside_the_training_conditions_warns_and_is_recorded(run, tmp_path, capsys, monkeypatch):
    def one_event(*args, **kwargs):
        nan3 = (float("nan"),) * 3
        event = Event(np.array([[1, 2, 3]]), np.array([1.0]), particles=[Particle(2, 1e5, nan3, nan3)], grid=128)
        return voxgen.sample.GeneratedEvents([event], 0.1, 2)

    monkeypatch.setattr(voxgen.sample, "generate_events", one_event)
    out = tmp_path / "s"
    far = ["cond.particle=muon", "cond.momentum=100000", "n=1"]
    assert main(["sample", f"ckpt={run}", f"out={out}", *FAST, *far]) == 0
    line = (
        "cond.momentum: 100000 MeV/c lies outside the 35-800 MeV/c the run saw for muon in training; "
        "samples are an extrapolation"
    )
    assert capsys.readouterr().err.strip().splitlines() == [f"voxgen sample: warning: {line}"]
    assert json.loads((out / "manifest.json").read_text())["figures"]["warnings"] == [line]


def test_resampling_replaces_the_previous_outputs(run, tmp_path):
    out = tmp_path / "s"
    assert main(["sample", f"ckpt={run}", f"out={out}", "format=h5", *FAST]) == 0
    assert (out / "events.h5").is_file()
    (out / "notes.txt").write_text("the user's own file\n")
    assert main(["sample", f"ckpt={run}", f"out={out}", "format=parquet", *FAST]) == 0
    written = {p.name for p in out.iterdir()}
    assert written == {"events.parquet", "event_000.png", "config.yaml", "manifest.json", "notes.txt"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["outputs"]) == sorted(str(out / name) for name in ("events.parquet", "event_000.png"))
    assert manifest["figures"]["warnings"] == []


def test_only_listed_sample_outputs_are_removed(tmp_path):
    out = tmp_path / "s"
    (out / "events.parquet").mkdir(parents=True)
    for name in ("samples.npz", "samples.png", "events.parquet/part-00000.parquet", "notes.txt", "unlisted.png"):
        (out / name).write_text("x")
    (tmp_path / "outside.txt").write_text("x")
    listed = ["elsewhere/s/samples.npz", "elsewhere/s/samples.png", "s/events.parquet/part-00000.parquet"]
    listed += ["s/notes.txt", str(tmp_path / "outside.txt"), "../outside.txt"]
    (out / "manifest.json").write_text(json.dumps({"command": "sample", "outputs": listed}))
    stale = voxgen.sample.previous_outputs(out)
    assert [p.relative_to(out).as_posix() for p in stale] == [
        "manifest.json",
        "samples.npz",
        "samples.png",
        "events.parquet/part-00000.parquet",
    ]
    voxgen.sample.remove_outputs(out, stale)
    assert {p.name for p in out.iterdir()} == {"notes.txt", "unlisted.png"}
    (out / "config.yaml").write_text("a user's config, beside no manifest\n")
    assert voxgen.sample.previous_outputs(out) == []
    assert (tmp_path / "outside.txt").is_file()


def bar_lines(stderr: str) -> list[str]:
    """The progress-bar renders in ``stderr``: tqdm lines carry an ``[elapsed...`` field."""
    return [line for line in re.split(r"[\r\n]", stderr) if re.search(r"\[\d\d:\d\d", line)]


def test_sampling_bars_have_totals(run, tmp_path, capsys):
    args = ["sample", f"ckpt={run}", f"out={tmp_path / 's'}", *FAST, "trainer.progress=true"]
    assert main(args) == 0
    bars = bar_lines(capsys.readouterr().err)
    assert any(line.startswith("flow euler") for line in bars) and any(
        line.startswith("sample events") for line in bars
    )
    for line in bars:
        assert re.search(r" \d+/\d+ \[", line), line  # n/N


@pytest.mark.parametrize("method, total_pattern", [("rk4", r" (\d+)/5 \["), ("dopri5", r" t (\d\.\d\d)/1 \[")])
def test_solver_bar_runs_over_steps_or_integration_time(capsys, method, total_pattern):
    def slow_field(y, t):
        time.sleep(0.02)  # let tqdm redraw between evaluations
        return -y

    _, nfe = odeint_counted(slow_field, torch.ones(2, 3), 1.0, 1e-3, method, 5, 1e-4, 1e-4, progress=True)
    lines = bar_lines(capsys.readouterr().err)
    assert all(re.search(total_pattern, line) for line in lines), lines
    shown = [float(re.search(total_pattern, line).group(1)) for line in lines]
    assert nfe >= 5 and len(shown) >= 2 and shown == sorted(shown) and shown[-1] <= (5 if method == "rk4" else 1)


def test_h5_samples_take_the_layout_and_keep_their_grid(run, tmp_path, capsys):
    import h5py

    from voxgen.io.pilarnet import PilarnetReader

    out = tmp_path / "s"
    assert main(["sample", f"ckpt={run}", f"out={out}", "format=h5", "layout=v1", *FAST]) == 0
    with h5py.File(out / "events.h5", "r") as f:
        assert "cluster_extra" not in f
        assert all(f["cluster"][i].size % 5 == 0 for i in range(len(f["cluster"])))
    assert {e.grid for e in PilarnetReader(out / "events.h5")} == {compose_config("flowmatch3d", []).model.grid}
    assert main(["sample", f"ckpt={run}", f"out={tmp_path / 'x'}", "format=h5", "layout=v9", *FAST]) == 2
    assert "layout: unknown PILArNet-M layout 'v9'" in one_line(capsys)
