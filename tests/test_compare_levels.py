"""tools/compare_cascade_levels.py: mean and range over seeds of level studies, and a one-line
error for a folder without one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOL = Path(__file__).parents[1] / "tools" / "compare_cascade_levels.py"


def study(folder: Path, pieces: float, straightness: float | None = None) -> str:
    row = {"32": {"sites": 8.0, "pieces": 1.0}, "1": {"sites": 200.0, "pieces": pieces}}
    if straightness is not None:
        row = {k: {**v, "straightness": straightness} for k, v in row.items()}
    sets = {"real": row, "teacher-forced": row, "free-running": row}
    folder.mkdir()
    (folder / "levels.json").write_text(json.dumps({"command": "x", "n": 20, "muon": sets}))
    return str(folder)


def test_variants_are_summarised_over_seeds(tmp_path):
    runs = ",".join(study(tmp_path / f"s{i}", p) for i, p in enumerate((10.0, 20.0, 12.5)))
    out = tmp_path / "options.md"
    done = subprocess.run([sys.executable, TOOL, "--out", out, f"base={runs}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [r for r in out.read_text().splitlines() if r.startswith("| muon | base | free-running")]
    assert rows == ["| muon | base | free-running | 8.0 [8-8] / 1.0 [1-1] | 200.0 [200-200] / 14.2 [10-20] |"]


def test_straightness_is_shown_when_every_study_has_it(tmp_path):
    runs = ",".join(study(tmp_path / f"s{i}", 10.0, q) for i, q in enumerate((0.7, 0.8, 0.9)))
    out = tmp_path / "options.md"
    done = subprocess.run([sys.executable, TOOL, "--out", out, f"base={runs}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [r for r in out.read_text().splitlines() if r.startswith("| muon | base | free-running")]
    assert rows == [
        "| muon | base | free-running | 8.0 [8-8] / 1.0 [1-1] / 0.80 | 200.0 [200-200] / 10.0 [10-10] / 0.80 |"
    ]
    older = study(tmp_path / "old", 10.0)  # a study without straightness: the column is left out
    done = subprocess.run([sys.executable, TOOL, "--out", out, f"base={runs},{older}"], capture_output=True, text=True)
    assert done.returncode == 0 and "/ 0.80" not in out.read_text()


def test_a_folder_without_a_study_fails_in_one_line(tmp_path):
    out = tmp_path / "options.md"
    done = subprocess.run(
        [sys.executable, TOOL, "--out", out, f"base={tmp_path / 'missing'}"], capture_output=True, text=True
    )
    assert done.returncode != 0 and not out.exists()
    assert done.stderr.strip().count("\n") == 0 and "missing/levels.json" in done.stderr


def test_a_corrupt_or_mismatched_study_fails_in_one_line(tmp_path):
    out = tmp_path / "options.md"
    good = study(tmp_path / "good", 10.0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "levels.json").write_text("{not json")
    other = tmp_path / "other"
    other.mkdir()
    (other / "levels.json").write_text(json.dumps({"n": 20, "muon": {"real": {}, "free-running": {}}}))
    for folder, message in ((tmp_path / "bad", "not a level study"), (other, "differ in species or strides")):
        done = subprocess.run(
            [sys.executable, TOOL, "--out", out, f"base={good},{folder}"], capture_output=True, text=True
        )
        assert done.returncode != 0 and not out.exists()
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr


def test_the_level_study_measures_pieces_and_straightness():
    import importlib.util

    spec = importlib.util.spec_from_file_location("study", TOOL.parent / "study_cascade_levels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = np.array([[i, 2 * i, 5] for i in range(20)])
    assert module.sites_and_pieces(line)[:2] == (20, 20)  # steps of 2 in y: no two sites touch
    assert module.sites_and_pieces(line)[2] > 0.999
    cube = np.argwhere(np.ones((5, 5, 5)))
    sites, pieces, straightness = module.sites_and_pieces(cube)
    assert (sites, pieces) == (125, 1) and abs(straightness - 1 / 3) < 1e-6
