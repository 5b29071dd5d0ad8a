"""A training run on disk: find it, read its config and weights, build its model by name
through the one registry (``MODELS``), and read and write its calibration and conditions files.

A run folder holds ``config.yaml`` (the resolved config), ``checkpoints/last.pt`` (resumable,
``voxgen.train.loop``), ``metrics.csv``/``metrics.json``, and by model: ``calibration.json``
(a VQ-VAE's decoding threshold) and ``conditions.npz`` (the
training set's particle/momentum pairs a generator draws unconditioned requests from).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from voxgen.data.transforms import ChargeTransform, charge_transform
from voxgen.errors import BadInput, ConfigError
from voxgen.generative.conditioning import particle_pid
from voxgen.io.atomic import atomic_path, write_text_atomic
from voxgen.models.cascade3d import build_cascade3d
from voxgen.models.pixelcnn2d import build_pixelcnn2d
from voxgen.models.score2d import build_score2d
from voxgen.models.ssnet2d import build_ssnet2d
from voxgen.models.ssnet3d import build_ssnet3d
from voxgen.models.vqvae2d import build_vqvae2d


@dataclass(frozen=True)
class ModelSpec:
    """What voxgen knows of a model name: ``build(model config node, **context)`` makes the
    network; ``recipe`` (``module:function``, imported on use) trains it from a composed config;
    ``samples`` says what ``voxgen sample`` draws from a run of it (crops, events, or nothing);
    ``label`` names it in messages."""

    build: Callable[..., nn.Module]
    recipe: str
    samples: str | None
    label: str


MODELS: dict[str, ModelSpec] = {
    "ssnet2d": ModelSpec(build_ssnet2d, "voxgen.train.ssnet2d:train_ssnet2d", None, "SSNet2D"),
    "vqvae2d": ModelSpec(build_vqvae2d, "voxgen.train.generators2d:train_vqvae2d", None, "the VQ-VAE"),
    "pixelcnn2d": ModelSpec(
        build_pixelcnn2d, "voxgen.pipelines.generators2d:train_pixelcnn2d", "crops", "the PixelCNN prior"
    ),
    "vpsde2d": ModelSpec(
        build_score2d, "voxgen.pipelines.generators2d:train_vpsde2d", "crops", "the VP-SDE score model"
    ),
    "ssnet3d": ModelSpec(build_ssnet3d, "voxgen.train.ssnet3d:train_ssnet3d", None, "SSNet3D"),
    "flowmatch3d": ModelSpec(
        build_cascade3d, "voxgen.pipelines.generators3d:generator3d_job", "events", "the 3D flow generator"
    ),
    "diffusion3d": ModelSpec(
        build_cascade3d, "voxgen.pipelines.generators3d:generator3d_job", "events", "the 3D diffusion generator"
    ),
}
SAMPLEABLE = tuple(name for name, spec in MODELS.items() if spec.samples)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ConfigError naming the known ones otherwise."""
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model '{name}' (have {', '.join(MODELS)})")
    return MODELS[name]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' asked for but CUDA is not available")
    return torch.device(name)


def run_folder(path: str | Path) -> Path:
    """The run folder of ``path``: the folder itself, or the run holding checkpoint ``path``."""
    path = Path(path)
    return path if path.is_dir() else path.parent.parent


def run_config(path: str | Path) -> tuple[Path, DictConfig]:
    """(run folder, its config) of a run folder or checkpoint; BadInput naming ``path`` otherwise."""
    run = run_folder(path)
    if not (run / "config.yaml").is_file():
        raise BadInput(f"{path}: not a training run (no config.yaml)")
    return run, OmegaConf.load(run / "config.yaml")


def locate_run(path: str | Path, name: str) -> tuple[Path, DictConfig]:
    """(checkpoint path, run config) of a ``voxgen train conf=<name>`` run, given its folder (its
    ``checkpoints/last.pt``) or one of its checkpoints; BadInput naming ``path`` otherwise."""
    path, run = Path(path), run_folder(path)
    ckpt = run / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ckpt.is_file() or not (run / "config.yaml").is_file():
        raise BadInput(
            f"{path}: not a training run of {model_spec(name).label} (need config.yaml and "
            f"checkpoints/last.pt; train one with `voxgen train conf={name}`)"
        )
    cfg = OmegaConf.load(run / "config.yaml")
    if cfg.model.name != name:
        raise BadInput(f"{path}: run of model '{cfg.model.name}', not {name}")
    return ckpt, cfg


def load_weights(path: str | Path, model: nn.Module, use_ema: bool = True) -> nn.Module:
    """Load a checkpoint's weights (its EMA weights when present and ``use_ema``)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if use_ema and payload.get("ema"):
        ema_state = {k.removeprefix("module."): v for k, v in payload["ema"].items() if k.startswith("module.")}
        model.load_state_dict(ema_state)
    else:
        model.load_state_dict(payload["model"])
    return model


def load_model(
    path: str | Path, name: str, device: str = "auto", use_ema: bool = True, **context: Any
) -> tuple[nn.Module, DictConfig]:
    """(model in eval mode on ``device``, run config) of a ``name`` run folder or checkpoint; the
    EMA weights when the run kept them and ``use_ema``. ``context``: what the builder needs
    besides the config."""
    ckpt, cfg = locate_run(path, name)
    model = load_weights(ckpt, model_spec(name).build(cfg.model, **context), use_ema=use_ema)
    return model.to(resolve_device(device)).eval(), cfg


def sampleable_run(path: str | Path) -> tuple[Path, DictConfig]:
    """(run folder, run config) of a generator run; BadInput naming ``path`` otherwise."""
    run, cfg = run_config(path)
    name = cfg.model.name
    if name not in SAMPLEABLE:
        raise BadInput(
            f"{path}: a {name} run cannot sample (sampleable: {', '.join(SAMPLEABLE)}; "
            f"a VQ-VAE samples through its PixelCNN prior: voxgen train conf=pixelcnn2d)"
        )
    return run, cfg


# ---------------------------------------------------------------- calibration.json
def read_calibration(run: str | Path) -> dict | None:
    """The run's ``calibration.json``, or None when it has none."""
    path = Path(run) / "calibration.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_calibration(run: str | Path, calibration: dict) -> None:
    write_text_atomic(Path(run) / "calibration.json", json.dumps(calibration, indent=2) + "\n")


def decoder_transform(run: str | Path, cfg: DictConfig) -> ChargeTransform:
    """A VQ-VAE run's charge transform with its calibrated threshold (``calibration.json``) when present."""
    transform, calibration = charge_transform(cfg), read_calibration(run_folder(run))
    return replace(transform, min_charge=calibration["min_charge"]) if calibration else transform


# ---------------------------------------------------------------- conditions.npz
def save_conditions(run: str | Path, pid: np.ndarray, momentum: np.ndarray) -> None:
    """The training set's (pid (N,), momentum (N,) MeV/c) pairs, for unconditioned sampling requests."""
    with atomic_path(Path(run) / "conditions.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, pid=np.asarray(pid, np.int64), momentum=np.nan_to_num(np.asarray(momentum, np.float32)))


def training_conditions(run: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(pid (N,) int64, momentum (N,) float32 MeV/c) of the run's training set."""
    with np.load(Path(run) / "conditions.npz") as table:
        return table["pid"], table["momentum"]


def conditions(
    run: str | Path, n: int, particle: str | None, momentum: float | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(pid (n,), momentum (n,) MeV/c): the request, completed by draws from the run's training pairs."""
    pids, moms = training_conditions(run)
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
