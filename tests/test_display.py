"""Real-beside-generated displays: the 3D comparison grid (one row per request, xy/yz/zx energy
projections) and the 2D real | generated crop panels."""

from __future__ import annotations

import matplotlib.image as plt_image
import numpy as np
import pytest

from voxgen.events import Event
from voxgen.viz.display import comparison_grid, crop_comparison

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = 64


def track(start, step, n: int = 30) -> Event:
    """A straight track of ``n`` voxels (1 MeV each) in a GRID^3 crop."""
    coords = np.clip(np.array(start) + np.outer(np.arange(n), step), 0, GRID - 1).astype(int)
    coords = np.unique(coords, axis=0)
    return Event(coords, np.ones(len(coords)), grid=GRID)


def fragments(seed: int) -> Event:
    """Scattered isolated voxels (0.2-5 MeV) over the crop."""
    rng = np.random.default_rng(seed)
    coords = np.unique(rng.integers(0, GRID, (25, 3)), axis=0)
    return Event(coords, rng.uniform(0.2, 5.0, len(coords)), grid=GRID)


def test_comparison_grid_draws_one_row_per_request_real_left_generated_right(tmp_path):
    pairs = [
        ("muon at 750 MeV/c", [track((5, 5, 5), (1, 1, 0))], [fragments(0), fragments(1)]),
        ("electron at 300 MeV/c", [track((10, 30, 20), (1, 0, 1))], [fragments(2), track((0, 0, 0), (0, 1, 1))]),
        ("proton at 500 MeV/c", [track((40, 5, 5), (0, 1, 0))], [Event(np.zeros((0, 3), int), np.zeros(0), grid=GRID)]),
    ]
    path, axes = comparison_grid(pairs, tmp_path / "figs" / "comparison.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["comparison.png"]  # no temp file left
    assert axes.shape == (3, 9)  # 3 requests x (1 real + 2 generated) x (xy, yz, zx)
    titles = [[ax.get_title() for ax in row] for row in axes]
    assert titles[0] == ["real xy", "real yz", "real zx"] + ["generated xy", "generated yz", "generated zx"] * 2
    assert [ax.get_figure(root=False).get_suptitle() for ax in axes[:, 0]] == [label for label, _, _ in pairs]
    # one colour scale per row, spanning real and generated charge: 0.2-5 MeV fragments and 1 MeV tracks
    for row in axes:
        norms = {(im.norm.vmin, im.norm.vmax) for ax in row for im in ax.get_images()}
        assert len(norms) == 1
    assert axes[2, 0].get_images()[0].norm.vmin == pytest.approx(1.0)  # 1 MeV per voxel of the lone track
    assert axes[0, 3].get_images()[0].norm.vmax > 1.0
    # a request with fewer generated events leaves its last columns blank; an empty event is marked
    assert not axes[2, 6].axison and [t.get_text() for t in axes[2, 3].texts] == ["no voxels"]
    drawn = plt_image.imread(path)
    assert drawn.shape[0] > 3 * 150 and len(np.unique(drawn.reshape(-1, drawn.shape[-1]), axis=0)) > 20


def test_comparison_grid_needs_a_request(tmp_path):
    with pytest.raises(ValueError, match="no requests"):
        comparison_grid([], tmp_path / "c.png")


def test_crop_comparison_places_each_request_at_the_same_cell_of_both_panels(tmp_path):
    rng = np.random.default_rng(0)
    real = np.where(rng.random((5, 16, 16)) < 0.1, rng.uniform(0.1, 2.0, (5, 16, 16)), 0.0)
    generated = np.where(rng.random((5, 16, 16)) < 0.1, rng.uniform(0.1, 9.0, (5, 16, 16)), 0.0)
    labels = [f"muon {p} MeV/c" for p in (100, 200, 300, 400, 500)]
    path, axes = crop_comparison(real, generated, labels, tmp_path / "preview.png", ncols=3)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert axes.shape == (2, 2, 3)  # (real, generated) x 2 rows x 3 columns, 5 of 6 cells drawn
    for side in range(2):
        assert [ax.get_title() for ax in axes[side].flat] == labels + [""]
        assert not axes[side].flat[5].axison
    for i in range(5):
        a, b = axes[0].flat[i].get_images()[0], axes[1].flat[i].get_images()[0]
        assert (
            (a.norm.vmin, a.norm.vmax)
            == (b.norm.vmin, b.norm.vmax)
            == pytest.approx(
                (
                    min(real[i][real[i] > 0].min(), generated[i][generated[i] > 0].min()),
                    max(real[i].max(), generated[i].max()),
                )
            )
        )
    assert [p.get_figure(root=False).get_suptitle() for p in (axes[0, 0, 0], axes[1, 0, 0])] == [
        "real (held-out crops)",
        "generated (same requests)",
    ]
    with pytest.raises(ValueError, match="2 real, 2 generated crops, 1 labels"):
        crop_comparison(real[:2], generated[:2], labels[:1], tmp_path / "bad.png")
