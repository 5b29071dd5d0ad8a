"""SSNet3D: crops, augmentation, training on tracks vs blobs, per-class scores."""

import numpy as np
import pytest
import torch

from voxgen.data.batches import event_batches, flip_events, sparse_batch
from voxgen.evaluate.event_sets import ssnet3d_scores
from voxgen.events import Clusters, Event, centred_crop
from voxgen.models.ssnet3d import SSNet3D, predict_events, ssnet3d_features
from voxgen.train.loop import TrainerConfig, train
from voxgen.train.ssnet3d import segmentation_scores_3d

GRID = 32


def toy_event(rng: np.random.Generator) -> Event:
    """A straight track (semantic 1) and a compact blob (semantic 0) in a GRID^3 box."""
    start, direction = rng.uniform(4, 28, 3), rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    track = np.unique(
        np.clip(np.round(start + np.outer(np.arange(-12, 12), direction)), 0, GRID - 1).astype(int), axis=0
    )
    blob = np.unique(
        np.clip(np.round(rng.uniform(6, 26, 3) + rng.normal(scale=1.5, size=(40, 3))), 0, GRID - 1).astype(int), axis=0
    )
    coords = np.concatenate([track, blob])
    energy = np.concatenate([np.full(len(track), 0.6), rng.exponential(1.5, len(blob))])
    cluster = np.concatenate([np.zeros(len(track)), np.ones(len(blob))]).astype(np.int32)
    return Event(coords, energy, cluster=cluster, clusters=Clusters.build(semantic=[1, 0], pid=[2, 1]), grid=GRID)


def test_centred_crop_keeps_the_energy_centre_inside_the_grid():
    coords = np.array([[700, 10, 400], [705, 12, 402], [710, 14, 404]])
    event = Event(coords, np.ones(3), grid=768)
    crop = centred_crop(event, 64)
    assert len(crop) == 3 and crop.grid == 64
    assert crop.coords.min() >= 0 and crop.coords.max() < 64
    assert crop.coords[:, 1].min() == 10  # the crop stops at the grid's low edge


def test_flips_keep_voxels_energy_and_labels():
    rng = np.random.default_rng(0)
    events = [toy_event(rng) for _ in range(4)]
    flipped = flip_events(events, GRID, torch.Generator().manual_seed(1))
    for a, b in zip(events, flipped):
        assert len(a) == len(b) and b.coords.min() >= 0 and b.coords.max() < GRID
        assert np.array_equal(a.energy, b.energy) and np.array_equal(a.semantic, b.semantic)
        # pairwise distances are a symmetry invariant
        assert np.allclose(np.linalg.norm(a.coords[0] - a.coords[-1]), np.linalg.norm(b.coords[0] - b.coords[-1]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    events = [toy_event(rng) for _ in range(48)]
    torch.manual_seed(0)
    model = SSNet3D("spconv", widths=(8, 16), grid=GRID)
    first = model.loss(sparse_batch(events[:8]))["loss"].item()
    cfg = TrainerConfig(epochs=6, lr=5e-3, log_every=1, progress=False, device="cpu", checkpoint_every=1000)
    train(model, event_batches(events[:40], 8, 0, GRID, augmented=True), cfg, tmp_path_factory.mktemp("ssnet3d"))
    return model.eval(), events, first


def test_ssnet3d_learns_tracks_from_blobs(trained):
    model, events, first = trained
    scores = segmentation_scores_3d(events[40:], predict_events(model, events[40:])[0])
    assert model.loss(sparse_batch(events[40:]))["loss"].item() < 0.5 * first
    assert scores["track_recall"] > 0.8 and scores["shower_recall"] > 0.8
    labels, features = predict_events(model, events[40:], batch_size=3)
    assert [len(x) for x in labels] == [len(e) for e in events[40:]] and features.shape == (8, 16)


def test_ssnet3d_fid_sees_a_missing_class(trained):
    """Real-vs-real sits near zero; a candidate set with the tracks removed is far off."""
    model, _, _ = trained
    rng = np.random.default_rng(5)
    real = [toy_event(rng) for _ in range(60)]
    blobs_only = [e.select(e.semantic == 0) for e in (toy_event(rng) for _ in range(30))]
    features = {
        "reference": ssnet3d_features(model, real[:30]),
        "heldout": ssnet3d_features(model, real[30:]),
        "candidate": ssnet3d_features(model, blobs_only),
    }
    floor = ssnet3d_scores(features, "reference", "heldout")
    candidate = ssnet3d_scores(features, "reference", "candidate")
    assert candidate["ssnet3d_fid"] > 5 * floor["ssnet3d_fid"]
    assert candidate["kl_track_fraction"] > 5 * floor["kl_track_fraction"] + 0.1
