"""SSNet3D: a sparse residual U-Net that labels every voxel of a 3D event with its semantic
class (shower, track, Michel, delta ray, low-energy deposit), and whose bottleneck features,
averaged per event, give the yardstick its SSNet3D-FID."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxgen.data.batches import SparseBatch, sparse_batch
from voxgen.events import SEMANTIC_NAMES, Event, centred_crop
from voxgen.nn.sparse import get_backend, match_coordinates
from voxgen.nn.sparse.unet import SparseUNet

N_CLASSES = len(SEMANTIC_NAMES)


class SSNet3D(nn.Module):
    """``SparseUNet`` on ``backend`` over a ``grid``^3 crop; input log1p(E / ``energy_scale``)."""

    def __init__(
        self,
        backend: str = "spconv",
        widths: tuple[int, ...] = (16, 32, 64, 128),
        blocks: int = 1,
        grid: int = 128,
        energy_scale: float = 0.1,
        class_weights: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.backend_name, self.grid, self.energy_scale, self.widths = backend, grid, energy_scale, tuple(widths)
        self.net = SparseUNet(get_backend(backend), 1, N_CLASSES, tuple(widths), blocks)
        self.register_buffer("class_weights", torch.tensor(class_weights or [1.0] * N_CLASSES, dtype=torch.float32))

    @property
    def backend(self):
        return self.net.backend

    def forward(self, coords: torch.Tensor, energy: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (M, 5) in the rows of ``coords``, event features (B, C) = bottleneck mean)."""
        b = self.backend
        x = b.tensor(torch.log1p(energy / self.energy_scale), coords, (self.grid,) * 3, batch_size)
        out, bottom = self.net(x)
        logits = b.feats(out)[match_coordinates(coords, b.coords(out))]
        feats, index = b.feats(bottom), b.coords(bottom)[:, 0].long()
        pooled = torch.zeros(batch_size, feats.shape[1], device=feats.device).index_add_(0, index, feats)
        counts = torch.bincount(index, minlength=batch_size).clamp_min(1).unsqueeze(1)
        return logits, pooled / counts

    def loss(self, batch: SparseBatch) -> dict[str, torch.Tensor]:
        coords, energy, labels, batch_size = batch
        logits, _ = self(coords, energy, batch_size)
        loss = F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=-1)
        known = labels >= 0
        return {"loss": loss, "accuracy": (logits.argmax(1)[known] == labels[known]).float().mean()}


@torch.no_grad()
def predict_events(model: SSNet3D, events: Sequence[Event], batch_size: int = 8) -> tuple[list[np.ndarray], np.ndarray]:
    """(per-event voxel class predictions, event features (E, C)) of events already in the model's grid."""
    model.eval()
    device = next(model.parameters()).device
    labels, features = [], []
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        coords, energy, _, n = sparse_batch(chunk)
        logits, pooled = model(coords.to(device), energy.to(device), n)
        pred = logits.argmax(1).cpu().numpy()
        bounds = np.cumsum([0] + [len(e) for e in chunk])
        labels += [pred[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        features.append(pooled.cpu().numpy())
    return labels, np.concatenate(features) if features else np.zeros((0, model.widths[-1]), np.float32)


def build_ssnet3d(m) -> SSNet3D:
    """SSNet3D from its ``model`` config node (``conf/model/ssnet3d.yaml``)."""
    return SSNet3D(
        backend=m.backend,
        widths=tuple(m.widths),
        blocks=m.blocks,
        grid=m.grid,
        energy_scale=m.energy_scale,
        class_weights=tuple(m.class_weights) if m.class_weights else None,
    )


def ssnet3d_features(model: SSNet3D, events: Sequence[Event]) -> tuple[np.ndarray, np.ndarray]:
    """(event features (E, C), class fractions (E, 5)) of events, each cropped to the model's grid."""
    crops = [centred_crop(e, model.grid) for e in events]
    labels, features = predict_events(model, crops)
    fractions = np.stack([np.bincount(lab, minlength=N_CLASSES) / max(len(lab), 1) for lab in labels])
    return features, fractions
