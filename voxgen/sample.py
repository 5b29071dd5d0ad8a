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
from voxgen.shards import ShardMap, blocks, local_shards

# the files ``voxgen sample`` writes into its output folder (``events.parquet`` may be a shard folder)
OUTPUT_NAMES = ("samples.npz", "samples.png", "events.parquet", "events.h5", "event_000.png")

EVENT_BLOCK = 50  # events drawn per sampling batch, each batch from its own seed (``block_seed``)
CROP_BLOCK = 250  # crops drawn per sampling batch


def block_seed(seed: int, block: int) -> int:
    """The seed of sampling batch ``block`` of a request with ``seed``: batches are independent
    streams, so a batch's samples do not depend on where (or after which others) it is drawn."""
    return int(np.random.SeedSequence([seed, block]).generate_state(1)[0])


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


@dataclass
class _CropDrawer:
    """What one sampling batch of crops needs: the run's model (``vpsde2d`` score model, or
    ``pixelcnn2d`` prior with its VQ-VAE ``decoder``), the charge ``transform`` and the settings."""

    name: str
    model: Any
    transform: Any
    options: Any
    size: int
    decoder: Any = None
    code_shape: tuple[int, int] = (0, 0)
    progress: bool = False  # the sampler's own progress bar per batch


def _draw_crops(drawer: _CropDrawer, item: tuple) -> tuple[np.ndarray, int]:
    """(crops (b, H, W) MeV, network evaluations per crop) of one batch ``item`` = (pid, momentum, seed)."""
    pid, momentum, seed = item
    p, m, gen = torch.from_numpy(pid), torch.from_numpy(momentum), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if drawer.name == "vpsde2d":
            x, nfe = drawer.model.sample(
                p, m, drawer.options, size=drawer.size, generator=gen, progress=drawer.progress
            )
        else:
            device = next(drawer.model.parameters()).device
            codes = drawer.model.sample(
                p.to(device),
                m.to(device),
                shape=drawer.code_shape,
                temperature=drawer.options.temperature,
                guidance=drawer.options.guidance,
                generator=gen,
                progress=drawer.progress,
            )
            x = drawer.decoder.decode(codes)
            nfe = drawer.code_shape[0] * drawer.code_shape[1] * (2 if drawer.options.guidance else 1)
    return drawer.transform.to_charge(x)[:, 0].cpu().numpy(), nfe


def generate(
    ckpt: str | Path,
    n: int,
    seed: int = 0,
    device: str = "auto",
    particle: str | None = None,
    momentum: float | None = None,
    sampler: DictConfig | dict | None = None,
    steps: int | None = None,
    progress: bool = True,
    shards: ShardMap = local_shards,
) -> Generated:
    """``n`` crops from the run at ``ckpt`` (run folder or checkpoint). ``sampler`` overrides the
    run's sampler settings (``steps`` overrides their number of steps). Batches of ``CROP_BLOCK``
    drawn by ``shards`` (here, or as Ray tasks). Deterministic for a seed, wherever they run."""
    run, run_cfg = sampleable_run(ckpt)
    name = run_cfg.model.name
    if model_spec(name).samples != "crops":
        raise BadInput(f"{ckpt}: a {name} run samples events (generate_events), not crops")
    settings = _settings(run_cfg, sampler)
    if steps is not None:
        settings.steps = steps
    model, cfg = load_model(ckpt, name, device, use_ema=settings.ema)
    pid, mom = conditions(run, n, particle, requested_momentum(momentum), np.random.default_rng(seed))
    if name == "vpsde2d":
        options = model.process.sampler_settings(OmegaConf.to_container(settings))
        drawer = _CropDrawer(name, model, charge_transform(cfg), options, cfg.data.size)
    else:
        vqvae, vq_cfg = load_model(cfg.vqvae, "vqvae2d", device)
        side = vq_cfg.data.size // 2 ** len(vq_cfg.model.enc_filters)
        transform = decoder_transform(cfg.vqvae, vq_cfg)
        drawer = _CropDrawer(name, model, transform, settings, vq_cfg.data.size, vqvae, (side, side))
    drawer.progress = progress and shards is local_shards  # Ray tasks draw quietly
    start = time.perf_counter()
    items = [(pid[b], mom[b], block_seed(seed, i)) for i, b in enumerate(blocks(n, CROP_BLOCK))]
    drawn = shards(_draw_crops, drawer, items, desc=f"sample {name}", progress=progress)
    seconds = time.perf_counter() - start
    images = np.concatenate([x for x, _ in drawn]).astype(np.float32)
    crops = CropSet(images, np.zeros(images.shape, np.int64), -np.ones(n, np.int64), pid, mom)
    return Generated(crops, seconds, drawn[-1][1])


