"""`voxgen evaluate` checks what it reads and where it writes before scoring: every event and
image of both sets, the sets' grids, its counts and its output folder; one line each."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import voxgen.evaluate.event_sets
from voxgen.cli import main
from voxgen.config import compose_config
from voxgen.data.crops import CropSet
from voxgen.errors import BadInput
from voxgen.events import Event, centred_crop
from voxgen.io.parquet import write_parquet
from voxgen.io.pilarnet import PilarnetReader
from voxgen.runs import model_spec
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits

FAST = ["n=2", "n_pairs_events=2", "progress=false"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """12 simulated 768-grid muon events in one shard, and their centred 128^3 crops as Parquet."""
    root = tmp_path_factory.mktemp("evaluate_inputs")
    simulate_splits(SimConfig(species=["mu-"]), root / "sim", {"test": 12}, seed=5, progress=False)
    (shard,) = sorted((root / "sim" / "test").glob("*.h5"))
    reader = PilarnetReader(shard)
    write_parquet([centred_crop(reader[i], 128) for i in range(len(reader))], root / "crops.parquet")
    return shard, root / "crops.parquet"


def corrupt_copy(shard, path, index):
    """A copy of ``shard`` whose event ``index`` has a NaN energy."""
    shutil.copy(shard, path)
    with h5py.File(path, "r+") as f:
        point = f["point"][index].reshape(-1, 8)
        point[0, 3] = np.nan
        f["point"][index] = point.ravel()
    return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("side", ["reference", "candidate"])
def test_a_corrupt_event_the_random_pick_misses_is_refused(events, tmp_path, capsys, side):
    shard, _ = events
    rng = np.random.default_rng(0)  # the seed-0 draws: 2n = 4 reference events, then n = 2 candidates
    reference_order, candidate_order = rng.permutation(12), rng.permutation(12)
    missed = int((reference_order if side == "reference" else candidate_order)[-1])
    bad = corrupt_copy(shard, tmp_path / "bad.h5", missed)
    files = {"reference": shard, "candidate": shard, side: bad}
    out = tmp_path / "eval"
    code = main(["evaluate", f"reference={files['reference']}", f"candidate={files['candidate']}", f"out={out}", *FAST])
    err = one_line(capsys)
    assert code == 2 and str(bad) in err and f"event {missed}" in err and "non-finite" in err
    assert not out.exists()


def test_sets_on_different_grids_are_refused_unless_cropped_alike(events, tmp_path, capsys):
    shard, crops = events
    base = ["evaluate", f"reference={shard}", f"candidate={crops}", *FAST]
    assert main([*base, f"out={tmp_path / 'mixed'}"]) == 2
    err = one_line(capsys)
    assert str(crops) in err and "128-voxel grid" in err and "768" in err and "crop=128" in err
    assert not (tmp_path / "mixed").exists()

    assert main([*base, f"out={tmp_path / 'cropped'}", "crop=128"]) == 0
    metrics = json.loads((tmp_path / "cropped" / "metrics.json").read_text())
    assert metrics["grid"] == 128 and metrics["crop"]["size"] == 128
    assert metrics["crop"]["empty_crops"] == {"reference": 0, "candidate": 0}
    assert "centred 128^3-voxel crops" in (tmp_path / "cropped" / "report.md").read_text()


def test_a_set_mixing_grids_names_the_odd_event():
    from voxgen.evaluate.event_sets import check_event_set

    def voxel(grid):
        return Event(np.array([[1, 2, 3]]), np.array([1.0]), grid=grid)

    with pytest.raises(BadInput, match=r"mixed event 2: on a 128-voxel grid, event 0 on a 768-voxel grid"):
        check_event_set([voxel(768), voxel(768), voxel(128)], "mixed", progress=False)
    with pytest.raises(BadInput, match=r"neg event 1: negative energy in 1 voxels"):
        check_event_set([voxel(768), Event(np.array([[1, 2, 3]]), np.array([-1.0]))], "neg", progress=False)


@pytest.mark.parametrize(
    "override, message",
    [
        ("n=1", "n: 1; need at least 2 (the floor compares two disjoint reference halves"),
        ("n=-5", "n: -5; need at least 2"),
        ("n_emd=0", "n_emd: 0; need at least 1"),
        ("collapse_n=-1", "collapse_n: -1; need at least 1"),
        ("n_pairs_events=0", "n_pairs_events: 0; need at least 1"),
        ("seed=-1", "seed: -1; need at least 0"),
        ("crop=0", "crop: 0; need null or a cube"),
    ],
)
def test_counts_out_of_range_are_one_line(events, tmp_path, capsys, override, message):
    shard, _ = events
    code = main(["evaluate", f"reference={shard}", f"candidate={shard}", f"out={tmp_path / 'e'}", *FAST, override])
    assert code == 2 and message in one_line(capsys)


@pytest.mark.parametrize("where", ["parent_is_a_file", "out_is_a_file"])
def test_unusable_out_is_refused_before_scoring(events, tmp_path, capsys, monkeypatch, where):
    shard, _ = events

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before checking the output folder")

    monkeypatch.setattr(voxgen.evaluate.event_sets, "evaluate_events", no_scoring)
    (tmp_path / "file").write_text("a user's file\n")
    out = tmp_path / "file" / "eval" if where == "parent_is_a_file" else tmp_path / "file"
    code = main(["evaluate", f"reference={shard}", f"candidate={shard}", f"out={out}", *FAST])
    assert code == 2 and str(out) in one_line(capsys)
    assert (tmp_path / "file").read_text() == "a user's file\n"


@pytest.fixture(scope="module")
def ssnet(tmp_path_factory):
    """An untrained SSNet2D run folder (config + weights): enough to reach the image checks."""
    run = tmp_path_factory.mktemp("ssnet")
    cfg = compose_config("ssnet2d", ["model.base=4", "model.depth=2"])
    torch.manual_seed(0)
    model = model_spec("ssnet2d").build(cfg.model)
    (run / "checkpoints").mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.save({"model": model.state_dict()}, run / "checkpoints" / "last.pt")
    return run


def crop_set(path, images):
    n = len(images)
    CropSet(images, np.zeros(images.shape, np.int64), np.zeros(n, int), np.zeros(n, int), np.zeros(n, np.float32)).save(
        path
    )
    return path


def good_images(n=12, size=64):
    images = np.zeros((n, size, size), np.float32)
    images[:, 30:34, 10:50] = 1.5
    return images


def nan_in_image_3():
    images = good_images()
    images[3, 5, 5] = np.nan
    return images


def negative_in_image_6():
    images = good_images()
    images[6, 0, :2] = -0.5
    return images


@pytest.mark.parametrize(
    "candidate, message",
    [
        (nan_in_image_3(), "image 3: 1 non-finite (NaN/inf) pixels"),
        (negative_in_image_6(), "image 6: 2 negative pixels"),
        (good_images(size=32), "images of shape (12, 32, 32); the SSNet scores (N, 64, 64) crops"),
        (good_images().astype(np.int64), "images of dtype int64; need float charge"),
        (good_images(n=4), "4 images; need at least 5"),
    ],
)
def test_bad_image_sets_are_one_line_naming_the_file(ssnet, tmp_path, capsys, candidate, message):
    reference = crop_set(tmp_path / "ref.npz", good_images())
    bad = crop_set(tmp_path / "cand.npz", candidate)
    out = tmp_path / "eval"
    code = main(
        ["evaluate", f"reference={reference}", f"candidate={bad}", f"ssnet={ssnet}", f"out={out}", "progress=false"]
    )
    err = one_line(capsys)
    assert code == 2 and str(bad) in err and message in err, err
    assert not out.exists()


def test_image_sets_need_n_of_at_least_the_c2st_folds(ssnet, tmp_path, capsys):
    images = crop_set(tmp_path / "images.npz", good_images())
    out = tmp_path / "eval"
    code = main(["evaluate", f"reference={images}", f"candidate={images}", f"ssnet={ssnet}", f"out={out}", "n=4"])
    err = one_line(capsys)
    assert code == 2 and "n: 4; need at least 5" in err and "C2ST's 5 folds" in err
