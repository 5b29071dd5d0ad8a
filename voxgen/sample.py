"""Sampling from a trained generator run: 2D crops (``vpsde2d``, ``pixelcnn2d``) or 3D events
(``flowmatch3d``, ``diffusion3d``).

Conditions: a particle name and momentum (MeV/c), or, where not given, pairs drawn from the
run's training set (``conditions.npz``, ``voxgen.runs.conditions``), so an unconditioned
request reproduces the training mix of species and momenta.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from voxgen.data.crops import CropSet
from voxgen.data.transforms import charge_transform
from voxgen.errors import BadInput, ConfigError
from voxgen.events import Event, Particle
from voxgen.generative.conditioning import PARTICLES, particle_pid
from voxgen.generative.process import SamplerSettings
from voxgen.models.cascade3d import SparseCascade3D
from voxgen.runs import (
    conditions,
    decoder_transform,
    load_model,
    model_spec,
    sampleable_run,
    training_conditions,
)

# the files ``voxgen sample`` writes into its output folder (``events.parquet`` may be a shard folder)
OUTPUT_NAMES = ("samples.npz", "samples.png", "events.parquet", "events.h5", "event_000.png")


def requested_momentum(value: Any) -> float | None:
    """``cond.momentum`` in MeV/c (None: drawn from the training mix); ConfigError naming the
    key unless a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"cond.momentum: {value!r} is not a number (a momentum in MeV/c, or null: the training mix)")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"cond.momentum: {value!r} MeV/c is not positive and finite")
    return float(value)


def condition_warnings(run: str | Path, particle: str | None, momentum: float | None) -> list[str]:
    """One line per requested condition outside the run's training conditions (``conditions.npz``):
    a particle it never saw, a momentum (MeV/c) outside the range it saw for that particle (for
    any particle when none is requested, or the requested one never appeared)."""
    pids, moms = training_conditions(run)
    names = {pid: name for name, pid in PARTICLES.items()}
    seen = pids >= 0
    lines, label = [], "any particle"
    if particle is not None:
        pid = particle_pid(particle)
        if np.any(pids == pid):
            seen, label = pids == pid, names[pid]
        else:
            trained = ", ".join(names[p] for p in np.unique(pids[seen])) or "no particle type"
            lines.append(f"cond.particle: the run never saw a {names[pid]} in training (it saw {trained})")
    known = moms[seen & (moms > 0)]
    if momentum is not None and len(known) and not known.min() <= momentum <= known.max():
        lines.append(
            f"cond.momentum: {momentum:g} MeV/c lies outside the {known.min():.0f}-{known.max():.0f} MeV/c the run "
            f"saw for {label} in training; samples are an extrapolation"
        )
    return lines


def print_warnings(lines: list[str]) -> None:
    """Each line on stderr as ``voxgen sample: warning: <line>``."""
    for line in lines:
        print(f"voxgen sample: warning: {line}", file=sys.stderr)


def previous_outputs(out: Path) -> list[Path]:
    """The files a previous ``voxgen sample`` wrote into the folder ``out``: its run record
    (``manifest.json`` first, ``config.yaml``) and the "outputs" its manifest lists that carry one
    of ``OUTPUT_NAMES``, found in ``out`` by name (wherever that run was started from).
    ConfigError naming ``out`` when its manifest is another command's."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return []
    try:
        record = json.loads(manifest.read_text())
        command, listed = record["command"], list(record["outputs"])
    except (OSError, ValueError, TypeError, KeyError):
        raise ConfigError(f"out: {out} holds a manifest.json voxgen did not write; choose another out=") from None
    if command != "sample":
        raise ConfigError(f"out: {out} holds the outputs of voxgen {command}; choose another out=")
    found = [manifest, out / "config.yaml"]
    for path in map(Path, listed):
        inside = Path(path.parent.name, path.name) if path.parent.name == "events.parquet" else Path(path.name)
        if inside.parts[0] in OUTPUT_NAMES:
            found.append(out / inside)
    return [path for path in found if path.is_file()]


def remove_outputs(out: Path, paths: list[Path]) -> None:
    """Delete ``paths`` (``previous_outputs``) from ``out``, then its ``events.parquet`` shard
    folder once empty."""
    for path in paths:
        path.unlink(missing_ok=True)
    shards = out / "events.parquet"
    if shards.is_dir() and not any(shards.iterdir()):
        shards.rmdir()


@dataclass
class Generated:
    """``crops``: the samples as a CropSet (images MeV, no labels, the requested pid/momentum);
    ``seconds`` wall time of sampling; ``nfe`` network evaluations per image."""

    crops: CropSet
    seconds: float
    nfe: int


def _settings(run_cfg: DictConfig, sampler: DictConfig | dict | None) -> DictConfig:
    """The run's sampler settings overridden by ``sampler``."""
    return OmegaConf.merge(run_cfg.sampler, sampler or {})


