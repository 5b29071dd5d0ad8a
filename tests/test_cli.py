"""The command line end to end on the built-in simulator: simulate -> inspect -> show -> export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from voxgen.cli import COMMANDS, main
from voxgen.config import compose_config, conf_dir, recipes
from voxgen.io.parquet import read_parquet
from voxgen.io.pilarnet import PilarnetReader
from voxgen.sim.config import SimConfig


def test_configs_ship_with_the_package():
    assert {"simulate", "inspect", "export", "show"} <= set(recipes())
    assert (conf_dir() / "sim" / "default.yaml").is_file()


def test_sim_yaml_defaults_match_the_dataclass():
    cfg = compose_config("simulate", [])
    assert SimConfig(**yaml.safe_load((conf_dir() / "sim" / "default.yaml").read_text())) == SimConfig()
    assert set(cfg.sim) == set(SimConfig.__dataclass_fields__)


def test_help_lists_commands_and_keys(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["simulate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "splits = {train: 1000, val: 200, test: 200}" in out and "workers = 2" in out and "sim.mode = single" in out


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    code = main(
        [
            "simulate",
            f"out={out}",
            "splits.train=6",
            "splits.val=0",
            "splits.test=4",
            "workers=0",
            "progress=false",
            "seed=3",
        ]
    )
    assert code == 0
    return out


def test_simulate_writes_splits_config_and_manifest(sim_dir):
    assert len(PilarnetReader(sim_dir / "train")) == 6
    assert len(PilarnetReader(sim_dir / "test")) == 4
    assert not (sim_dir / "val").exists()
    manifest = json.loads((sim_dir / "manifest.json").read_text())
    assert manifest["command"] == "simulate" and manifest["seed"] == 3
    assert manifest["figures"]["train_events"] == 6 and len(manifest["outputs"]) == 2
    config = yaml.safe_load((sim_dir / "config.yaml").read_text())
    assert config["splits"]["train"] == 6 and "species" in config["sim"]


def test_simulate_is_reproducible(sim_dir, tmp_path):
    assert (
        main(
            [
                "simulate",
                f"out={tmp_path}",
                "splits.train=6",
                "splits.val=0",
                "splits.test=0",
                "workers=0",
                "progress=false",
                "seed=3",
            ]
        )
        == 0
    )
    again, first = PilarnetReader(tmp_path / "train"), PilarnetReader(sim_dir / "train")
    assert all(a.equals(b) for a, b in zip(again, first))


def test_inspect_summarises(sim_dir, tmp_path, capsys):
    assert main(["inspect", f"in={sim_dir / 'train'}", f"out={tmp_path}", "progress=false"]) == 0
    assert "events: 6" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    events = PilarnetReader(sim_dir / "train")
    assert summary["points_per_event"]["max"] == max(len(e) for e in events)
    assert sum(summary["voxels_by_semantic"].values()) == sum(len(e) for e in events)
    assert (tmp_path / "manifest.json").is_file()


def test_show_writes_png_and_record(sim_dir, tmp_path):
    png = tmp_path / "display.png"
    assert main(["show", f"in={sim_dir / 'test'}", "event=1", f"out={png}"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert (tmp_path / "display.manifest.json").is_file() and (tmp_path / "display.config.yaml").is_file()


def test_show_event_out_of_range_is_one_line(sim_dir, tmp_path, capsys):
    assert main(["show", f"in={sim_dir / 'test'}", "event=99", f"out={tmp_path / 'x.png'}"]) != 0
    assert "event 99 out of range (it has 4 events)" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_export_round_trips(sim_dir, tmp_path, fmt):
    out = tmp_path / f"test.{fmt}"
    assert main(["export", f"in={sim_dir / 'test'}", f"out={out}", f"format={fmt}"]) == 0
    exported = read_parquet(out) if fmt == "parquet" else list(PilarnetReader(out))
    original = PilarnetReader(sim_dir / "test")
    assert len(exported) == len(original)
    assert all(a.equals(b) for a, b in zip(exported, original))
    if fmt == "parquet":
        frame = pd.read_parquet(out)
        np.testing.assert_allclose(frame["total_energy"], [e.total_energy for e in original], rtol=1e-6)


def test_export_meshes(sim_dir, tmp_path):
    out = tmp_path / "meshes"
    assert (
        main(["export", f"in={sim_dir / 'test'}", f"out={out}", "format=glb", "events=[0,2]", "color_by=semantic"]) == 0
    )
    assert sorted(p.name for p in out.glob("*.glb")) == ["event_00000.glb", "event_00001.glb"]


def test_every_subpackage_is_packaged():
    """pyproject lists packages explicitly (conf/ is mapped to voxgen.conf): none forgotten."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "voxgen").rglob("__init__.py")}
    assert found | {"voxgen.conf"} == listed


@pytest.mark.parametrize("required, code", [("spconv", 0), ("spconv,nosuch", 4)])
def test_required_sparse_backends_stop_the_run_instead_of_skipping(required, code):
    """CI sets VOXGEN_REQUIRE_BACKENDS: a named backend that does not load is an error, not skips."""
    root, target = Path(__file__).resolve().parents[1], "tests/test_cli.py::test_configs_ship_with_the_package"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", target],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "VOXGEN_REQUIRE_BACKENDS": required},
    )
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "VOXGEN_REQUIRE_BACKENDS: sparse backend 'nosuch' unknown" in result.stderr
