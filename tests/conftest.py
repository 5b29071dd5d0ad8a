"""Shared fixtures: small hand-made labelled events; ``VOXGEN_REQUIRE_BACKENDS``."""

from __future__ import annotations

import os

import numpy as np
import pytest

from voxgen.errors import ConfigError
from voxgen.events import Clusters, Event, Particle


def pytest_configure(config: pytest.Config) -> None:
    """``VOXGEN_REQUIRE_BACKENDS=spconv,minkowski`` (CI): stop before collecting when a named sparse
    backend cannot be loaded, where its tests would otherwise be skipped."""
    from voxgen.nn.sparse import get_backend

    for name in filter(None, os.environ.get("VOXGEN_REQUIRE_BACKENDS", "").replace(" ", "").split(",")):
        try:
            get_backend(name)
        except ConfigError as err:
            raise pytest.UsageError(f"VOXGEN_REQUIRE_BACKENDS: {err}") from None


def make_event(rng: np.random.Generator, n_clusters: int = 3, grid: int = 768) -> Event:
    """A labelled event: n_clusters blobs, cluster-ordered voxels, one particle per group."""
    sizes = rng.integers(5, 40, size=n_clusters)
    centre = rng.integers(100, grid - 100, size=3)
    coords = np.concatenate([centre + rng.integers(-30, 30, size=(s, 3)) for s in sizes])
    n = len(coords)
    clusters = Clusters.build(
        semantic=rng.integers(0, 5, n_clusters),
        pid=rng.integers(0, 5, n_clusters),
        group=np.arange(n_clusters),
        momentum=rng.uniform(50, 800, n_clusters),
        vertex=np.tile(centre, (n_clusters, 1)) + 0.5,
        lead=np.arange(n_clusters),
    )
    particles = [
        Particle(
            pid=int(clusters.pid[k]),
            momentum=float(clusters.momentum[k]),
            vertex=tuple(float(v) for v in clusters.vertex[k]),
            direction=(0.0, 0.6, 0.8),
            group=k,
        )
        for k in range(n_clusters)
    ]
    return Event(
        coords=coords,
        energy=rng.uniform(0.01, 5, n),
        electrons=rng.uniform(0, 1e5, n),
        time=rng.uniform(0, 100, n),
        dx=rng.uniform(0.3, 0.6, n),
        cluster=np.repeat(np.arange(n_clusters), sizes),
        clusters=clusters,
        particles=particles,
        grid=grid,
    )


@pytest.fixture
def events() -> list[Event]:
    rng = np.random.default_rng(7)
    return [make_event(rng, n_clusters=int(k)) for k in rng.integers(1, 5, size=6)]
