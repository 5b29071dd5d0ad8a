"""Event displays and sample grids, drawn with matplotlib's Agg renderer into PNG files.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state) and saved atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from voxgen.detector.planes import PlaneGeometry
from voxgen.errors import BadInput
from voxgen.events import SEMANTIC_NAMES, Event
from voxgen.io.atomic import atomic_path
from voxgen.views import PLANES, SSNET_CLASSES, project_2d, project_labels_2d, wire_plane_images

SEMANTIC_COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:gray")
SSNET_COLOURS = ("white", "tab:orange", "tab:blue")
MARGIN = 8  # pixels around the deposits when zooming in


def _save(fig: Figure, out_png: str | os.PathLike, dpi: int) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out_png


def _zoom(ax, image: np.ndarray) -> None:
    """Limit ``ax`` to the non-zero part of an image drawn with origin='lower' (x = column)."""
    rows, cols = np.nonzero(image)
    if len(rows):
        ax.set_xlim(max(cols.min() - MARGIN, 0) - 0.5, min(cols.max() + MARGIN, image.shape[1] - 1) + 0.5)
        ax.set_ylim(max(rows.min() - MARGIN, 0) - 0.5, min(rows.max() + MARGIN, image.shape[0] - 1) + 0.5)


def _label_legend(ax, names: list[str], colours: list[str]) -> None:
    ax.legend(
        handles=[Patch(color=c, label=n) for n, c in zip(names, colours)], loc="upper right", fontsize=7, framealpha=0.8
    )


def show_event(
    event: Event, out_png: str | os.PathLike, geometry: PlaneGeometry | None = None, title: str | None = None
) -> Path:
    """Write a 3 x 3 event display to ``out_png``; returns its path.

    Row 1: xy, yz, zx projections of the energy (MeV, log colour scale); row 2: the same
    projections coloured by semantic label; row 3: U, V, Y wire-plane images (wire vs tick).
    """
    event.validate(where=title or "event")
    fig = Figure(figsize=(16, 15), layout="constrained")
    axes = fig.subplots(3, 3)
    energy_images = [project_2d(event, plane) for plane in PLANES]
    positive = np.concatenate([im[im > 0] for im in energy_images])
    if positive.size == 0:
        raise BadInput(f"{title or 'event'}: no deposited energy to display")
    norm = LogNorm(vmin=positive.min(), vmax=positive.max())
    for ax, plane, image in zip(axes[0], PLANES, energy_images):
        shown = ax.imshow(
            np.ma.masked_equal(image, 0), origin="lower", cmap="viridis", norm=norm, interpolation="nearest"
        )
        ax.set(title=f"{plane} energy", xlabel=f"{plane[1]} [voxel]", ylabel=f"{plane[0]} [voxel]")
        _zoom(ax, image)
    fig.colorbar(shown, ax=axes[0].tolist(), label="energy per pixel [MeV]", shrink=0.8)

    label_cmap = ListedColormap(SEMANTIC_COLOURS)
    for ax, plane, image in zip(axes[1], PLANES, energy_images):
        labels = project_labels_2d(event, plane)
        ax.imshow(
            np.ma.masked_less(labels, 0),
            origin="lower",
            cmap=label_cmap,
            vmin=-0.5,
            vmax=len(SEMANTIC_COLOURS) - 0.5,
            interpolation="nearest",
        )
        ax.set(title=f"{plane} semantic label", xlabel=f"{plane[1]} [voxel]", ylabel=f"{plane[0]} [voxel]")
        _zoom(ax, image)
        if event.semantic is None:
            ax.text(0.5, 0.5, "unlabelled event", transform=ax.transAxes, ha="center")
    _label_legend(axes[1, 2], [SEMANTIC_NAMES[k] for k in range(len(SEMANTIC_COLOURS))], list(SEMANTIC_COLOURS))

    for ax, (name, image) in zip(axes[2], wire_plane_images(event, geometry).items()):
        by_tick = image.T  # rows tick, columns wire
        shown = ax.imshow(
            np.ma.masked_equal(by_tick, 0),
            origin="lower",
            cmap="magma_r",
            norm=LogNorm(vmin=max(by_tick[by_tick > 0].min(), 1e-6), vmax=by_tick.max()),
            aspect="auto",
            interpolation="nearest",
        )
        ax.set(title=f"plane {name}", xlabel="wire", ylabel="tick")
        _zoom(ax, by_tick)
    fig.colorbar(shown, ax=axes[2].tolist(), label="charge per wire and tick [MeV]", shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, out_png, dpi=90)


def crop_grid(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    *,
    out_png: str | os.PathLike,
    ncols: int = 8,
) -> Path:
    """Write a grid of 2D samples to ``out_png``; returns its path.

    ``images`` (n, H, W) or (n, 1, H, W); ``labels`` (n, H, W) SSNet classes (SSNET_CLASSES),
    drawn to the right of each image when given.
    """
    images = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images, np.float32)
    images = images.reshape(len(images), *images.shape[-2:])
    if labels is not None:
        labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
        labels = labels.reshape(len(labels), *labels.shape[-2:])
    per_sample = 1 if labels is None else 2
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(
        figsize=(1.4 * ncols * per_sample, 1.4 * nrows + (0.5 if labels is not None else 0)), layout="constrained"
    )
    axes = np.asarray(fig.subplots(nrows, ncols * per_sample, squeeze=False))
    for ax in axes.flat[n * per_sample :]:
        ax.set_axis_off()
    for ax in axes.flat[: n * per_sample]:
        ax.set_xticks([])
        ax.set_yticks([])
    ssnet_cmap = ListedColormap(SSNET_COLOURS)
    for i in range(n):
        row, col = divmod(i, ncols)
        axes[row, col * per_sample].imshow(images[i], origin="lower", cmap="viridis", interpolation="nearest")
        if labels is not None:
            axes[row, col * per_sample + 1].imshow(
                labels[i],
                origin="lower",
                cmap=ssnet_cmap,
                vmin=-0.5,
                vmax=len(SSNET_CLASSES) - 0.5,
                interpolation="nearest",
            )
    if labels is not None:
        fig.legend(
            handles=[
                Patch(facecolor=c, edgecolor="black", label=name) for name, c in zip(SSNET_CLASSES, SSNET_COLOURS)
            ],
            loc="outside lower center",
            ncols=len(SSNET_CLASSES),
            fontsize=8,
        )
    return _save(fig, out_png, dpi=80)
