"""Sampling from a trained generator run: 2D crops (``vpsde2d``, ``pixelcnn2d``) or 3D events
(``flowmatch3d``, ``diffusion3d``).

Conditions: a particle name and momentum (MeV/c), or, where not given, pairs drawn from the
run's training crops (``conditions.npz``), so an unconditioned request reproduces the
training mix of species and momenta.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from voxgen.data.crops import CropSet
from voxgen.errors import BadInput, ConfigError
from voxgen.events import Event, Particle
from voxgen.generative.conditioning import particle_pid
from voxgen.io.atomic import atomic_path
from voxgen.train.loop import run_folder

GENERATORS_3D = ("flowmatch3d", "diffusion3d")
SAMPLEABLE = ("vpsde2d", "pixelcnn2d", *GENERATORS_3D)


@dataclass
class Generated:
    """``crops``: the samples as a CropSet (images MeV, no labels, the requested pid/momentum);
    ``seconds`` wall time of sampling; ``nfe`` network evaluations per image."""

    crops: CropSet
    seconds: float
    nfe: int


def save_conditions(path: Path, pid: np.ndarray, momentum: np.ndarray) -> None:
    """The training set's (pid, momentum) pairs, for unconditioned sampling requests."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, pid=np.asarray(pid, np.int64), momentum=np.nan_to_num(np.asarray(momentum, np.float32)))


