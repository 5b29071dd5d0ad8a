"""Training of the 3D event generator (stage 1 of ``conf=flowmatch3d`` / ``conf=diffusion3d``,
whose whole job is ``voxgen.pipelines.generators3d``): the cascade generator
(``voxgen.models.cascade3d``) on centred crops of the training events."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from voxgen.config import from_node
from voxgen.data.batches import event_batches
from voxgen.data.event_crops import event_conditions, event_crops
from voxgen.models.cascade3d import SparseCascade3D, build_cascade3d
from voxgen.runs import load_weights, resolve_device, save_conditions
from voxgen.train.loop import MetricsCallback, TrainerConfig, seed_everything, train


def train_generator3d(
    cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None
) -> tuple[SparseCascade3D, dict]:
    """Train the generator of ``cfg.model`` on the ``cfg.model.grid``^3 crops of the training
    split (``conditions.npz`` of the training events beside it) and reload its final (EMA)
    weights: (generator in eval mode, figures)."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    grid = cfg.model.grid
    train_events = event_crops(cfg.data, "train", grid, trainer.progress)
    pid, momentum = event_conditions(train_events)
    save_conditions(out, pid, momentum)
    seed_everything(trainer.seed)
    model = build_cascade3d(cfg.model)
    model.set_scale(train_events)
    print(
        f"stage 1: {cfg.model.process} cascade generator, {model.levels} levels from a {model.top}^3 top grid "
        f"to {grid}^3 voxels -> {out}"
    )
    batches = event_batches(train_events, cfg.batch_size, trainer.seed, grid, cfg.augment, (pid, momentum))
    last = train(model, batches, trainer, out, on_metrics)
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    figures = {
        "process": cfg.model.process,
        "levels": model.levels,
        "train_events": len(train_events),
        "final_loss": last.get("loss"),
        "train_seconds": last.get("seconds"),
    }
    return model.to(resolve_device(trainer.device)).eval(), figures
