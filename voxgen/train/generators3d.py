"""Training stages of the 3D generators: the sparse autoencoder (``conf=autoencoder3d``) and the
latent generator on its latent grid (stage 2 of ``conf=flowmatch3d`` / ``conf=diffusion3d``,
whose whole job is ``voxgen.pipelines.generators3d``). Each is ``(cfg, out, ...) -> figures``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from voxgen.config import from_node
from voxgen.data.batches import flip_events, sparse_batch, tensor_batches
from voxgen.data.event_crops import event_conditions, event_crops
from voxgen.events import Event
from voxgen.models.latent3d import LatentGenerator3D, build_latent_generator
from voxgen.models.sparse_ae import SparseAutoencoder3D, build_autoencoder, reconstruction_scores_3d
from voxgen.runs import load_weights, resolve_device, save_conditions
from voxgen.train.loop import MetricsCallback, TrainerConfig, seed_everything, train, write_metrics
from voxgen.train.ssnet3d import fit_on_event_crops
from voxgen.viz.display import show_event


# ---------------------------------------------------------------- autoencoder
def train_autoencoder3d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train the sparse autoencoder on centred crops; held-out occupancy precision/recall/IoU and
    energy residuals; a held-out event and its reconstruction as PNGs."""
    seed_everything(cfg.trainer.seed)  # the initial weights too
    model, train_events, test_events, last = fit_on_event_crops(cfg, out, build_autoencoder(cfg.model), on_metrics)
    scores = reconstruction_scores_3d(model, test_events)
    shown = test_events[0]
    coords, energy, _, n = sparse_batch([shown])
    device = next(model.parameters()).device
    decoded = model.decode(model.encode(coords.to(device), energy.to(device), n))
    show_event(shown, out / "test_event.png", title="held-out event")
    show_event(
        Event(decoded.coords[0], decoded.energy[0], grid=cfg.model.grid),
        out / "test_reconstruction.png",
        title="its reconstruction by the autoencoder",
    )
    figures = {
        **scores,
        "latent_shape": [model.latent_channels] + [model.latent_grid] * 3,
        "train_events": len(train_events),
        "final_loss": last.get("loss"),
        "train_seconds": last.get("seconds"),
    }
    return write_metrics(out, figures)


@torch.no_grad()
def encode_events(
    model: SparseAutoencoder3D,
    events: list[Event],
    copies: int = 1,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
) -> torch.Tensor:
    """Latents (len(events) * copies, C, G, G, G) on the CPU: each event as it is, then
    ``copies`` - 1 randomly mirrored / axis-permuted versions of it (augmentation in event space,
    where it is a symmetry, rather than on the latent grid)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    latents = []
    for copy in range(copies):
        for start in tqdm(
            range(0, len(events), batch_size), desc=f"encode {copy + 1}/{copies}", disable=not progress, leave=False
        ):
            chunk = events[start : start + batch_size]
            chunk = chunk if copy == 0 else flip_events(chunk, model.grid, gen)
            coords, energy, _, n = sparse_batch(chunk)
            latents.append(model.encode(coords.to(device), energy.to(device), n).cpu())
    return torch.cat(latents)


# ---------------------------------------------------------------- latent generator
def train_latent_generator(
    cfg: DictConfig, out: Path, autoencoder: SparseAutoencoder3D, on_metrics: MetricsCallback | None = None
) -> tuple[LatentGenerator3D, dict, float]:
    """Encode the training crops with ``autoencoder``, train the latent generator of
    ``cfg.model`` on them (``conditions.npz`` of the training events beside it) and reload its
    final (EMA) weights: (generator in eval mode, figures, the share of occupied coarse sites
    in the training latents)."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    train_events = event_crops(cfg.data, "train", autoencoder.grid, trainer.progress)
    pid, momentum = event_conditions(train_events)
    save_conditions(out, pid, momentum)
    print(
        f"stage 2: latent {cfg.model.process} generator on {autoencoder.latent_channels} x "
        f"{autoencoder.latent_grid}^3 latents -> {out}"
    )
    z = encode_events(autoencoder, train_events, cfg.latent_copies, trainer.seed, progress=trainer.progress)
    copies = len(z) // len(train_events)
    seed_everything(trainer.seed)
    model = build_latent_generator(cfg.model, autoencoder.latent_channels, autoencoder.latent_grid)
    model.set_scale(z)
    conditions = (torch.from_numpy(np.tile(pid, copies)), torch.from_numpy(np.tile(momentum, copies)))
    last = train(model, tensor_batches((z, *conditions), cfg.batch_size, trainer.seed), trainer, out, on_metrics)
    occupied_fraction = float((z[:, 0] > 0).float().mean())
    del z
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    figures = {
        "process": cfg.model.process,
        "train_events": len(train_events),
        "final_loss": last.get("loss"),
        "train_seconds": last.get("seconds"),
    }
    return model.to(resolve_device(trainer.device)).eval(), figures, occupied_fraction
