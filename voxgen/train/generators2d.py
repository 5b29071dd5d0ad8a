"""Training stages of the 2D generators: the VQ-VAE and its PixelCNN prior (Lutkus et al.,
arXiv:2204.02496) and the VP-SDE score model (Imani et al., arXiv:2307.13687). Each is
``(cfg, out, on_metrics) -> figures``; ``voxgen.pipelines.generators2d`` adds the preview samples."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from voxgen.config import from_node, required
from voxgen.data.batches import tensor_batches
from voxgen.data.crops import CropSet, crop_sets
from voxgen.data.transforms import ChargeTransform, charge_transform
from voxgen.errors import BadInput
from voxgen.models.pixelcnn2d import build_pixelcnn2d
from voxgen.models.score2d import build_score2d
from voxgen.models.vqvae2d import build_vqvae2d
from voxgen.runs import load_model, load_weights, resolve_device, save_conditions, write_calibration
from voxgen.train.loop import MetricsCallback, TrainerConfig, seed_everything, train, write_metrics
from voxgen.viz.display import crop_grid


def model_space(crops: CropSet, transform: ChargeTransform) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (N, 1, H, W) in [-1, 1], pid (N,) int64, momentum (N,) float32 MeV/c) of a crop set."""
    x = transform.to_model(torch.from_numpy(crops.images))[:, None]
    return (
        x,
        torch.from_numpy(crops.pid.astype(np.int64)),
        torch.from_numpy(np.nan_to_num(crops.momentum).astype(np.float32)),
    )


# ---------------------------------------------------------------- VQ-VAE
@torch.no_grad()
def reconstruction_scores(
    model, x: torch.Tensor, transform: ChargeTransform, truth: ChargeTransform, batch_size: int = 256
) -> dict:
    """Held-out reconstruction: MSE in model space, charged-pixel precision/recall (real pixels
    through ``truth``, decoded ones through ``transform`` and its threshold), relative
    total-charge error, codebook usage and perplexity."""
    device = next(model.parameters()).device
    model.eval()
    mse, counts, tp, n_true, n_pred, q_true, q_pred = 0.0, None, 0, 0, 0, [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        codes = model.encode(xb)
        rec = model.decode(codes)
        mse += float(((rec - xb) ** 2).sum())
        hist = torch.bincount(codes.flatten(), minlength=model.quantizer.n_codes).cpu()
        counts = hist if counts is None else counts + hist
        qt, qp = truth.to_charge(xb), transform.to_charge(rec)
        tp += int(((qt > 0) & (qp > 0)).sum())
        n_true += int((qt > 0).sum())
        n_pred += int((qp > 0).sum())
        q_true.append(qt.sum(dim=(1, 2, 3)).cpu())
        q_pred.append(qp.sum(dim=(1, 2, 3)).cpu())
    p = counts.double() / counts.sum()
    qt, qp = torch.cat(q_true), torch.cat(q_pred)
    return {
        "mse": mse / x.numel(),
        "pixel_precision": tp / max(n_pred, 1),
        "pixel_recall": tp / max(n_true, 1),
        "charge_rel_error_median": float(((qp - qt).abs() / qt.clamp_min(1e-6)).median()),
        "codes_used": int((counts > 0).sum()),
        "perplexity": float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())),
    }


THRESHOLDS_MEV = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


@torch.no_grad()
def calibrate_threshold(model, x: torch.Tensor, transform: ChargeTransform) -> float:
    """The decoder's empty-pixel threshold (MeV) among ``THRESHOLDS_MEV`` whose reconstructions of
    ``x`` (N, 1, H, W) have as many charged pixels as ``x`` itself. A VQ-VAE decodes tracks
    blurred over their neighbours (Lutkus et al. saw the same); without this its samples carry about
    2.6 times the real number of charged pixels at the 0.05 MeV default."""
    device = next(model.parameters()).device
    rec = torch.cat([model.decode(model.encode(x[i : i + 256].to(device))).cpu() for i in range(0, len(x), 256)])
    real = int((transform.to_charge(x) > 0).sum())
    counts = [int((replace(transform, min_charge=t).to_charge(rec) > 0).sum()) for t in THRESHOLDS_MEV]
    return THRESHOLDS_MEV[int(np.argmin([abs(np.log(max(c, 1) / real)) for c in counts]))]


