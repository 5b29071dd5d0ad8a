"""Event displays and sample grids, drawn with matplotlib's Agg renderer into PNG files.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state) and saved atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def _square_zoom(ax, image: np.ndarray) -> None:
    """Limit ``ax`` to the smallest square window (inside the image) holding the non-zero part of
    ``image`` with MARGIN pixels around it, so every panel keeps the voxels square and comparable."""
    rows, cols = np.nonzero(image)
    if not len(rows):
        return
    side = min(max(np.ptp(rows), np.ptp(cols)) + 1 + 2 * MARGIN, min(image.shape))
    limits = []
    for lo, hi, size in ((cols.min(), cols.max(), image.shape[1]), (rows.min(), rows.max(), image.shape[0])):
        start = int(np.clip((lo + hi + 1 - side) // 2, 0, size - side))
        limits.append((start - 0.5, start + side - 0.5))
    ax.set(xlim=limits[0], ylim=limits[1])


def _label_legend(ax, names: list[str], colours: list[str]) -> None:
    ax.legend(
        handles=[Patch(color=c, label=n) for n, c in zip(names, colours)], loc="upper right", fontsize=7, framealpha=0.8
    )


def _draw_energy(ax, image: np.ndarray, norm, plane: str, title: str):
    """Draw an energy projection (MeV per pixel) of ``plane`` with empty pixels left blank."""
    shown = ax.imshow(np.ma.masked_equal(image, 0), origin="lower", cmap="viridis", norm=norm, interpolation="nearest")
    ax.set(title=title, xlabel=f"{plane[1]} [voxel]", ylabel=f"{plane[0]} [voxel]")
    return shown


def _log_norm(images: list[np.ndarray]) -> LogNorm:
    """One log colour scale spanning the charged pixels of ``images`` (MeV; 0.1-1 when all are empty)."""
    positive = np.concatenate([im[im > 0].ravel() for im in images])
    return LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else LogNorm(vmin=0.1, vmax=1.0)


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
        shown = _draw_energy(ax, image, norm, plane, f"{plane} energy")
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


def comparison_grid(
    pairs: Sequence[tuple[str, Sequence[Event], Sequence[Event]]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    panel_inches: float = 1.8,
) -> tuple[Path, np.ndarray]:
    """Write real events beside generated events of the same request to ``path``.

    ``pairs``: one row per request, ``(label, real events, generated events)``, e.g.
    ``("muon at 750 MeV/c", [event], [gen_1, gen_2])``. Each event is drawn as its xy, yz, zx
    energy projections (MeV per pixel, one log colour scale per row, each plane's panels showing
    the same square window around the deposits of the whole row), real events on the left and
    generated ones on the right.
    Returns the path and the (rows, 3 * (real + generated columns)) array of projection axes.
    """
    if not pairs:
        raise ValueError("comparison_grid: no requests to draw")
    n_real = max(len(real) for _, real, _ in pairs)
    n_gen = max(len(gen) for _, _, gen in pairs)
    columns = len(PLANES) * (n_real + n_gen)
    fig = Figure(figsize=(panel_inches * columns + 1.0, (panel_inches + 0.4) * len(pairs)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(pairs), 1))
    axes = np.empty((len(pairs), columns), dtype=object)
    for r, (row, (label, real, generated)) in enumerate(zip(rows, pairs)):
        axes[r] = row.subplots(1, columns)
        drawn = [("real", e, axes[r, len(PLANES) * k :]) for k, e in enumerate(real)]
        drawn += [("generated", e, axes[r, len(PLANES) * (n_real + k) :]) for k, e in enumerate(generated)]
        images = {id(e): [project_2d(e, plane) for plane in PLANES] for _, e, _ in drawn}
        norm = _log_norm([im for ims in images.values() for im in ims])
        extent = [sum(ims[i] for ims in images.values()) for i in range(len(PLANES))]
        for ax in axes[r]:
            ax.set_axis_off()
        for kind, event, event_axes in drawn:
            for ax, plane, image, limits in zip(event_axes, PLANES, images[id(event)], extent):
                ax.set_axis_on()
                shown = _draw_energy(ax, image, norm, plane, f"{kind} {plane}")
                ax.tick_params(labelsize=6)
                ax.xaxis.label.set_size(7)
                ax.yaxis.label.set_size(7)
                _square_zoom(ax, limits)
                if not image.any():
                    ax.text(0.5, 0.5, "no voxels", transform=ax.transAxes, ha="center", fontsize=7)
        if drawn:
            row.colorbar(shown, ax=axes[r].tolist(), label="MeV per pixel", shrink=0.9, pad=0.01)
        row.suptitle(label, x=0.01, ha="left", fontsize=10, fontweight="bold")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=90), axes


def crop_comparison(
    real: np.ndarray,
    generated: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    ncols: int = 4,
) -> tuple[Path, np.ndarray]:
    """Write a two-panel PNG, real crops | generated crops, to ``path``.

    ``real``, ``generated``: (n, H, W) MeV per pixel, crop ``i`` of each for the request
    ``labels[i]`` (e.g. "muon 750 MeV/c"), drawn at the same place of its panel on the same log
    colour scale. Returns the path and the (2, rows, ncols) array of image axes (real, generated).
    """
    real, generated = np.asarray(real, np.float32), np.asarray(generated, np.float32)
    if not (len(real) == len(generated) == len(labels) > 0):
        raise ValueError(f"crop_comparison: {len(real)} real, {len(generated)} generated crops, {len(labels)} labels")
    n = len(real)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(2 * 1.5 * ncols + 0.4, 1.7 * nrows + 0.5), layout="constrained")
    panels = fig.subfigures(1, 2, wspace=0.04)
    axes = np.stack([np.asarray(panel.subplots(nrows, ncols, squeeze=False)) for panel in panels])
    for panel, name in zip(panels, ("real (held-out crops)", "generated (same requests)")):
        panel.suptitle(name, fontsize=10, fontweight="bold")
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        norm = _log_norm([real[i], generated[i]])
        for side, image in enumerate((real[i], generated[i])):
            ax = axes[side].flat[i]
            ax.set_axis_on()
            ax.set(xticks=[], yticks=[])
            ax.imshow(np.ma.masked_equal(image, 0), origin="lower", cmap="viridis", norm=norm, interpolation="nearest")
            ax.set_title(labels[i], fontsize=7)
    return _save(fig, path, dpi=80), axes
