"""PILArNet-M HDF5 reader and writer.

Layout (one file per shard; one entry per event, each a variable-length float32 array):

- ``point``         (N, 8): x, y, z (voxel units), energy (MeV), time, electrons, dx, spare
- ``cluster``       v1 (K, 5): n_points, fragment, group, interaction, semantic
                    v2 (K, 6): ... , pid
- ``cluster_extra`` v2 only (K, 5): lead, momentum (MeV/c), vertex x, y, z (voxel units)

Points are ordered by cluster: cluster k owns the next ``n_points[k]`` rows of ``point``.
voxgen writes either layout (``write_events(..., layout=)``), plus what other loaders ignore:
the dataset ``particle`` (P, 9): group, pid, momentum, vertex xyz, direction xyz
(``Particle.as_row``), and the file attribute ``grid`` (voxels a side; read as 768 when absent).

- ``v2`` stores the cluster table as it is; voxgen reads it back identically.
- ``v1`` follows the loaders that read ``cluster`` as (K, 5) and drop its first row as the
  low-energy scatters (PoLAr-MAE's ``PILArNet`` dataset): every low-energy voxel (semantic 4)
  goes to the first cluster, which has n_points 0 when the event has none; fragment, group and
  interaction ids of that cluster are those of the event's first low-energy cluster (-1 for the
  empty one); the other clusters follow in their order. Such a loader gets every other voxel
  with its semantic type and cluster. v1 has no per-cluster PID, momentum, vertex or lead:
  voxgen reads them back as -1 / 0, skips an empty low-energy first cluster, and keeps the
  truth particles from ``particle``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from voxgen.errors import BadInput, ConfigError
from voxgen.events import GRID_SIZE, Clusters, Event, Particle
from voxgen.io.atomic import atomic_path

VLEN_F32 = h5py.vlen_dtype(np.float32)
DATASETS = ("point", "cluster", "cluster_extra", "particle")
LAYOUT_DATASETS = {"v1": ("point", "cluster", "particle"), "v2": DATASETS}
SEMANTIC_LOWE = 4


def check_h5(path: Path) -> None:
    """Raise ``BadInput`` unless ``path`` is an HDF5 file with a ``point`` dataset."""
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise BadInput(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            if "point" not in f:
                raise BadInput(f"{path}: no 'point' dataset (not a PILArNet-M file)")
    except OSError as err:
        raise BadInput(f"{path}: unreadable HDF5 file ({err})") from None


def find_split_files(root: str | os.PathLike, split: str) -> list[Path]:
    """The sorted ``*.h5`` shards of ``root/<split>/`` (PILArNet-M and simulator layout)."""
    folder = Path(root) / split
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise BadInput(f"{folder}: no .h5 files for split '{split}'")
    return files


def _as_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        return sorted(p.glob("*.h5")) if p.is_dir() else [p]
    return [Path(p) for p in paths]


class PilarnetReader:
    """Lazy random access to the events of one or more PILArNet-M shards.

    ``min_points`` drops events with fewer points (counted before the energy threshold);
    ``energy_threshold`` (MeV) drops voxels below it; ``drop_lowe`` drops the low-energy
    scatter voxels (semantic 4). One h5py handle is opened per file per process, so the
    reader can be handed to DataLoader workers.
    """

    def __init__(
        self, paths, min_points: int = 0, energy_threshold: float = 0.0, drop_lowe: bool = False, validate: bool = True
    ) -> None:
        self.paths = _as_paths(paths)
        if not self.paths:
            raise BadInput(f"{paths}: no .h5 files")
        self.energy_threshold = float(energy_threshold)
        self.drop_lowe = drop_lowe
        self.validate = validate
        self._handles: dict[Path, h5py.File] = {}
        self._dataset_cache: dict[Path, tuple[h5py.File, dict]] = {}
        self._pid = os.getpid()
        counts, versions, grids = [], [], []
        for path in self.paths:
            check_h5(path)
            f = self._file(path)
            counts.append(len(f["point"]))
            versions.append(2 if "cluster_extra" in f else 1 if "cluster" in f else 0)
            grids.append(int(f.attrs.get("grid", GRID_SIZE)))
        self.versions = dict(zip(self.paths, versions))
        self.grids = dict(zip(self.paths, grids))  # voxels a side: voxgen's "grid" attribute, else PILArNet-M's 768
        file_index = np.repeat(np.arange(len(self.paths)), counts)
        local_index = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)
        self._index = np.stack([file_index, local_index], axis=1)
        self._n_points: np.ndarray | None = None
        if min_points > 0:
            keep = self.n_points >= min_points
            self._index, self._n_points = self._index[keep], self._n_points[keep]

    # ---- handles --------------------------------------------------------------------------
    def _file(self, path: Path) -> h5py.File:
        if self._pid != os.getpid():  # forked into a worker: never share handles
            self._handles, self._pid = {}, os.getpid()
        f = self._handles.get(path)
        if f is None:
            f = self._handles[path] = h5py.File(path, "r")
        return f

    def _datasets(self, path: Path) -> dict[str, _EntryReader | None]:
        """Readers of the file's datasets by name (None when absent), made once per handle."""
        f = self._file(path)
        cached = self._dataset_cache.get(path)
        if cached is None or cached[0] is not f:
            readers = {name: _EntryReader(f[name]) if name in f else None for name in DATASETS}
            cached = self._dataset_cache[path] = (f, readers)
        return cached[1]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"], state["_dataset_cache"] = {}, {}
        return state

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles, self._dataset_cache = {}, {}

    # ---- index ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_points(self) -> np.ndarray:
        """(len,) int64 points per event (raw, before thresholds); computed once."""
        if self._n_points is None:
            out = []
            for fi, path in enumerate(self.paths):
                rows = self._index[self._index[:, 0] == fi, 1]
                points = self._file(path)["point"]
                out.append(np.array([len(points[i]) // 8 for i in rows], dtype=np.int64))
            self._n_points = np.concatenate(out) if out else np.zeros(0, np.int64)
        return self._n_points

    # ---- events ---------------------------------------------------------------------------
    def __getitem__(self, i: int) -> Event:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        fi, local = self._index[i]
        path = self.paths[fi]
        try:
            raw = {name: None if ds is None else ds.read(local) for name, ds in self._datasets(path).items()}
        except OSError as err:
            raise BadInput(f"{path} event {local}: unreadable ({err})") from None
        version = self.versions[path]
        event = decode_event(raw, version, where=f"{path} event {local}", grid=self.grids[path])
        if self.drop_lowe and event.cluster is not None:
            event = event.select(event.semantic != 4)
        if self.energy_threshold > 0:
            event = event.select(event.energy >= self.energy_threshold)
        if self.validate:
            event.validate(where=f"{path} event {local}")
        return event

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class _EntryReader:
    """Reads one entry of a 1-D variable-length dataset through h5py's low-level API.

    Same bytes as ``dataset[i]``, without the per-call selection machinery of the high-level
    ``__getitem__`` (about 40% of the cost of a small read).
    """

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset = dataset
        self.file_space = dataset.id.get_space()
        self.memory_space = h5py.h5s.create_simple((1,))
        self.memory_type = h5py.h5t.py_create(dataset.dtype)

    def read(self, i: int) -> np.ndarray:
        out = np.empty(1, dtype=self.dataset.dtype)
        self.file_space.select_hyperslab((int(i),), (1,))
        self.dataset.id.read(self.memory_space, self.file_space, out, self.memory_type)
        return out[0]


def decode_event(raw: dict, version: int, where: str, grid: int = GRID_SIZE) -> Event:
    """Event from the raw flat arrays of one entry (``point``, ``cluster``, ...)."""
    point = np.asarray(raw["point"], dtype=np.float32)
    if point.size % 8:
        raise BadInput(f"{where}: 'point' has {point.size} values, not a multiple of 8")
    point = point.reshape(-1, 8)
    n = len(point)
    coords = np.floor(point[:, :3])
    if not np.all(np.isfinite(coords)):
        raise BadInput(f"{where}: non-finite coordinates")
    cluster = clusters = None
    if version and raw["cluster"] is not None:
        width = 6 if version == 2 else 5
        table = np.asarray(raw["cluster"], dtype=np.float32)
        if table.size % width:
            raise BadInput(f"{where}: 'cluster' has {table.size} values, not a multiple of {width}")
        table = table.reshape(-1, width)
        if version == 1 and len(table) and table[0, 0] == 0 and table[0, 4] == SEMANTIC_LOWE:
            table = table[1:]  # the empty low-energy cluster v1 writers put first
        sizes = table[:, 0].astype(np.int64)
        if sizes.sum() != n or np.any(sizes < 0):
            raise BadInput(f"{where}: cluster sizes sum to {sizes.sum()} but there are {n} points")
        k = len(table)
        extra = np.zeros((k, 5), np.float32)
        if version == 2 and raw["cluster_extra"] is not None:
            extra_raw = np.asarray(raw["cluster_extra"], dtype=np.float32)
            if extra_raw.size != 5 * k:
                raise BadInput(f"{where}: 'cluster_extra' has {extra_raw.size} values for {k} clusters")
            extra = extra_raw.reshape(k, 5)
        clusters = Clusters.build(
            fragment=table[:, 1],
            group=table[:, 2],
            interaction=table[:, 3],
            semantic=table[:, 4],
            pid=table[:, 5] if width == 6 else np.full(k, -1),
            lead=extra[:, 0],
            momentum=extra[:, 1],
            vertex=extra[:, 2:5],
        )
        cluster = np.repeat(np.arange(k, dtype=np.int32), sizes)
    if raw.get("particle") is not None:
        rows = np.asarray(raw["particle"], dtype=np.float32).reshape(-1, 9)
        particles = [Particle.from_row(r) for r in rows]
    else:
        particles = particles_from_clusters(clusters)
    return Event(
        coords=coords,
        energy=point[:, 3],
        time=point[:, 4],
        electrons=point[:, 5],
        dx=point[:, 6],
        cluster=cluster,
        clusters=clusters,
        particles=particles,
        grid=grid,
    )


def particles_from_clusters(clusters: Clusters | None) -> list[Particle]:
    """Truth particles of a foreign file: one per group, from its first cluster (no direction)."""
    if clusters is None:
        return []
    out = []
    groups, first = np.unique(clusters.group, return_index=True)
    for g, k in zip(groups, first):
        if g < 0 or clusters.pid[k] < 0:
            continue
        out.append(
            Particle(
                pid=int(clusters.pid[k]),
                momentum=float(clusters.momentum[k]),
                vertex=tuple(float(v) for v in clusters.vertex[k]),
                direction=(float("nan"),) * 3,
                group=int(g),
            )
        )
    return out


def encode_event(event: Event, layout: str = "v2") -> dict[str, np.ndarray]:
    """The flat float32 arrays of one entry in ``layout`` ("v1" or "v2"); voxels in cluster order."""
    n = len(event)
    zeros = np.zeros(n, np.float32)
    point = np.stack(
        [
            *event.coords.T.astype(np.float32),
            event.energy,
            zeros if event.time is None else event.time,
            zeros if event.electrons is None else event.electrons,
            zeros if event.dx is None else event.dx,
            zeros,
        ],
        axis=1,
    )
    if event.clusters is None or event.cluster is None:  # unlabelled: one cluster of unknown type
        clusters, cluster = Clusters.build(semantic=[-1], pid=[-1]), np.zeros(n, np.int64)
    else:
        clusters, cluster = event.clusters, event.cluster
    table, cluster = _table_v1(clusters, cluster) if layout == "v1" else (_table_v2(clusters, cluster), cluster)
    particle = np.stack([p.as_row() for p in event.particles]) if event.particles else np.zeros((0, 9), np.float32)
    encoded = {
        "point": point[np.argsort(cluster, kind="stable")].ravel(),
        "cluster": table.ravel(),
        "particle": particle.ravel(),
    }
    if layout == "v2":
        extra = np.column_stack([clusters.lead, clusters.momentum, clusters.vertex]).astype(np.float32)
        encoded["cluster_extra"] = extra.ravel()
    return encoded


def _table_v2(clusters: Clusters, cluster: np.ndarray) -> np.ndarray:
    """(K, 6) float32 v2 rows: n_points, fragment, group, interaction, semantic, pid."""
    sizes = np.bincount(cluster, minlength=len(clusters))
    ids = [clusters.fragment, clusters.group, clusters.interaction, clusters.semantic, clusters.pid]
    return np.column_stack([sizes, *ids]).astype(np.float32)


def _table_v1(clusters: Clusters, cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K', 5) float32 v1 rows (n_points, fragment, group, interaction, semantic) and the (N,)
    row of each voxel: all low-energy voxels in row 0, the other clusters after it in order."""
    lowe = clusters.semantic == SEMANTIC_LOWE
    others = np.flatnonzero(~lowe)
    row_of_cluster = np.zeros(len(clusters), np.int64)
    row_of_cluster[others] = np.arange(1, len(others) + 1)
    ids = np.column_stack([clusters.fragment, clusters.group, clusters.interaction, clusters.semantic])
    head = ids[lowe][:1] if lowe.any() else np.array([[-1, -1, -1, SEMANTIC_LOWE]])
    rows = np.concatenate([head, ids[others]])
    voxel_rows = row_of_cluster[cluster]
    sizes = np.bincount(voxel_rows, minlength=len(rows))
    return np.column_stack([sizes, rows]).astype(np.float32), voxel_rows


def write_events(path: str | os.PathLike, events: Iterable[Event], layout: str = "v2") -> Path:
    """Write events as one PILArNet-M shard at ``path`` (atomically) in ``layout`` ("v1" or "v2",
    see the module notes); returns the path.

    Every event is validated first; a bad one raises ``BadInput`` naming its index and
    nothing is written.
    """
    path = Path(path)
    if layout not in LAYOUT_DATASETS:
        raise ConfigError(f"layout: unknown PILArNet-M layout '{layout}' (choose v1, v2)")
    encoded = {name: [] for name in LAYOUT_DATASETS[layout]}
    grids = set()
    for i, event in enumerate(events):
        event.validate(where=f"{path} event {i}")
        grids.add(event.grid)
        for name, arr in encode_event(event, layout).items():
            encoded[name].append(arr)
    if len(grids) > 1:
        raise BadInput(f"{path}: events on different grids ({sorted(grids)} voxels a side) cannot share a file")
    n = len(encoded["point"])
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["grid"] = grids.pop() if grids else GRID_SIZE  # voxels a side; other loaders ignore it
            for name, arrays in encoded.items():
                data = np.empty(n, dtype=object)
                for i, arr in enumerate(arrays):  # element-wise: equal lengths must not broadcast
                    data[i] = arr
                f.create_dataset(name, shape=(n,), dtype=VLEN_F32, data=data)
    return path