def train_vqvae2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train the VQ-VAE on crops; calibrate its decoding threshold on training crops
    (``calibration.json``); held-out reconstruction figures and a reconstruction grid."""

    trainer = from_node(TrainerConfig, cfg.trainer)
    transform = charge_transform(cfg)
    sets = crop_sets(cfg.data, ("train", "test"), out / "data", progress=trainer.progress)
    seed_everything(trainer.seed)  # the initial weights too
    model = build_vqvae2d(cfg.model)
    train_set = model_space(sets["train"], transform)
    train(model, tensor_batches(train_set, cfg.batch_size, trainer.seed, cfg.augment), trainer, out, on_metrics)
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    model.to(resolve_device(trainer.device)).eval()
    threshold = calibrate_threshold(model, train_set[0][:2000], transform)
    write_calibration(out, {"min_charge": threshold})
    decoded = replace(transform, min_charge=threshold)
    x_test = model_space(sets["test"], transform)[0]
    scores = {**reconstruction_scores(model, x_test, decoded, transform), "calibrated_min_charge": threshold}
    with torch.no_grad():
        rec = decoded.to_charge(model.decode(model.encode(x_test[:8].to(next(model.parameters()).device)))).cpu()
    crop_grid(np.concatenate([sets["test"].images[:8], rec[:, 0].numpy()]), out_png=out / "reconstructions.png")
    return write_metrics(out, {**scores, "train_crops": len(sets["train"]), "test_crops": len(sets["test"])})


# ---------------------------------------------------------------- PixelCNN prior
@torch.no_grad()
def encode_crops(vqvae, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Code maps (N, h, w) int64 of images x (N, 1, H, W)."""
    device = next(vqvae.parameters()).device
    return torch.cat([vqvae.encode(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def train_pixelcnn2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train the gated PixelCNN prior on the code maps of a trained VQ-VAE (``cfg.vqvae``)."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    vqvae, vq_cfg = load_model(
        required(cfg, "vqvae", "a VQ-VAE run: voxgen train conf=vqvae2d"), "vqvae2d", trainer.device
    )
    if cfg.model.n_codes != vq_cfg.model.n_codes:
        raise BadInput(f"model.n_codes {cfg.model.n_codes} differs from the VQ-VAE's codebook ({vq_cfg.model.n_codes})")
    transform = charge_transform(vq_cfg)
    sets = crop_sets(vq_cfg.data, ("train", "test"), Path(cfg.vqvae) / "data", progress=trainer.progress)
    codes = {}
    for split, crops in sets.items():
        x, pid, momentum = model_space(crops, transform)
        codes[split] = (encode_crops(vqvae, x), pid, momentum)
    save_conditions(out, sets["train"].pid, sets["train"].momentum)
    seed_everything(trainer.seed)
    model = build_pixelcnn2d(cfg.model)
    train(model, tensor_batches(codes["train"], cfg.batch_size, trainer.seed, cfg.augment), trainer, out, on_metrics)
    model = load_weights(out / "checkpoints" / "last.pt", model, use_ema=trainer.ema_decay > 0)
    model.to(resolve_device(trainer.device)).eval()
    with torch.no_grad():
        test_loss = [
            float(model.loss(tuple(t[i : i + 256].to(next(model.parameters()).device) for t in codes["test"]))["loss"])
            for i in range(0, len(codes["test"][0]), 256)
        ]
    figures = {
        "test_nats_per_code": float(np.mean(test_loss)),
        "code_map": list(codes["train"][0].shape[1:]),
        "train_crops": len(sets["train"]),
    }
    return figures


# ---------------------------------------------------------------- VP-SDE score model
def train_vpsde2d(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Train the conditional VP-SDE score model on crops."""
    trainer = from_node(TrainerConfig, cfg.trainer)
    sets = crop_sets(cfg.data, ("train",), out / "data", progress=trainer.progress)
    save_conditions(out, sets["train"].pid, sets["train"].momentum)
    seed_everything(trainer.seed)
    model = build_score2d(cfg.model)
    last = train(
        model,
        tensor_batches(model_space(sets["train"], charge_transform(cfg)), cfg.batch_size, trainer.seed, cfg.augment),
        trainer,
        out,
        on_metrics,
    )
    figures = {"final_loss": last.get("loss"), "train_seconds": last.get("seconds"), "train_crops": len(sets["train"])}
    return figures
