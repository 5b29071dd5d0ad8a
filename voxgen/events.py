"""The one event type that flows through voxgen, and the voxel operations on it.

Units everywhere: coordinates are integer voxel indices on a cubic grid (3 mm voxels,
``grid`` voxels a side, 768 for PILArNet-M); energies in MeV; momenta in MeV/c; vertices in
voxel units (float, same frame as ``coords``); directions are unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

GRID_SIZE = 768
VOXEL_MM = 3.0

SEMANTIC_NAMES = {0: "shower", 1: "track", 2: "michel", 3: "delta", 4: "lowe"}
PID_NAMES = {-1: "none", 0: "photon", 1: "electron", 2: "muon", 3: "pion", 4: "proton"}


@dataclass
class Clusters:
    """Per-cluster table (K rows), the PILArNet-M v2 ``cluster`` + ``cluster_extra`` content.

    A cluster is one particle fragment with one semantic type; ``group`` ties the fragments
    of one particle together (the particle instance).
    """

    fragment: np.ndarray  # (K,) int32
    group: np.ndarray  # (K,) int32, particle instance id
    interaction: np.ndarray  # (K,) int32
    semantic: np.ndarray  # (K,) int16, SEMANTIC_NAMES key, -1 unknown
    pid: np.ndarray  # (K,) int16, PID_NAMES key
    momentum: np.ndarray  # (K,) float32, MeV/c of the particle that made the cluster
    vertex: np.ndarray  # (K, 3) float32, voxel units
    lead: np.ndarray  # (K,) float32, the leading column of PILArNet's cluster_extra

    def __len__(self) -> int:
        return len(self.semantic)

    @classmethod
    def build(
        cls, semantic, pid, group=None, fragment=None, interaction=None, momentum=None, vertex=None, lead=None
    ) -> Clusters:
        """Clusters from per-cluster label lists; missing ids default to 0..K-1 / zeros."""
        semantic = np.asarray(semantic, dtype=np.int16)
        k = len(semantic)

        def arr(v, dtype, default):
            return np.asarray(default if v is None else v, dtype=dtype)

        return cls(
            fragment=arr(fragment, np.int32, np.arange(k)),
            group=arr(group, np.int32, np.arange(k)),
            interaction=arr(interaction, np.int32, np.zeros(k)),
            semantic=semantic,
            pid=arr(pid, np.int16, np.full(k, -1)),
            momentum=arr(momentum, np.float32, np.zeros(k)),
            vertex=arr(vertex, np.float32, np.zeros((k, 3))).reshape(k, 3),
            lead=arr(lead, np.float32, np.zeros(k)),
        )

    def equals(self, other: Clusters) -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


@dataclass
class Particle:
    """Truth for one primary (or Michel/daughter) particle of an event."""

    pid: int  # PID_NAMES key
    momentum: float  # MeV/c
    vertex: tuple[float, float, float]  # voxel units
    direction: tuple[float, float, float]  # unit vector; NaNs when unknown (foreign files)
    group: int = -1  # the Clusters.group id of its deposits, -1 if none

    def as_row(self) -> np.ndarray:
        """(9,) float32: group, pid, momentum, vertex xyz, direction xyz."""
        return np.array([self.group, self.pid, self.momentum, *self.vertex, *self.direction], dtype=np.float32)

    @classmethod
    def from_row(cls, row: np.ndarray) -> Particle:
        r = [float(v) for v in row]
        return cls(
            pid=int(r[1]), momentum=r[2], vertex=(r[3], r[4], r[5]), direction=(r[6], r[7], r[8]), group=int(r[0])
        )


@dataclass
class Event:
    """One LArTPC event as sparse voxels.

    ``coords`` (N, 3) int32 voxel indices in [0, grid); ``energy`` (N,) float32 MeV.
    ``cluster`` (N,) int32 row of ``clusters`` owning each voxel (None when unlabelled).
    ``electrons``, ``time`` (us), ``dx`` (cm) are the optional PILArNet point columns.
    Duplicate coordinates are allowed (overlapping particles); see ``merge_duplicates``.
    """

    coords: np.ndarray
    energy: np.ndarray
    cluster: np.ndarray | None = None
    clusters: Clusters | None = None
    electrons: np.ndarray | None = None
    time: np.ndarray | None = None
    dx: np.ndarray | None = None
    particles: list[Particle] = field(default_factory=list)
    grid: int = GRID_SIZE

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.int32).reshape(-1, 3)
        self.energy = np.asarray(self.energy, dtype=np.float32).reshape(-1)
        for name in ("electrons", "time", "dx"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v, dtype=np.float32).reshape(-1))
        if self.cluster is not None:
            self.cluster = np.asarray(self.cluster, dtype=np.int32).reshape(-1)

    def __len__(self) -> int:
        return len(self.energy)

    # ---- per-voxel labels, derived from the cluster table -------------------------------
    def _voxel_label(self, name: str, missing: int) -> np.ndarray | None:
        if self.cluster is None or self.clusters is None:
            return None
        table = getattr(self.clusters, name)
        out = np.full(len(self), missing, dtype=table.dtype)
        ok = self.cluster >= 0
        out[ok] = table[self.cluster[ok]]
        return out

    @property
    def semantic(self) -> np.ndarray | None:
        """(N,) int16 semantic type per voxel (SEMANTIC_NAMES), -1 unknown."""
        return self._voxel_label("semantic", -1)

    @property
    def pid(self) -> np.ndarray | None:
        """(N,) int16 PID per voxel (PID_NAMES)."""
        return self._voxel_label("pid", -1)

    @property
    def instance(self) -> np.ndarray | None:
        """(N,) int32 particle instance (cluster group) per voxel."""
        return self._voxel_label("group", -1)

    @property
    def total_energy(self) -> float:
        return float(self.energy.sum(dtype=np.float64))

    # ---- checks and operations ----------------------------------------------------------
    def validate(self, where: str = "event") -> None:
        """Raise ``BadInput`` naming ``where`` if the event is empty or malformed."""
        from voxgen.errors import BadInput

        n = len(self.energy)
        if n == 0:
            raise BadInput(f"{where}: empty event (no voxels)")
        if self.coords.shape != (n, 3):
            raise BadInput(f"{where}: coords shape {self.coords.shape} != ({n}, 3)")
        if not np.all(np.isfinite(self.energy)):
            raise BadInput(f"{where}: non-finite (NaN/inf) energy in {int((~np.isfinite(self.energy)).sum())} voxels")
        lo, hi = self.coords.min(), self.coords.max()
        if lo < 0 or hi >= self.grid:
            raise BadInput(f"{where}: coordinates outside the grid [0, {self.grid}): min {lo}, max {hi}")
        for name in ("electrons", "time", "dx", "cluster"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise BadInput(f"{where}: {name} has {len(v)} entries for {n} voxels")
        if self.cluster is not None:
            if self.clusters is None:
                raise BadInput(f"{where}: voxel cluster index without a cluster table")
            if self.cluster.max() >= len(self.clusters) or self.cluster.min() < 0:
                raise BadInput(f"{where}: voxel cluster index outside 0..{len(self.clusters) - 1}")

    def select(self, mask: np.ndarray) -> Event:
        """Event with only the voxels where ``mask`` (N,) bool is true; tables kept."""

        def sub(v):
            return None if v is None else v[mask]

        return replace(
            self,
            coords=self.coords[mask],
            energy=self.energy[mask],
            cluster=sub(self.cluster),
            electrons=sub(self.electrons),
            time=sub(self.time),
            dx=sub(self.dx),
        )

    def equals(self, other: Event) -> bool:
        """Exact equality of voxels, labels, tables and truth."""
        for name in ("coords", "energy", "cluster", "electrons", "time", "dx"):
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                return False
        if (self.clusters is None) != (other.clusters is None):
            return False
        if self.clusters is not None and not self.clusters.equals(other.clusters):
            return False
        rows = lambda e: np.stack([p.as_row() for p in e.particles]) if e.particles else np.zeros((0, 9))
        return self.grid == other.grid and np.array_equal(rows(self), rows(other), equal_nan=True)


def merge_duplicates(event: Event) -> Event:
    """Sum the energy (and electrons) of voxels sharing a coordinate.

    Labels of a merged voxel come from its highest-energy contributor.
    Returns an event with unique coordinates sorted lexicographically.
    """
    keys = np.ravel_multi_index(event.coords.T.astype(np.int64), (event.grid,) * 3)
    order = np.lexsort((-event.energy, keys))  # by key, highest energy first within a key
    keys_sorted = keys[order]
    first = np.r_[True, keys_sorted[1:] != keys_sorted[:-1]]
    group = np.cumsum(first) - 1
    lead = order[first]

    def summed(v):
        return None if v is None else np.bincount(group, weights=v[order]).astype(np.float32)

    return replace(
        event,
        coords=event.coords[lead],
        energy=summed(event.energy),
        electrons=summed(event.electrons),
        cluster=None if event.cluster is None else event.cluster[lead],
        time=None if event.time is None else event.time[lead],
        dx=None if event.dx is None else event.dx[lead],
    )


def sort_by_cluster(event: Event) -> Event:
    """Voxels reordered by cluster index (stable), the order PILArNet-M files store."""
    if event.cluster is None or np.all(event.cluster[1:] >= event.cluster[:-1]):
        return event
    return event.select(np.argsort(event.cluster, kind="stable"))


def crop(event: Event, origin: np.ndarray, size: int) -> Event:
    """Voxels inside the cube [origin, origin + size), re-indexed to start at 0."""
    origin = np.asarray(origin, dtype=np.int32)
    inside = np.all((event.coords >= origin) & (event.coords < origin + size), axis=1)
    out = event.select(inside)
    out.coords = out.coords - origin
    out.grid = size
    return out


def centred_crop(event: Event, size: int) -> Event:
    """The ``size``^3 cube around the event's energy-weighted centre (kept inside the grid),
    re-indexed to start at 0; voxels outside are dropped."""
    centre = np.round(np.average(event.coords, axis=0, weights=np.maximum(event.energy, 1e-9))).astype(np.int64)
    origin = np.clip(centre - size // 2, 0, max(event.grid - size, 0))
    return crop(event, origin, size)


def collate_sparse(events: list[Event], features: tuple[str, ...] = ("energy",)) -> tuple[np.ndarray, np.ndarray]:
    """Batch events into the sparse layout both sparse backends consume.

    Returns ``coords`` (M, 4) int32 with columns (batch, x, y, z) and ``feats`` (M, C) float32.
    """
    coords = (
        np.concatenate(
            [np.concatenate([np.full((len(e), 1), b, np.int32), e.coords], axis=1) for b, e in enumerate(events)]
        )
        if events
        else np.zeros((0, 4), np.int32)
    )
    feats = (
        np.concatenate([np.stack([getattr(e, f) for f in features], axis=1) for e in events]).astype(np.float32)
        if events
        else np.zeros((0, len(features)), np.float32)
    )
    return coords, feats