def generate(
    ckpt: str | Path,
    n: int,
    seed: int = 0,
    device: str = "auto",
    particle: str | None = None,
    momentum: float | None = None,
    sampler: DictConfig | dict | None = None,
    steps: int | None = None,
    batch_size: int = 250,
    progress: bool = True,
) -> Generated:
    """``n`` crops from the run at ``ckpt`` (run folder or checkpoint). ``sampler`` overrides the
    run's sampler settings (``steps`` overrides their number of steps). Deterministic for a seed."""
    run, run_cfg = sampleable_run(ckpt)
    name = run_cfg.model.name
    if model_spec(name).samples != "crops":
        raise BadInput(f"{ckpt}: a {name} run samples events (generate_events), not crops")
    settings = _settings(run_cfg, sampler)
    if steps is not None:
        settings.steps = steps
    model, cfg = load_model(ckpt, name, device, use_ema=settings.ema)
    rng = np.random.default_rng(seed)
    pid, mom = conditions(run, n, particle, requested_momentum(momentum), rng)
    gen = torch.Generator().manual_seed(seed)
    start, images, nfe = time.perf_counter(), [], 0
    if name == "vpsde2d":
        transform, options = charge_transform(cfg), model.process.sampler_settings(OmegaConf.to_container(settings))
    else:
        vqvae, vq_cfg = load_model(cfg.vqvae, "vqvae2d", device)
        transform = decoder_transform(cfg.vqvae, vq_cfg)
        side = vq_cfg.data.size // 2 ** len(vq_cfg.model.enc_filters)
        code_shape = (side, side)
    for i in tqdm(range(0, n, batch_size), desc=f"sample {name}", unit="batch", disable=not progress):
        p, m = torch.from_numpy(pid[i : i + batch_size]), torch.from_numpy(mom[i : i + batch_size])
        with torch.no_grad():
            if name == "vpsde2d":
                x, nfe = model.sample(p, m, options, size=cfg.data.size, generator=gen, progress=progress)
            else:
                codes = model.sample(
                    p.to(next(model.parameters()).device),
                    m.to(next(model.parameters()).device),
                    shape=code_shape,
                    temperature=settings.temperature,
                    guidance=settings.guidance,
                    generator=gen,
                    progress=progress,
                )
                x, nfe = vqvae.decode(codes), code_shape[0] * code_shape[1] * (2 if settings.guidance else 1)
            images.append(transform.to_charge(x)[:, 0].cpu().numpy())
    seconds = time.perf_counter() - start
    images = np.concatenate(images).astype(np.float32)
    crops = CropSet(images, np.zeros(images.shape, np.int64), -np.ones(n, np.int64), pid, mom)
    return Generated(crops, seconds, nfe)


@dataclass
class GeneratedEvents:
    """``events``: the samples (voxels on the generator's crop grid, the requested pid/momentum
    as their particle truth); ``seconds`` wall time; ``nfe`` network evaluations per event."""

    events: list[Event]
    seconds: float
    nfe: int


def sample_events(
    model: SparseCascade3D,
    pid: np.ndarray,
    momentum: np.ndarray,
    sampler: SamplerSettings,
    seed: int = 0,
    batch_size: int = 50,
    progress: bool = True,
) -> GeneratedEvents:
    """One event per condition (``pid`` (n,), ``momentum`` (n,) MeV/c) from the generator ``model``
    under ``sampler``. Deterministic for a seed."""
    gen = torch.Generator().manual_seed(seed)
    start, events, nfe = time.perf_counter(), [], 0
    nan3 = (float("nan"),) * 3
    for i in tqdm(range(0, len(pid), batch_size), desc="sample events", unit="batch", disable=not progress):
        p, m = torch.from_numpy(pid[i : i + batch_size]), torch.from_numpy(momentum[i : i + batch_size])
        coords, energy, nfe = model.sample(p, m, sampler, generator=gen, progress=progress)
        events += [
            Event(c, e, particles=[Particle(int(a), float(b), nan3, nan3)], grid=model.grid)
            for c, e, a, b in zip(coords, energy, p.tolist(), m.tolist())
        ]
    return GeneratedEvents(events, time.perf_counter() - start, nfe)


def generate_events(
    ckpt: str | Path,
    n: int,
    seed: int = 0,
    device: str = "auto",
    particle: str | None = None,
    momentum: float | None = None,
    sampler: DictConfig | dict | None = None,
    progress: bool = True,
) -> GeneratedEvents:
    """``n`` events from the 3D generator run at ``ckpt``; ``sampler`` overrides the run's
    sampler settings; conditions as in ``voxgen.runs.conditions``."""
    run, run_cfg = sampleable_run(ckpt)
    if model_spec(run_cfg.model.name).samples != "events":
        raise BadInput(f"{ckpt}: a {run_cfg.model.name} run samples crops (generate), not events")
    settings = _settings(run_cfg, sampler)
    model, _ = load_model(ckpt, run_cfg.model.name, device, use_ema=settings.ema)
    pid, mom = conditions(run, n, particle, requested_momentum(momentum), np.random.default_rng(seed))
    options = model.process.sampler_settings(OmegaConf.to_container(settings))
    return sample_events(model, pid, mom, options, seed, progress=progress)