def conditions(run: Path, n: int, particle: str | None, momentum: float | None,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(pid (n,), momentum (n,) MeV/c): the request, completed by draws from the run's training pairs."""
    with np.load(run / "conditions.npz") as table:
        pids, moms = table["pid"], table["momentum"]
    pid = np.full(n, particle_pid(particle)) if particle is not None else None
    if pid is None:
        pick = rng.integers(0, len(pids), n)
        pid, drawn = pids[pick], moms[pick]
    else:
        pool = moms[pids == pid[0]]
        drawn = rng.choice(pool, n) if len(pool) else np.full(n, 400.0, np.float32)
    if momentum is not None:
        if not momentum > 0:
            raise ConfigError(f"cond.momentum: {momentum} MeV/c is not positive")
        drawn = np.full(n, momentum, np.float32)
    return pid.astype(np.int64), drawn.astype(np.float32)


def sampleable_run(ckpt: str | Path) -> tuple[Path, DictConfig]:
    """(run folder, run config) of a generator run; BadInput naming ``ckpt`` otherwise."""
    run = run_folder(ckpt)
    if not (run / "config.yaml").is_file():
        raise BadInput(f"{ckpt}: not a training run (no config.yaml)")
    run_cfg = OmegaConf.load(run / "config.yaml")
    name = run_cfg.model.name
    if name not in SAMPLEABLE:
        raise BadInput(f"{ckpt}: a {name} run cannot sample (sampleable: {', '.join(SAMPLEABLE)}; "
                       f"a VQ-VAE samples through its PixelCNN prior: voxgen train conf=pixelcnn2d)")
    return run, run_cfg


def generate(ckpt: str | Path, n: int, seed: int = 0, device: str = "auto", particle: str | None = None,
             momentum: float | None = None, sampler: DictConfig | dict | None = None, steps: int | None = None,
             batch_size: int = 250, progress: bool = True) -> Generated:
    """``n`` crops from the run at ``ckpt`` (run folder or checkpoint). ``sampler`` overrides the
    run's sampler settings (``steps`` overrides their number of steps). Deterministic for a seed."""
    from voxgen.train.generators2d import (
        charge_transform,
        decoder_transform,
        load_run_model,
    )

    run, run_cfg = sampleable_run(ckpt)
    name = run_cfg.model.name
    if name in GENERATORS_3D:
        raise BadInput(f"{ckpt}: a {name} run samples events (generate_events), not crops")
    settings = OmegaConf.merge(run_cfg.sampler, sampler or {})
    model, cfg = load_run_model(ckpt, name, device, use_ema=settings.get("ema", True))
    if steps is not None:
        settings.steps = steps
    rng = np.random.default_rng(seed)
    pid, mom = conditions(run, n, particle, momentum, rng)
    gen = torch.Generator().manual_seed(seed)
    start, images, nfe = time.perf_counter(), [], 0
    if name == "vpsde2d":
        from voxgen.generative.solvers import SamplerConfig

        options = {k: v for k, v in OmegaConf.to_container(settings).items() if k != "ema"}
        transform, sample_cfg = charge_transform(cfg), SamplerConfig(**options)
    else:
        vqvae, vq_cfg = load_run_model(cfg.vqvae, "vqvae2d", device)
        transform = decoder_transform(run_folder(cfg.vqvae), vq_cfg)
        side = vq_cfg.data.size // 2 ** len(vq_cfg.model.enc_filters)
        code_shape = (side, side)
    for i in tqdm(range(0, n, batch_size), desc=f"sample {name}", unit="batch", disable=not progress):
        p, m = torch.from_numpy(pid[i:i + batch_size]), torch.from_numpy(mom[i:i + batch_size])
        with torch.no_grad():
            if name == "vpsde2d":
                x, nfe = model.sample(p, m, sample_cfg, size=cfg.data.size, generator=gen, progress=progress)
            else:
                codes = model.sample(p.to(next(model.parameters()).device), m.to(next(model.parameters()).device),
                                     shape=code_shape, temperature=settings.temperature, guidance=settings.guidance,
                                     generator=gen, progress=progress)
                x, nfe = vqvae.decode(codes), code_shape[0] * code_shape[1] * (2 if settings.guidance else 1)
            images.append(transform.to_charge(x)[:, 0].cpu().numpy())
    seconds = time.perf_counter() - start
    images = np.concatenate(images).astype(np.float32)
    crops = CropSet(images, np.zeros(images.shape, np.int64), -np.ones(n, np.int64), pid, mom)
    return Generated(crops, seconds, nfe)


@dataclass
class GeneratedEvents:
    """``events``: the samples (voxels on the autoencoder's crop grid, the requested pid/momentum
    as their particle truth); ``seconds`` wall time; ``nfe`` network evaluations per event."""

    events: list[Event]
    seconds: float
    nfe: int


def sample_events(model, autoencoder, pid: np.ndarray, momentum: np.ndarray, sampler, seed: int = 0,
                  batch_size: int = 50, progress: bool = True) -> GeneratedEvents:
    """One event per condition (``pid`` (n,), ``momentum`` (n,) MeV/c): latents from the latent
    generator ``model`` under ``sampler``, decoded by ``autoencoder``. Deterministic for a seed."""
    gen = torch.Generator().manual_seed(seed)
    device = next(autoencoder.parameters()).device
    start, events, nfe = time.perf_counter(), [], 0
    for i in tqdm(range(0, len(pid), batch_size), desc="sample events", unit="batch", disable=not progress):
        p, m = torch.from_numpy(pid[i:i + batch_size]), torch.from_numpy(momentum[i:i + batch_size])
        z, nfe = model.sample(p, m, sampler, generator=gen, progress=progress)
        decoded = autoencoder.decode(z.to(device), model.occupancy_threshold)
        nan3 = (float("nan"),) * 3
        events += [Event(c, e, particles=[Particle(int(a), float(b), nan3, nan3)], grid=autoencoder.grid)
                   for c, e, a, b in zip(decoded.coords, decoded.energy, p.tolist(), m.tolist())]
    return GeneratedEvents(events, time.perf_counter() - start, nfe)


def generate_events(ckpt: str | Path, n: int, seed: int = 0, device: str = "auto", particle: str | None = None,
                    momentum: float | None = None, sampler: DictConfig | dict | None = None,
                    progress: bool = True) -> GeneratedEvents:
    """``n`` events from the 3D generator run at ``ckpt``; ``sampler`` overrides the run's
    sampler settings (their occupancy level then recalibrated, ``recalibrate``); conditions as in
    ``conditions``."""
    from voxgen.models.latent3d import sampler_config
    from voxgen.train.generators3d import load_generator, recalibrate

    run, run_cfg = sampleable_run(ckpt)
    if run_cfg.model.name not in GENERATORS_3D:
        raise BadInput(f"{ckpt}: a {run_cfg.model.name} run samples crops (generate), not events")
    settings = OmegaConf.merge(run_cfg.sampler, sampler or {})
    model, ae, cfg = load_generator(ckpt, device, use_ema=settings.get("ema", True))
    pid, mom = conditions(run, n, particle, momentum, np.random.default_rng(seed))
    options = sampler_config(cfg.model.process, OmegaConf.to_container(settings))
    if OmegaConf.to_container(settings) != OmegaConf.to_container(run_cfg.sampler):
        model.occupancy_threshold = recalibrate(model, run, options, seed, cfg.calibration_samples)
    return sample_events(model, ae, pid, mom, options, seed, progress=progress)
