"""Training recipes of the 3D generators: the sparse autoencoder (``conf=autoencoder3d``) and
the latent generators on its latent grid (``conf=flowmatch3d``, ``conf=diffusion3d``), which
train their autoencoder first unless given one, then sample, export, evaluate and report.
Each is ``(cfg, out, on_metrics) -> figures``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from voxgen.config import from_node
from voxgen.events import Event
from voxgen.io.atomic import write_text_atomic
from voxgen.models.latent3d import LatentGenerator3D, build_latent_generator, calibrate_occupancy, sampler_config
from voxgen.models.sparse_ae import SparseAutoencoder3D, build_autoencoder, reconstruction_scores_3d
from voxgen.models.ssnet3d import sparse_batch
from voxgen.sample import GENERATORS_3D, save_conditions
from voxgen.train.loop import MetricsCallback, TrainerConfig, load_weights, locate_run, resolve_device, seed_everything, train
from voxgen.train.ssnet3d import event_crops, fit_on_event_crops, flip_events


def event_conditions(events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """(pid (E,) int64, momentum (E,) float32 MeV/c) of each event's first particle; pid -1
    (the null condition) and momentum 0 where an event carries no truth."""
    first = [e.particles[0] if e.particles else None for e in events]
    pid = np.array([p.pid if p else -1 for p in first], np.int64)
    momentum = np.array([p.momentum if p and np.isfinite(p.momentum) else 0.0 for p in first], np.float32)
    return pid, momentum


def _finish(out: Path, figures: dict) -> dict:
    write_text_atomic(out / "metrics.json", json.dumps(figures, indent=2, default=float) + "\n")
    return figures


# ---------------------------------------------------------------- autoencoder
def train_autoencoder3d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train the sparse autoencoder on centred crops; held-out occupancy precision/recall/IoU and
    energy residuals; a held-out event and its reconstruction as PNGs."""
    from voxgen.viz.display import show_event

    seed_everything(cfg.trainer.seed)  # the initial weights too
    model, train_events, test_events, last = fit_on_event_crops(cfg, out, build_autoencoder(cfg.model), on_metrics)
    size = cfg.model.grid
    scores = reconstruction_scores_3d(model, test_events)
    shown = test_events[0]
    coords, energy, _, n = sparse_batch([shown])
    device = next(model.parameters()).device
    decoded = model.decode(model.encode(coords.to(device), energy.to(device), n))
    show_event(shown, out / "test_event.png", title="held-out event")
    show_event(Event(decoded.coords[0], decoded.energy[0], grid=size), out / "test_reconstruction.png",
               title="its reconstruction by the autoencoder")
    figures = {**scores, "latent_shape": [model.latent_channels] + [model.latent_grid] * 3,
               "train_events": len(train_events), "final_loss": last.get("loss"), "train_seconds": last.get("seconds")}
    return _finish(out, figures)


def load_autoencoder(path: str | Path, device: str = "auto") -> SparseAutoencoder3D:
    """The autoencoder of an ``autoencoder3d`` run folder (or one of its checkpoints)."""
    ckpt, cfg = locate_run(path, "autoencoder3d", "the 3D sparse autoencoder")
    return load_weights(ckpt, build_autoencoder(cfg.model), use_ema=cfg.trainer.ema_decay > 0).to(resolve_device(device)).eval()


