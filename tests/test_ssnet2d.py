"""SSNet2D: network shapes, augmentations, crop sets and the training recipe end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from voxgen.cli import main
from voxgen.data.batches import augment
from voxgen.data.crops import CropSet, make_crop_set
from voxgen.models.ssnet2d import SSNet2D, predict_crops
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event, simulate_splits


def test_shapes_and_features():
    model = SSNet2D(base=8, depth=4)
    x = torch.rand(3, 1, 64, 64)
    assert model(x).shape == (3, 3, 64, 64)
    probs, feats = model.predict(x)
    torch.testing.assert_close(probs.sum(1), torch.ones(3, 64, 64))
    assert feats.shape == (3, 2 * 8 * 16)


def test_augment_keeps_labels_aligned_and_scales_charge():
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(4, 1, 64, 64)
    images[:, 0, 10, 5:40] = 1.0
    labels = (images[:, 0] > 0).long() * 2
    for _ in range(8):
        x, y = augment(images, labels, gen)
        assert torch.equal(x[:, 0] > 0, y > 0)
        totals = x.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
        assert torch.all((totals >= 0.9 - 1e-6) & (totals <= 1.1 + 1e-6))


def test_crop_set_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    events = [simulate_event(SimConfig(), rng) for _ in range(4)]
    crops = make_crop_set(events, crops_per_event=3, seed=1, progress=False)
    assert crops.images.shape[1:] == (64, 64) and len(crops) <= 12
    assert np.all((crops.images > 0).sum(axis=(1, 2)) >= 10)
    loaded = CropSet.load(crops.save(tmp_path / "c.npz"))
    assert np.array_equal(loaded.images, crops.images) and np.array_equal(loaded.labels, crops.labels)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    simulate_splits(SimConfig(species=["mu-", "e-"]), root, {"train": 24, "test": 8}, seed=0, progress=False)
    return root


def test_train_recipe_lowers_loss_and_scores(tiny_data, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "conf=ssnet2d",
            f"out={out}",
            f"data.root={tiny_data}",
            "model.base=8",
            "trainer.epochs=3",
            "trainer.log_every=5",
            "trainer.progress=false",
            "trainer.device=cpu",
            "trainer.lr=0.005",
            "batch_size=16",
        ]
    )
    assert code == 0
    with (out / "metrics.csv").open() as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < 0.7 * losses[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["charged_pixel_accuracy"] <= 1.0 and metrics["test_crops"] > 0
    assert np.array(metrics["confusion_charged_true_x_pred"]).sum() > 0
    assert (out / "test_predictions.png").stat().st_size > 5000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "train" and "shower_recall" in manifest["figures"]


def test_predict_crops_matches_model(tiny_data):
    model = SSNet2D(base=8, depth=2)
    images = np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)
    probs, feats = predict_crops(model, images, batch_size=2)
    ref, _ = model.predict(torch.from_numpy(images))
    np.testing.assert_allclose(probs, ref.numpy(), atol=1e-5)
    assert feats.shape == (5, 2 * 8 * 4)
