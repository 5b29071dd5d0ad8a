"""Events as triangle meshes: every voxel a cube, for 3D viewers (``.ply``, ``.glb``).

Positions are in millimetres by default: voxel (i, j, k) is the cube
[i, i+1] x [j, j+1] x [k, k+1] times ``voxel_size`` (3 mm, ``VOXEL_MM``); pass
``voxel_size=1`` for voxel units. glTF viewers assume metres, so a ``.glb`` shows up 1000x
large unless scaled on import. Each cube has its own 8 vertices and 12 triangles (outward
facing), all 8 vertices in the voxel's colour (RGBA uint8):

- ``color_by="energy"``: the voxel energy on a log scale from the smallest positive energy
  to the largest, through the matplotlib colormap ``ENERGY_CMAP``
- ``color_by="semantic"``: ``SEMANTIC_RGB`` (shower orange, track blue, Michel green,
  delta red, low-energy purple; unknown grey)

Duplicate coordinates are merged first (energies summed, label of the largest deposit).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib
import matplotlib.colors
import numpy as np
import trimesh

from voxgen.errors import BadInput, ConfigError
from voxgen.events import VOXEL_MM, Event, merge_duplicates
from voxgen.io.atomic import atomic_path

ENERGY_CMAP = "viridis"
SEMANTIC_RGB = {0: (255, 127, 14), 1: (31, 119, 180), 2: (44, 160, 44), 3: (214, 39, 40), 4: (148, 103, 189)}
UNKNOWN_RGB = (127, 127, 127)
COLOR_BY = ("energy", "semantic")
MESH_SUFFIXES = (".ply", ".glb")

_CUBE = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
CUBE_VERTICES = np.asarray(_CUBE.vertices, dtype=np.float64)  # (8, 3) unit cube corners
CUBE_FACES = np.asarray(_CUBE.faces, dtype=np.int64)  # (12, 3) outward-facing triangles


def event_to_mesh(
    event: Event,
    color_by: str = "energy",
    max_voxels: int = 200_000,
    voxel_size: float = VOXEL_MM,
    where: str = "event",
) -> trimesh.Trimesh:
    """The voxels of ``event`` as cubes: (8 M, 3) vertices, (12 M, 3) faces for M voxels.

    Events with more than ``max_voxels`` (distinct) voxels keep the ``max_voxels`` most
    energetic ones, with a warning. Raises ``BadInput`` naming ``where`` for an empty or
    malformed event, or for ``color_by="semantic"`` on an unlabelled one.
    """
    if color_by not in COLOR_BY:
        raise ConfigError(f"color_by: unknown colouring '{color_by}' (choose {', '.join(COLOR_BY)})")
    event.validate(where)
    event = merge_duplicates(event)
    if len(event) > max_voxels:
        warnings.warn(f"{where}: {len(event)} voxels, meshing the {max_voxels} most energetic", stacklevel=2)
        event = event.select(np.sort(np.argsort(-event.energy, kind="stable")[:max_voxels]))
    if color_by == "semantic":
        if event.semantic is None:
            raise BadInput(f"{where}: no semantic labels to colour by (use color_by=energy)")
        rgba = semantic_colors(event.semantic)
    else:
        rgba = energy_colors(event.energy)
    n = len(event)
    vertices = (event.coords[:, None, :] + CUBE_VERTICES[None]).reshape(-1, 3) * voxel_size
    faces = (CUBE_FACES[None] + 8 * np.arange(n)[:, None, None]).reshape(-1, 3)
    return trimesh.Trimesh(
        vertices=vertices, faces=faces, vertex_colors=np.repeat(rgba, len(CUBE_VERTICES), axis=0), process=False
    )


def energy_colors(energy: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 RGBA of energies (N,) MeV: log scale, non-positive values at the bottom."""
    positive = energy[energy > 0]
    low, high = (positive.min(), positive.max()) if positive.size else (1.0, 1.0)
    norm = matplotlib.colors.LogNorm(vmin=low, vmax=high, clip=True)
    return matplotlib.colormaps[ENERGY_CMAP](norm(np.maximum(energy, low)), bytes=True)


def semantic_colors(semantic: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 RGBA of semantic labels (N,) from ``SEMANTIC_RGB``; others grey."""
    palette = np.array([UNKNOWN_RGB, *SEMANTIC_RGB.values()], dtype=np.uint8)
    known = (semantic >= 0) & (semantic < len(SEMANTIC_RGB))
    rgb = palette[np.where(known, semantic.astype(np.int64) + 1, 0)]
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def write_mesh(
    event: Event,
    out: str | os.PathLike,
    color_by: str = "energy",
    max_voxels: int = 200_000,
    voxel_size: float = VOXEL_MM,
) -> Path:
    """Write the cube mesh of ``event`` to ``out`` (``.ply`` or ``.glb``, atomically)."""
    out = Path(out)
    if out.suffix not in MESH_SUFFIXES:
        raise BadInput(f"{out}: unknown mesh file type '{out.suffix}' (use .ply or .glb)")
    mesh = event_to_mesh(event, color_by, max_voxels, voxel_size, where=str(out))
    data = mesh.export(file_type=out.suffix[1:])
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return out