@torch.no_grad()
def encode_events(model: SparseAutoencoder3D, events: list[Event], copies: int = 1, seed: int = 0,
                  batch_size: int = 16, progress: bool = True) -> torch.Tensor:
    """Latents (len(events) * copies, C, G, G, G) on the CPU: each event as it is, then
    ``copies`` - 1 randomly mirrored / axis-permuted versions of it (augmentation in event space,
    where it is a symmetry, rather than on the latent grid)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    latents = []
    for copy in range(copies):
        for start in tqdm(range(0, len(events), batch_size), desc=f"encode {copy + 1}/{copies}", disable=not progress, leave=False):
            chunk = events[start:start + batch_size]
            chunk = chunk if copy == 0 else flip_events(chunk, model.grid, gen)
            coords, energy, _, n = sparse_batch(chunk)
            latents.append(model.encode(coords.to(device), energy.to(device), n).cpu())
    return torch.cat(latents)


# ---------------------------------------------------------------- latent generators
def latent_batches(z: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor, batch_size: int,
                   seed: int) -> Callable[[int], object]:
    """``batches(epoch)``: shuffled (z, pid, momentum) batches, deterministic per epoch."""

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(z), generator=gen)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield z[idx], pid[idx], momentum[idx]

    return batches


def autoencoder_stage(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None) -> Path:
    """The autoencoder run the latent generator works on: ``cfg.autoencoder_run`` when given,
    else trained (or resumed) into ``<out>/autoencoder`` as an ``autoencoder3d`` run."""
    if cfg.autoencoder_run is not None:
        locate_run(cfg.autoencoder_run, "autoencoder3d", "the 3D sparse autoencoder")
        return Path(cfg.autoencoder_run)
    folder = out / "autoencoder"
    ae_cfg = OmegaConf.create({"data": cfg.data, **OmegaConf.to_container(cfg.autoencoder), "out": str(folder)})
    ae_cfg.trainer.device, ae_cfg.trainer.progress = cfg.trainer.device, cfg.trainer.progress
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(ae_cfg, resolve=True))
    print("stage 1: sparse autoencoder ->", folder)
    train_autoencoder3d(ae_cfg, folder, on_metrics)
    return folder


def ssnet3d_stage(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None):
    """The SSNet3D of the evaluation: none (``cfg.ssnet3d`` null), the run at ``cfg.ssnet3d``, or
    (``train``) the ``conf=ssnet3d`` CPU preset trained (or resumed) into ``<out>/ssnet3d``."""
    from voxgen.config import compose_config
    from voxgen.models.ssnet3d import load_ssnet3d
    from voxgen.train.ssnet3d import train_ssnet3d

    if cfg.ssnet3d is None:
        return None
    path = Path(cfg.ssnet3d)
    if cfg.ssnet3d == "train":
        path = out / "ssnet3d"
        ss_cfg = compose_config("ssnet3d", [f"out={path}"])
        ss_cfg.data, ss_cfg.trainer.device, ss_cfg.trainer.progress = cfg.data, cfg.trainer.device, cfg.trainer.progress
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / "config.yaml", OmegaConf.to_yaml(ss_cfg, resolve=True))
        if not (path / "metrics.json").is_file():
            print("SSNet3D for the evaluation ->", path)
            train_ssnet3d(ss_cfg, path, on_metrics)
    return load_ssnet3d(path, cfg.trainer.device)


def load_generator(path: str | Path, device: str = "auto", use_ema: bool = True
                   ) -> tuple[LatentGenerator3D, SparseAutoencoder3D, DictConfig]:
    """(latent generator, its autoencoder, run config) of a flowmatch3d / diffusion3d run."""
    from voxgen.errors import BadInput
    from voxgen.train.loop import run_folder

    run = run_folder(path)
    if not (run / "config.yaml").is_file():
        raise BadInput(f"{path}: not a training run (no config.yaml)")
    name = OmegaConf.load(run / "config.yaml").model.name
    if name not in GENERATORS_3D:
        raise BadInput(f"{path}: a {name} run, not a 3D generator ({', '.join(GENERATORS_3D)})")
    ckpt, cfg = locate_run(path, name)
    ae_path = cfg.autoencoder_run if cfg.autoencoder_run is not None else run / "autoencoder"
    ae = load_autoencoder(ae_path, device)
    model = build_latent_generator(cfg.model, ae.latent_channels, ae.latent_grid)
    model = load_weights(ckpt, model, use_ema=use_ema and cfg.trainer.ema_decay > 0)
    calibration = run / "calibration.json"
    if calibration.is_file():
        model.occupancy_threshold = json.loads(calibration.read_text())["occupancy_threshold"]
    return model.to(resolve_device(device)).eval(), ae, cfg


def recalibrate(model: LatentGenerator3D, run: Path, sampler, seed: int = 0, n: int = 100,
                fraction: float | None = None) -> float:
    """The occupancy level of ``sampler``'s latents for the generator run at ``run``, from ``n``
    draws of the run's training conditions (``conditions.npz``) and the training latents'
    occupied ``fraction`` (default: the one in the run's ``calibration.json``). The run's own
    sampler has its level in ``calibration.json``; other settings (fewer steps leave samples
    blurrier) need theirs."""
    if fraction is None:
        fraction = json.loads((run / "calibration.json").read_text())["training_occupied_fraction"]
    with np.load(run / "conditions.npz") as table:
        pick = np.random.default_rng(seed).permutation(len(table["pid"]))[:n]
        pid, momentum = torch.from_numpy(table["pid"][pick]), torch.from_numpy(table["momentum"][pick])
    return calibrate_occupancy(model, fraction, pid, momentum, sampler, seed)


def train_latent3d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Autoencoder (stage 1), latent generator (stage 2), then samples, exports, wire-plane
    projections, evaluation against held-out events and ``report.md`` (stage 3)."""
    from voxgen.evaluate.generators3d import generator_report

    trainer = from_node(TrainerConfig, cfg.trainer)
    ae_path = autoencoder_stage(cfg, out, on_metrics)
    device = resolve_device(trainer.device)
    ae = load_autoencoder(ae_path, trainer.device)
    train_events = event_crops(cfg.data, "train", ae.grid, trainer.progress)
    pid, momentum = event_conditions(train_events)
    save_conditions(out / "conditions.npz", pid, momentum)
    print(f"stage 2: latent {cfg.model.process} generator on {ae.latent_channels} x {ae.latent_grid}^3 latents -> {out}")
    z = encode_events(ae, train_events, cfg.latent_copies, trainer.seed, progress=trainer.progress)
    copies = len(z) // len(train_events)
    seed_everything(trainer.seed)
    model = build_latent_generator(cfg.model, ae.latent_channels, ae.latent_grid)
    model.set_scale(z)
    last = train(model, latent_batches(z, torch.from_numpy(np.tile(pid, copies)), torch.from_numpy(np.tile(momentum, copies)),
                                       cfg.batch_size, trainer.seed), trainer, out, on_metrics)
    occupied_fraction = float((z[:, 0] > 0).float().mean())
    del z
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0).to(device).eval()
    print("stage 3: calibration, samples, export, projections, evaluation ->", out)
    sampler = sampler_config(cfg.model.process, OmegaConf.to_container(cfg.sampler))
    model.occupancy_threshold = recalibrate(model, out, sampler, trainer.seed, cfg.calibration_samples, occupied_fraction)
    calibration = {"occupancy_threshold": model.occupancy_threshold, "training_occupied_fraction": occupied_fraction,
                   "samples": min(cfg.calibration_samples, len(pid)), "sampler": OmegaConf.to_container(cfg.sampler)}
    write_text_atomic(out / "calibration.json", json.dumps(calibration, indent=2) + "\n")
    figures = {"process": cfg.model.process, "train_events": len(train_events), "final_loss": last.get("loss"),
               "train_seconds": last.get("seconds"), "occupancy_threshold": model.occupancy_threshold}
    ae_metrics = Path(ae_path) / "metrics.json"
    if ae_metrics.is_file():
        figures["autoencoder"] = json.loads(ae_metrics.read_text())
    ssnet3d = ssnet3d_stage(cfg, out, on_metrics)
    figures.update(generator_report(cfg, out, model, ae, figures, ssnet3d))
    return _finish(out, figures)
