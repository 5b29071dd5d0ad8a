"""The output folder of ``voxgen simulate``: one simulation per folder, resumed when rerun.

A run checks its settings, then claims ``out``: a new or empty folder, or one that holds the
same simulation (a finished or killed run of the same settings, which is then resumed). The
run's ``config.yaml`` is written first, so a killed run's folder says what it holds; the
``manifest.json`` written at the end marks it finished.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from voxgen.config import flat_config
from voxgen.errors import ConfigError
from voxgen.io.atomic import write_text_atomic
from voxgen.io.pilarnet import LAYOUT_DATASETS
from voxgen.manifest import record_paths
from voxgen.sim.generator import shard_sizes

SPLITS = ("train", "val", "test")  # PILArNet-M's split folders, as voxgen.data.splits reads them
FREE_KEYS = ("out", "workers", "progress")  # may differ between a run and its resumption


def _count(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: need a whole number >= {minimum}, got {value!r}")
    return value


def check_settings(cfg: DictConfig) -> dict[str, int]:
    """Range-check the top-level keys of a simulate config; returns events per split."""
    if not isinstance(cfg.out, str) or not cfg.out:
        raise ConfigError(f"out: need an output folder, got {cfg.out!r}")
    _count("seed", cfg.seed, 0)
    _count("workers", cfg.workers, 0)
    _count("events_per_shard", cfg.events_per_shard, 1)
    if not isinstance(cfg.progress, bool):
        raise ConfigError(f"progress: need true or false, got {cfg.progress!r}")
    if cfg.layout not in LAYOUT_DATASETS:
        raise ConfigError(f"layout: unknown PILArNet-M layout {cfg.layout!r} (v1, v2)")
    if not isinstance(cfg.splits, DictConfig):
        raise ConfigError(f"splits: need events per split ({', '.join(SPLITS)}), got {cfg.splits!r}")
    splits = {}
    for name, n_events in cfg.splits.items():
        if name not in SPLITS:
            raise ConfigError(f"splits.{name}: unknown split (choose from {', '.join(SPLITS)})")
        splits[name] = _count(f"splits.{name}", n_events, 0)
    if not any(splits.values()):
        raise ConfigError("splits: every split has 0 events, nothing to simulate")
    return splits


def setting_differences(previous: DictConfig, current: DictConfig) -> list[str]:
    """``key=old (now key=new)`` for every key outside ``FREE_KEYS`` the two configs set differently."""
    old, new = flat_config(previous), flat_config(current)
    named = sorted(k for k in old.keys() | new.keys() if k.split(".")[0] not in FREE_KEYS)
    return [f"{k}={old.get(k, 'unset')} (now {k}={new.get(k, 'unset')})" for k in named if old.get(k) != new.get(k)]


def expected_files(splits: dict[str, int], mode: str, events_per_shard: int) -> set[str]:
    """Paths (relative to ``out``) of the files a finished simulation holds."""
    files = {"config.yaml", "manifest.json"}
    for split, n_events in splits.items():
        n_shards = len(shard_sizes(n_events, events_per_shard))
        files |= {f"{split}/{split}_{mode}_{k:03d}.h5" for k in range(n_shards)}
    return files


def _temporary_of(relative: Path) -> str | None:
    """The file a ``voxgen.io.atomic`` temporary (``.<name>.<random>.tmp``) was to become."""
    name = relative.name
    if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 3:
        return None
    return (relative.parent / name[1:-4].rsplit(".", 1)[0]).as_posix()


def _previous_config(out: Path) -> DictConfig | None:
    config = record_paths(out)[0]
    if not config.is_file():
        return None
    try:
        previous = OmegaConf.load(config)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):  # unreadable: not a simulation's record
        return None
    return previous if isinstance(previous, DictConfig) and "sim" in previous and "splits" in previous else None


def claim_folder(cfg: DictConfig, splits: dict[str, int], mode: str) -> None:
    """Make ``cfg.out`` this simulation's folder and write its ``config.yaml``.

    Refused with a ConfigError, before anything is written, when ``out`` is a file, holds a
    simulation with other settings, or holds files that are not this simulation's. Temporary
    files of a killed run are not in the way (``simulate_dataset`` removes those of shards).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file, not a folder")
    hint = "choose another out= or delete it"
    expected = expected_files(splits, mode, cfg.events_per_shard)
    present = sorted(p.relative_to(out) for p in out.rglob("*") if not p.is_dir()) if out.is_dir() else []
    temporaries = [p for p in present if _temporary_of(p) in expected]
    kept = [p for p in present if p.as_posix() in expected]
    foreign = [p for p in present if p not in temporaries and p not in kept]
    if kept or foreign:
        previous = _previous_config(out)
        if previous is None and (out / "config.yaml").exists():
            raise ConfigError(f"{out / 'config.yaml'} is not the config of a voxgen simulation: {hint}")
        if previous is None:
            raise ConfigError(f"{out} holds {(foreign or kept)[0].as_posix()} but no simulate config.yaml: {hint}")
        differences = setting_differences(previous, cfg)
        if differences:
            raise ConfigError(f"{out} holds a simulation with {', '.join(differences)}: {hint}")
        if foreign:
            raise ConfigError(f"{out} holds {foreign[0].as_posix()}, not part of its simulation: {hint}")
    for temporary in temporaries:
        if temporary.parent == Path("."):
            (out / temporary).unlink()
    write_text_atomic(record_paths(out)[0], OmegaConf.to_yaml(cfg, resolve=True))
