"""The 2D generator recipes end to end: train (tiny), resume, sample with conditions, and the
conditioning checks of the study."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxgen.cli import main
from voxgen.data.crops import CropSet
from voxgen.evaluate.conditioning import binned_mean, class_dominance
from voxgen.evaluate.image_sets import ScoredImages
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits

TINY = [
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=4",
    "trainer.progress=false",
    "trainer.device=cpu",
    "batch_size=8",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained vqvae2d -> pixelcnn2d and vpsde2d runs on 40 simulated mu-/e- events."""
    root = tmp_path_factory.mktemp("gen2d")
    simulate_splits(SimConfig(species=["mu-", "e-"]), root / "data", {"train": 30, "test": 10}, seed=3, progress=False)
    data = [f"data.root={root / 'data'}", "data.crops_per_event=2"]
    assert main(["train", "conf=vqvae2d", f"out={root / 'vq'}", *data, *TINY, "model.n_codes=32"]) == 0
    assert (
        main(
            [
                "train",
                "conf=pixelcnn2d",
                f"out={root / 'pc'}",
                f"vqvae={root / 'vq'}",
                *TINY,
                "model.n_codes=32",
                "model.channels=16",
                "model.n_blocks=2",
                "preview.n=2",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "conf=vpsde2d",
                f"out={root / 'sde'}",
                *data,
                *TINY,
                "model.base=8",
                "model.mults=[1,2]",
                "preview.n=2",
                "preview.steps=4",
            ]
        )
        == 0
    )
    return root


def test_recipes_write_figures_checkpoints_and_previews(runs):
    vq = json.loads((runs / "vq" / "metrics.json").read_text())
    assert 0 <= vq["pixel_recall"] <= 1 and vq["codes_used"] >= 1 and vq["perplexity"] >= 1
    assert (runs / "vq" / "reconstructions.png").stat().st_size > 2000
    pc = json.loads((runs / "pc" / "metrics.json").read_text())
    assert pc["code_map"] == [16, 16] and 0 < pc["test_nats_per_code"] < np.log(32) + 1
    for run in ("vq", "pc", "sde"):
        assert sorted(p.name for p in (runs / run / "checkpoints").glob("epoch_*.pt")) == [
            "epoch_001.pt",
            "epoch_002.pt",
        ]
    for run in ("pc", "sde"):
        assert (runs / run / "preview.png").is_file() and (runs / run / "conditions.npz").is_file()
    # the previews draw samples beside held-out crops of the same requests, the species taking turns
    for run, data in (("pc", "vq"), ("sde", "sde")):
        held_out = CropSet.load(runs / data / "data" / "test_crops.npz")
        first = [held_out.momentum[held_out.pid == pid][0] for pid in (1, 2)]
        preview = json.loads((runs / run / "metrics.json").read_text())
        assert preview["preview_requests"] == [f"electron {first[0]:.0f} MeV/c", f"muon {first[1]:.0f} MeV/c"]
        assert preview["preview_seconds_per_image"] > 0


@pytest.mark.parametrize(
    "recipe, run, extra",
    [
        ("vpsde2d", "sde", ["sampler.steps=5", "sampler.guidance=1.0"]),
        ("vpsde2d", "sde", ["sampler=ode", "sampler.ode_method=rk4", "sampler.steps=3"]),
        ("pixelcnn2d", "pc", ["sampler.guidance=0.5"]),
    ],
)
def test_sample_writes_conditioned_crops(runs, tmp_path, recipe, run, extra):
    out = tmp_path / "s"
    assert (
        main(
            [
                "sample",
                f"conf={recipe}",
                f"ckpt={runs / run}",
                "n=3",
                "cond.particle=muon",
                "cond.momentum=400",
                f"out={out}",
                "trainer.progress=false",
                *extra,
            ]
        )
        == 0
    )
    crops = CropSet.load(out / "samples.npz")
    assert crops.images.shape == (3, 64, 64) and np.all(crops.pid == 2) and np.all(crops.momentum == 400)
    assert np.isfinite(crops.images).all() and crops.images.min() >= 0
    assert (crops.images[crops.images > 0] >= 0.05).all()  # the charge threshold of the transform
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["figures"]["network_evaluations_per_image"] > 0 and (out / "samples.png").is_file()


