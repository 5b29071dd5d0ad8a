"""2D views, crops, the sparse collate over event sources, and the event display."""

from __future__ import annotations

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch

from voxgen.data.batches import sparse_batch
from voxgen.data.splits import open_split
from voxgen.detector import PlaneGeometry
from voxgen.errors import BadInput
from voxgen.events import Clusters, Event
from voxgen.io.pilarnet import write_events
from voxgen.sim import generator
from voxgen.views import (
    SSNET_CLASSES,
    project_2d,
    project_labels_2d,
    sample_crops,
    semantic_to_ssnet,
    wire_plane_images,
)
from voxgen.viz.display import crop_grid, show_event

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def line_event(n: int = 120, start=(100, 200, 300), grid: int = 768) -> Event:
    """A straight labelled track (semantic 1) of n voxels along x followed by a shower blob."""
    track = np.array(start) + np.stack([np.arange(n), np.arange(n) // 3, np.arange(n) // 2], axis=1)
    blob = np.array(start) + np.array([n, n // 3, n // 2]) + np.random.default_rng(0).integers(0, 6, (40, 3))
    coords = np.concatenate([track, blob])
    clusters = Clusters.build(semantic=[1, 0], pid=[2, 1])
    return Event(
        coords=coords,
        energy=np.full(len(coords), 0.5),
        cluster=np.repeat([0, 1], [n, 40]),
        clusters=clusters,
        grid=grid,
    )


@pytest.mark.parametrize("plane", ["xy", "yz", "zx"])
@pytest.mark.parametrize("pixel_voxels", [1, 3, 7])
def test_project_2d_conserves_energy(events, plane, pixel_voxels):
    for event in events:
        image = project_2d(event, plane, pixel_voxels)
        side = -(-768 // pixel_voxels)
        assert image.shape == (side, side) and image.dtype == np.float32
        assert image.sum(dtype=np.float64) == pytest.approx(event.total_energy, rel=1e-6)
    counts = project_2d(events[0], plane, pixel_voxels, values="count")
    assert counts.sum() == len(events[0])


def test_project_2d_orientation():
    event = Event(coords=[[1, 2, 3]], energy=[2.0])
    assert project_2d(event, "zx")[3, 1] == 2.0
    assert project_2d(event, "xy")[1, 2] == 2.0
    assert project_2d(event, "yz", pixel_voxels=2)[1, 1] == 2.0


def test_labels_follow_the_most_energetic_label_per_pixel():
    # pixel (z=5, x=5): track 1.0 vs two shower voxels 0.4 + 0.4 -> track
    # pixel (z=9, x=9): track 1.0 vs shower 0.7 + 0.5 -> shower; (z=1, x=1): zero energy -> background
    coords = [[5, 0, 5], [5, 1, 5], [5, 2, 5], [9, 0, 9], [9, 1, 9], [9, 2, 9], [1, 0, 1]]
    energy = [1.0, 0.4, 0.4, 1.0, 0.7, 0.5, 0.0]
    cluster = [0, 1, 1, 0, 1, 1, 0]
    event = Event(
        coords=coords, energy=energy, cluster=cluster, clusters=Clusters.build(semantic=[1, 0], pid=[2, 1]), grid=16
    )
    labels = project_labels_2d(event, "zx")
    assert labels[5, 5] == 1 and labels[9, 9] == 0
    assert labels[1, 1] == -1
    assert (labels >= 0).sum() == 2
    unlabelled = Event(coords=coords, energy=energy, grid=16)
    assert (project_labels_2d(unlabelled, "zx") == -1).all()


def test_semantic_to_ssnet():
    assert SSNET_CLASSES == ("background", "shower", "track")
    np.testing.assert_array_equal(semantic_to_ssnet(np.array([-1, 0, 1, 2, 3, 4])), [0, 1, 2, 1, 1, 1])


def test_crops_have_enough_pixels_and_aligned_labels():
    event = line_event()
    crops = sample_crops(event, "zx", size=64, n=8, rng=np.random.default_rng(0))
    assert len(crops) == 8
    for image, labels in crops:
        assert image.shape == (64, 64) and image.dtype == np.float32
        assert labels.shape == (64, 64) and labels.dtype == np.int64
        assert (image > 0).sum() >= 10
        np.testing.assert_array_equal(labels > 0, image > 0)
        assert set(np.unique(labels)) <= {0, 1, 2}
    all_labels = np.concatenate([lab.ravel() for _, lab in crops])
    assert {1, 2} <= set(all_labels)  # shower blob and track both appear
    again = sample_crops(event, "zx", size=64, n=8, rng=np.random.default_rng(0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(crops, again))


def test_crop_is_a_window_of_the_projection():
    event = line_event()
    full = np.pad(project_2d(event, "zx"), 32)
    [(image, _)] = sample_crops(event, "zx", size=64, n=1, rng=np.random.default_rng(3))
    # the crop is the 64x64 window [r - 32, r + 32) around one deposited pixel (r, c)
    centres = np.argwhere(full > 0)
    assert any(np.array_equal(full[r - 32 : r + 32, c - 32 : c + 32], image) for r, c in centres)


def test_crop_at_the_grid_edge_is_zero_padded():
    coords = np.stack([np.zeros(20, int), np.zeros(20, int), np.arange(20)], axis=1)
    event = Event(coords=coords, energy=np.ones(20))
    for image, labels in sample_crops(event, "zx", n=5, rng=np.random.default_rng(1)):
        assert (image > 0).sum() >= 10
        assert image.sum() <= 20.0
        assert (labels == 0).all()  # unlabelled voxels count as background


def test_crops_raise_bad_input_naming_the_event():
    event = Event(coords=[[10, 10, 10 + i] for i in range(5)], energy=np.ones(5))
    with pytest.raises(BadInput, match="train.h5 event 7: .* 10 non-zero pixels .* has 5"):
        sample_crops(event, where="train.h5 event 7")
    # 11 pixels, but never 10 inside one 64x64 window
    spread = Event(coords=[[100 * i % 700, 0, 70 * i] for i in range(11)], energy=np.ones(11))
    with pytest.raises(BadInput):
        sample_crops(spread)


def test_sparse_batch_stacks_events_with_a_batch_column(events):
    coords, energy, labels, n = sparse_batch(events[:4])
    sizes = [len(e) for e in events[:4]]
    assert n == 4 and coords.shape == (sum(sizes), 4) and coords.dtype == torch.int32
    assert energy.shape == (sum(sizes), 1) and energy.dtype == torch.float32
    assert labels.shape == (sum(sizes),) and labels.dtype == torch.int64
    np.testing.assert_array_equal(coords[:, 0].numpy(), np.repeat(np.arange(4), sizes))
    np.testing.assert_array_equal(coords[:, 1:].numpy(), np.concatenate([e.coords for e in events[:4]]))
    np.testing.assert_allclose(energy[:, 0].numpy(), np.concatenate([e.energy for e in events[:4]]))
    np.testing.assert_array_equal(labels.numpy(), np.concatenate([e.semantic for e in events[:4]]))
    unlabelled = Event(coords=[[1, 2, 3]], energy=[0.5])
    assert sparse_batch([unlabelled])[2].tolist() == [-1]


def test_open_split_reads_every_shard_of_a_split_folder(tmp_path, events):
    (tmp_path / "val").mkdir()
    write_events(tmp_path / "val" / "shard_000.h5", events[:4])
    write_events(tmp_path / "val" / "shard_001.h5", events[4:])
    source = open_split(tmp_path, "val")
    assert len(source) == len(events)
    coords, energy, _, n = sparse_batch([source[i] for i in range(len(source))])
    assert n == len(events) and coords.shape[0] == sum(len(e) for e in events)
    assert energy.sum().item() == pytest.approx(sum(e.total_energy for e in events), rel=1e-5)
    with pytest.raises(BadInput, match="no .h5 files for split 'train'"):
        open_split(tmp_path, "train")


def test_views_of_simulator_output_from_a_split_folder(tmp_path):
    rng = np.random.default_rng(0)
    sim_events = [generator.simulate_event(generator.SimConfig(), rng) for _ in range(2)]
    (tmp_path / "test").mkdir()
    write_events(tmp_path / "test" / "sim.h5", sim_events)
    source = open_split(tmp_path, "test")
    [(image, labels)] = sample_crops(source[1], "zx", 64, n=1, rng=np.random.default_rng(1))
    assert image.shape == (64, 64) and (image > 0).sum() >= 10
    np.testing.assert_array_equal(labels > 0, image > 0)
    planes = wire_plane_images(source[0])
    assert planes["Y"].sum() == pytest.approx(sim_events[0].total_energy, rel=1e-5)


def test_show_event_writes_a_png(tmp_path, events):
    out = show_event(
        events[0], tmp_path / "figs" / "event.png", geometry=PlaneGeometry(tick_mm=6.0), title="hand-made event"
    )
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000
    assert [p.name for p in out.parent.iterdir()] == ["event.png"]  # no temp file left
    unlabelled = Event(coords=events[1].coords, energy=events[1].energy)
    assert show_event(unlabelled, tmp_path / "plain.png").stat().st_size > 20_000


def test_crop_grid_writes_a_png(tmp_path):
    crops = sample_crops(line_event(), n=6, rng=np.random.default_rng(0))
    images = torch.from_numpy(np.stack([c[0] for c in crops]))[:, None]
    labels = np.stack([c[1] for c in crops])
    with_labels = crop_grid(images, labels, out_png=tmp_path / "grid.png", ncols=3)
    plain = crop_grid(images, out_png=tmp_path / "plain.png", ncols=4)
    assert with_labels.read_bytes()[:8] == PNG_MAGIC == plain.read_bytes()[:8]
    # 1.4 inch cells at 80 dpi: 3 columns of (image, labels) pairs x 2 rows plus the legend
    drawn = plt_image.imread(with_labels)
    assert drawn.shape[:2] == (264, 672)
    assert plt_image.imread(plain).shape[:2] == (224, 448)
    assert len(np.unique(drawn.reshape(-1, drawn.shape[-1]), axis=0)) > 20  # not blank