@dataclass
class GeneratedEvents:
    """``events``: the samples (voxels on the generator's crop grid, the requested pid/momentum
    as their particle truth); ``seconds`` wall time; ``nfe`` network evaluations per event."""

    events: list[Event]
    seconds: float
    nfe: int


def _draw_events(shared: tuple[SparseCascade3D, SamplerSettings, bool], item: tuple) -> tuple[list[Event], int]:
    """(events, network evaluations per event) of one sampling batch ``item`` = (pid, momentum,
    seed); ``shared`` = (model, sampler, whether the solver shows its progress bar)."""
    model, sampler, progress = shared
    pid, momentum, seed = item
    p, m = torch.from_numpy(pid), torch.from_numpy(momentum)
    gen = torch.Generator().manual_seed(seed)
    coords, energy, nfe = model.sample(p, m, sampler, generator=gen, progress=progress)
    nan3 = (float("nan"),) * 3
    events = [
        Event(c, e, particles=[Particle(int(a), float(b), nan3, nan3)], grid=model.grid)
        for c, e, a, b in zip(coords, energy, p.tolist(), m.tolist())
    ]
    return events, nfe


def sample_events(
    model: SparseCascade3D,
    pid: np.ndarray,
    momentum: np.ndarray,
    sampler: SamplerSettings,
    seed: int = 0,
    progress: bool = True,
    shards: ShardMap = local_shards,
) -> GeneratedEvents:
    """One event per condition (``pid`` (n,), ``momentum`` (n,) MeV/c) from the generator ``model``
    under ``sampler``, in batches of ``EVENT_BLOCK`` drawn by ``shards`` (here, or as Ray tasks).
    Deterministic for a seed, wherever the batches run."""
    start = time.perf_counter()
    items = [(pid[b], momentum[b], block_seed(seed, i)) for i, b in enumerate(blocks(len(pid), EVENT_BLOCK))]
    inner = progress and shards is local_shards  # solver bars of batches drawn here; Ray tasks draw quietly
    drawn = shards(_draw_events, (model, sampler, inner), items, desc="sample events", progress=progress)
    events = [event for batch, _ in drawn for event in batch]
    return GeneratedEvents(events, time.perf_counter() - start, drawn[-1][1] if drawn else 0)


def generate_events(
    ckpt: str | Path,
    n: int,
    seed: int = 0,
    device: str = "auto",
    particle: str | None = None,
    momentum: float | None = None,
    sampler: DictConfig | dict | None = None,
    progress: bool = True,
    shards: ShardMap = local_shards,
) -> GeneratedEvents:
    """``n`` events from the 3D generator run at ``ckpt``; ``sampler`` overrides the run's
    sampler settings; conditions as in ``voxgen.runs.conditions``; batches drawn by ``shards``."""
    run, run_cfg = sampleable_run(ckpt)
    if model_spec(run_cfg.model.name).samples != "events":
        raise BadInput(f"{ckpt}: a {run_cfg.model.name} run samples crops (generate), not events")
    settings = _settings(run_cfg, sampler)
    model, _ = load_model(ckpt, run_cfg.model.name, device, use_ema=settings.ema)
    pid, mom = conditions(run, n, particle, requested_momentum(momentum), np.random.default_rng(seed))
    options = model.process.sampler_settings(OmegaConf.to_container(settings))
    return sample_events(model, pid, mom, options, seed, progress=progress, shards=shards)