def test_unconditioned_requests_follow_the_training_mix_and_repeat(runs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert (
            main(
                [
                    "sample",
                    "conf=vpsde2d",
                    f"ckpt={runs / 'sde'}",
                    "n=6",
                    "sampler.steps=3",
                    f"out={out}",
                    "trainer.progress=false",
                ]
            )
            == 0
        )
    first, second = CropSet.load(a / "samples.npz"), CropSet.load(b / "samples.npz")
    assert np.array_equal(first.images, second.images)  # seeded
    assert set(first.pid) <= {1, 2} and np.all(first.momentum > 0)  # drawn from the mu-/e- training crops


def test_sample_into_a_run_folder_keeps_the_run_record(runs):
    config = (runs / "sde" / "config.yaml").read_text()
    assert (
        main(
            [
                "sample",
                "conf=vpsde2d",
                f"ckpt={runs / 'sde'}",
                "n=2",
                "sampler.steps=3",
                f"out={runs / 'sde'}",
                "trainer.progress=false",
            ]
        )
        == 0
    )
    assert (runs / "sde" / "sampled" / "samples.npz").is_file()
    assert (runs / "sde" / "config.yaml").read_text() == config


@pytest.mark.parametrize(
    "args, message",
    [
        (["conf=vpsde2d", "ckpt=VQ", "n=2"], "cannot sample"),
        (["conf=vpsde2d", "ckpt=SDE", "cond.particle=kaon"], "unknown particle 'kaon'"),
        (["conf=vpsde2d", "ckpt=SDE", "cond.momentum=-5"], "not positive"),
        (["conf=vpsde2d", "ckpt=SDE", "sampler.method=heun"], "unknown sampler 'heun'"),
        (["conf=vpsde2d", "n=2"], "missing required key 'ckpt'"),
        (["conf=vpsde2d", "ckpt=NOWHERE"], "not a training run"),
    ],
)
def test_sample_errors_are_one_line(runs, tmp_path, capsys, args, message):
    paths = {"VQ": runs / "vq", "SDE": runs / "sde", "NOWHERE": tmp_path / "none"}
    args = [a.replace(a.split("=")[1], str(paths[a.split("=")[1]])) if a.split("=")[1] in paths else a for a in args]
    assert main(["sample", *args, f"out={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x" / "samples.npz").exists()


def test_pixelcnn_needs_a_matching_codebook(runs, tmp_path, capsys):
    assert (
        main(["train", "conf=pixelcnn2d", f"out={tmp_path / 'pc'}", f"vqvae={runs / 'vq'}", *TINY, "model.n_codes=64"])
        == 2
    )
    assert "differs from the VQ-VAE's codebook (32)" in capsys.readouterr().err


def test_class_dominance_and_binned_means():
    labels = np.zeros((3, 4, 4), np.int8)
    labels[0, 0, :3] = 2  # track-dominated
    labels[1, :, 0] = 1  # shower-dominated
    labels[2, 0, 0], labels[2, 1, 1] = 1, 2  # tied
    scored = ScoredImages(np.ones((3, 4, 4)), np.zeros((3, 3, 4, 4)), np.zeros((3, 2)), labels)
    dom = class_dominance(scored)
    assert dom["track_dominated"] == pytest.approx(1 / 3) and dom["shower_dominated"] == pytest.approx(1 / 3)
    assert dom["track_share"] == pytest.approx((1 + 0 + 0.5) / 3)
    binned = binned_mean(
        np.array([1.0, 3.0, 10.0, np.nan]), np.array([150, 160, 400, 420]), np.array([100, 300, 500, 700])
    )
    assert binned["mean"][:2] == [2.0, 10.0] and binned["n"] == [2, 1, 0] and np.isnan(binned["mean"][2])
    assert binned["sem"][0] == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
