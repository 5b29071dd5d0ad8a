"""Sparse-convolution autoencoder of 3D events: a sparse encoder to a dense latent grid
``stride`` = 2^L times coarser than the crop, and a generative decoder that rebuilds the voxels
level by level.

Encoder: submanifold residual blocks and L stride-2 convolutions, then a linear map to
``feature_channels`` and tanh. The latent z (B, 1 + C, G/s, G/s, G/s) is a fixed-size tensor a
latent generator can model: channel 0 says which coarse sites the event occupies (+1, else -1),
channels 1..C carry the features there (0 elsewhere). The explicit occupancy channel keeps "empty"
a definite value far from any occupied site's, so a generator's small errors cannot light up
empty space. Gaussian noise of std ``latent_noise`` on z while training makes the decoder
tolerate a generator's imprecision.

Decoder: the coarse sites are those with channel 0 > 0; dense convolutions on z give their
features, which become a sparse tensor, and at each of the L levels a generative transposed convolution proposes the 8
children of every site, a residual block mixes them and an occupancy head prunes them (trained
against the true occupancy of that level, with the true sites kept while training - teacher
forcing). Decoding keeps each site's expected number of children (``keep_children``). At level 0
an energy head gives each voxel's energy. Energies in model space e = log1p(E / energy_scale),
E in MeV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxgen.data.batches import SparseBatch, sparse_batch
from voxgen.events import Event
from voxgen.nn.sparse import get_backend, match_coordinates
from voxgen.nn.sparse.unet import SparseResBlock

MIN_ENERGY = 1e-3  # MeV: the least energy a decoded voxel carries (a voxel is there because charge is)


def level_sites(coords: torch.Tensor, level: int) -> torch.Tensor:
    """(K, 4) distinct sites of level ``level`` (indices // 2^level) holding any of ``coords`` (M, 4)."""
    c = coords.long().clone()
    c[:, 1:] = torch.div(c[:, 1:], 2**level, rounding_mode="floor")
    return torch.unique(c, dim=0).int()


def keep_sites(score: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """(N,) bool: sites with a positive occupancy ``score``, and each event's highest-scoring
    site, so no event present in ``batch`` (N,) vanishes."""
    keep = score > 0
    if len(score):
        n_events = int(batch.max()) + 1
        best = torch.full((n_events,), -torch.inf, device=score.device).scatter_reduce(0, batch, score, "amax")
        keep |= score >= best[batch]
    return keep


def keep_children(logits: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N,) bool over proposed children (``coords`` (N, 4), the 8 children of each parent): each
    parent keeps its k = max(1, round(sum of its children's occupancy probabilities)) likeliest
    children - the expected number of voxels, and at least one, since an occupied parent has an
    occupied child. A threshold would drop every parent whose children are each uncertain (the
    fine texture a stride-8 latent cannot pin down); independent draws would scatter them."""
    parent = coords.long().clone()
    parent[:, 1:] = torch.div(parent[:, 1:], 2, rounding_mode="floor")
    _, group = torch.unique(parent, dim=0, return_inverse=True)
    p = torch.sigmoid(logits)
    expected = torch.zeros(int(group.max()) + 1 if len(group) else 0, device=p.device).index_add_(0, group, p)
    k = expected.round().clamp_min(1)
    order = torch.argsort(group * 2.0 - p, stable=True)  # by parent, then likeliest first (p in [0, 1))
    sorted_group = group[order]
    first = torch.searchsorted(sorted_group, sorted_group)  # position of each parent's first child
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(group), device=group.device) - first
    return rank < k[group]


class DenseBlock3d(nn.Module):
    """conv3-GroupNorm-SiLU twice plus the input (dense, on the latent grid)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        norm = lambda: nn.GroupNorm(min(8, channels), channels)
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, 3, padding=1),
            norm(),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, padding=1),
            norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.body(x) + x)


@dataclass
class Decoded:
    """Per-event voxels of a decoded batch."""

    coords: list[np.ndarray]  # (N_b, 3) int32 voxel indices per event
    energy: list[np.ndarray]  # (N_b,) float32 MeV per event


class SparseAutoencoder3D(nn.Module):
    """Events on a ``grid``^3 crop <-> latents (B, 1 + ``feature_channels``, grid/2^L, ...) with
    L = len(widths) - 1; ``latent_noise`` std of the noise on z while training; ``context_width``
    channels of the decoder's dense stack on the latent grid (default ``widths[-1]``)."""

    def __init__(
        self,
        backend: str = "spconv",
        widths: tuple[int, ...] = (16, 32, 64, 64),
        feature_channels: int = 8,
        grid: int = 128,
        energy_scale: float = 0.1,
        latent_noise: float = 0.1,
        energy_weight: float = 1.0,
        context_width: int | None = None,
    ) -> None:
        super().__init__()
        b = get_backend(backend)
        self.backend_name, self.widths, self.grid = backend, tuple(widths), grid
        self.levels = len(widths) - 1
        self.stride = 2**self.levels
        if grid % self.stride:
            raise ValueError(f"grid {grid} is not a multiple of the latent stride {self.stride}")
        self.latent_grid, self.latent_channels = grid // self.stride, 1 + feature_channels
        self.energy_scale, self.latent_noise = energy_scale, latent_noise
        self.energy_weight = energy_weight
        w = self.widths
        # encoder
        self.stem = nn.Sequential(
            b.conv(1, w[0], 3, key="enc0"), b.norm(w[0]), b.activation(), SparseResBlock(b, w[0], w[0], "enc0")
        )
        self.down = nn.ModuleList(
            nn.Sequential(
                b.conv(w[k], w[k + 1], stride=2, key=f"down{k}"),
                b.norm(w[k + 1]),
                b.activation(),
                SparseResBlock(b, w[k + 1], w[k + 1], f"enc{k + 1}"),
            )
            for k in range(self.levels)
        )
        self.to_latent = nn.Sequential(b.linear(w[-1], feature_channels), b.activation("tanh"))
        # decoder
        cw = context_width or w[-1]
        self.dense = nn.Sequential(
            nn.Conv3d(self.latent_channels, cw, 3, padding=1),
            nn.SiLU(),
            DenseBlock3d(cw),
            DenseBlock3d(cw),
            *([nn.Conv3d(cw, w[-1], 1)] if cw != w[-1] else []),
        ).to(memory_format=torch.channels_last_3d)  # NDHWC: cheaper 3D convolutions on CPU
        self.up = nn.ModuleList(
            nn.Sequential(
                b.conv_transpose(w[k + 1], w[k], stride=2),
                b.norm(w[k]),
                b.activation(),
                SparseResBlock(b, w[k], w[k], f"dec{k}"),
            )
            for k in range(self.levels)
        )
        self.occupancy = nn.ModuleList(b.linear(w[k], 1) for k in range(self.levels))
        self.energy_head = b.linear(w[0], 1)
        self.backend = b

    # ---------------------------------------------------------------- encoder
    def encode(self, coords: torch.Tensor, energy: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Latent z (B, 1 + C, G, G, G) of a batch (coords (M, 4), energy (M, 1) MeV): occupancy
        +1/-1, then features (0 off the event)."""
        b = self.backend
        x = b.tensor(torch.log1p(energy / self.energy_scale), coords, (self.grid,) * 3, batch_size)
        x = self.stem(x)
        for down in self.down:
            x = down(x)
        x = self.to_latent(x)
        occupied = b.to_dense(b.with_feats(x, torch.ones_like(b.feats(x)[:, :1])))
        return torch.cat([2 * occupied - 1, b.to_dense(x)], dim=1)

    # ---------------------------------------------------------------- decoder
    def _sparse_coarse(self, h: torch.Tensor, sites: torch.Tensor):
        """The sparse tensor of the dense features ``h`` at ``sites`` (K, 4), on the latent level."""
        s = sites.long()
        feats = h.permute(0, 2, 3, 4, 1)[s[:, 0], s[:, 1], s[:, 2], s[:, 3]]
        return self.backend.tensor(feats, sites, (self.latent_grid,) * 3, h.shape[0], stride=self.stride)

    def loss(self, batch: SparseBatch) -> dict[str, torch.Tensor]:
        """Occupancy cross-entropy at every level below the latent + energy MSE (model space) of a
        batch (coords (M, 4), energy (M, 1) MeV, labels (unused), B)."""
        coords, energy, _, batch_size = batch
        b = self.backend
        z = self.encode(coords, energy, batch_size)
        z_in = z + self.latent_noise * torch.randn_like(z) if self.training else z
        x = self._sparse_coarse(self.dense(z_in), level_sites(coords, self.levels))
        occupancy = {}
        for level in reversed(range(self.levels)):
            x = self.up[level](x)
            logits = b.feats(self.occupancy[level](x))[:, 0]
            true_here = match_coordinates(b.coords(x), level_sites(coords, level).to(coords.device)) >= 0
            occupancy[f"occ{level}"] = F.binary_cross_entropy_with_logits(logits, true_here.float())
            x = b.prune(x, true_here)
        rows = match_coordinates(coords, b.coords(x))  # every true voxel survives teacher forcing
        predicted = b.feats(self.energy_head(x))[rows, 0]
        energy_loss = F.mse_loss(predicted, torch.log1p(energy[:, 0] / self.energy_scale))
        total = sum(occupancy.values()) + self.energy_weight * energy_loss
        return {"loss": total, **occupancy, "energy": energy_loss, "latent_rms": z[:, 1:].pow(2).mean().sqrt().detach()}

    @torch.no_grad()
    def decode(self, z: torch.Tensor, occupancy_threshold: float = 0.0) -> Decoded:
        """Voxels of each latent in ``z`` (B, 1 + C, G, G, G): the coarse sites with channel 0 above
        ``occupancy_threshold`` (0, midway between -1 and +1, for encoded events; a generator's
        calibrated level for its samples), then at every finer level the expected number of each
        site's children (``keep_children``). Deterministic."""
        b = self.backend
        h = self.dense(z)
        flat = z[:, 0].reshape(-1)
        index = torch.arange(len(flat), device=z.device)
        g = self.latent_grid
        all_sites = torch.stack([index // g**3, index // g**2 % g, index // g % g, index % g], dim=1)
        sites = all_sites[keep_sites(flat - occupancy_threshold, all_sites[:, 0])].int()
        x = self._sparse_coarse(h, sites)
        for level in reversed(range(self.levels)):
            x = self.up[level](x)
            logits = b.feats(self.occupancy[level](x))[:, 0]
            x = b.prune(x, keep_children(logits, b.coords(x)))
        e = b.feats(self.energy_head(x))[:, 0]
        energy = (self.energy_scale * torch.expm1(e)).clamp_min(MIN_ENERGY).cpu().numpy().astype(np.float32)
        coords = b.coords(x).cpu().numpy()
        events = coords[:, 0]
        return Decoded(
            [coords[events == i, 1:].astype(np.int32) for i in range(z.shape[0])],
            [energy[events == i] for i in range(z.shape[0])],
        )


@torch.no_grad()
def reconstruction_scores_3d(model: SparseAutoencoder3D, events: list[Event], batch_size: int = 8) -> dict:
    """Held-out reconstruction: voxel occupancy precision, recall and IoU (summed over events);
    the ratio of reconstructed to true voxels; the relative total-energy residual
    (E_rec - E) / E per event (mean, std); the median per-voxel energy residual |E_rec - E| / E
    of matched voxels; and the same occupancy figures at the latent's own level (coarse sites)."""
    model.eval()
    device = next(model.parameters()).device
    tp = n_true = n_pred = coarse_tp = coarse_true = coarse_pred = 0
    total, voxel = [], []
    with_batch = lambda c: torch.from_numpy(np.pad(c, ((0, 0), (1, 0))))
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        coords, energy, _, n = sparse_batch(chunk)
        decoded = model.decode(model.encode(coords.to(device), energy.to(device), n))
        for event, rc, re in zip(chunk, decoded.coords, decoded.energy):
            match = match_coordinates(with_batch(event.coords), with_batch(rc)).numpy()
            hit = match >= 0
            tp, n_true, n_pred = tp + int(hit.sum()), n_true + len(event), n_pred + len(rc)
            total.append((re.sum() - event.energy.sum()) / event.energy.sum())
            voxel.append(np.abs(re[match[hit]] - event.energy[hit]) / event.energy[hit])
            true_coarse = np.unique(event.coords // model.stride, axis=0)
            rec_coarse = np.unique(rc // model.stride, axis=0)
            coarse_tp += int((match_coordinates(with_batch(true_coarse), with_batch(rec_coarse)) >= 0).sum())
            coarse_true, coarse_pred = coarse_true + len(true_coarse), coarse_pred + len(rec_coarse)
    voxel = np.concatenate(voxel)
    return {
        "occupancy_precision": tp / max(n_pred, 1),
        "occupancy_recall": tp / max(n_true, 1),
        "occupancy_iou": tp / max(n_true + n_pred - tp, 1),
        "voxel_count_ratio": n_pred / max(n_true, 1),
        "total_energy_residual_mean": float(np.mean(total)),
        "total_energy_residual_std": float(np.std(total)),
        "voxel_energy_residual_median": float(np.median(voxel)) if len(voxel) else None,
        "coarse_occupancy_precision": coarse_tp / max(coarse_pred, 1),
        "coarse_occupancy_recall": coarse_tp / max(coarse_true, 1),
        "test_events": len(events),
    }


def build_autoencoder(m) -> SparseAutoencoder3D:
    """SparseAutoencoder3D from its ``model`` config node (``conf/model/autoencoder3d.yaml``)."""
    return SparseAutoencoder3D(
        backend=m.backend,
        widths=tuple(m.widths),
        feature_channels=m.feature_channels,
        grid=m.grid,
        energy_scale=m.energy_scale,
        latent_noise=m.latent_noise,
        energy_weight=m.energy_weight,
        context_width=m.get("context_width"),
    )
