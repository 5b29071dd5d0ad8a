"""The built-in data: simulator output, simulated on first use and cached."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from voxgen.sim.config import PHYSICS_VERSION, SimConfig
from voxgen.sim.generator import simulate_splits


def cache_root() -> Path:
    """``$VOXGEN_CACHE`` or ``~/.cache/voxgen``."""
    return Path(os.environ.get("VOXGEN_CACHE", Path.home() / ".cache" / "voxgen"))


def builtin_dataset(sim: SimConfig, splits: dict[str, int], seed: int, workers: int = 2, progress: bool = True) -> Path:
    """Folder ``<cache>/sim/<hash>/`` with ``<split>/*.h5``, simulated once per settings.

    The hash covers the simulator settings and physics version, the split sizes and the seed, so
    a change in any gives a new dataset; a complete dataset is marked by ``done.json``.
    """
    key = json.dumps({"sim": asdict(sim), "splits": splits, "seed": seed, "physics": PHYSICS_VERSION}, sort_keys=True)
    root = cache_root() / "sim" / hashlib.sha1(key.encode()).hexdigest()[:12]
    if (root / "done.json").exists():
        return root
    simulate_splits(sim, root, splits, seed, workers=workers, progress=progress, resume=True)
    (root / "done.json").write_text(key + "\n")
    return root
