"""Charge <-> model-space transforms for generative models of 2D charge images."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from voxgen.config import from_node


@dataclass(frozen=True)
class ChargeTransform:
    """Pixel charge q (MeV) <-> model value x in [-1, 1].

    Empty pixels map to -1 and charged ones to x = -1 + gap + (2 - gap) log1p(q/scale) / log1p(q_max/scale),
    so with ``gap`` > 0 an empty pixel sits ``gap`` below the faintest charge. A generator's
    leftover noise then cannot light up an empty pixel: ``to_charge`` calls every value below the
    middle of the gap (-1 + gap/2) empty. Charges above ``q_max`` are clipped (0.1% of simulated
    crop pixels exceed 15 MeV). ``to_charge`` also zeroes pixels below ``min_charge`` MeV, so
    generated images are as sparse as real ones (real crops have ~3% of their charged pixels
    below 0.05 MeV).
    """

    scale: float = 0.1
    q_max: float = 30.0
    min_charge: float = 0.05
    gap: float = 0.0

    @property
    def _log_max(self) -> float:
        return math.log1p(self.q_max / self.scale)

    def to_model(self, charge: torch.Tensor) -> torch.Tensor:
        """(…) MeV -> (…) in [-1, 1]."""
        q = charge.clamp(0.0, self.q_max)
        x = -1.0 + self.gap + (2.0 - self.gap) * torch.log1p(q / self.scale) / self._log_max
        return torch.where(q > 0, x, torch.full_like(x, -1.0))

    def to_charge(self, x: torch.Tensor) -> torch.Tensor:
        """(…) model values -> (…) MeV, thresholded at the gap's middle and at ``min_charge``."""
        level = ((x.clamp(-1.0, 1.0) + 1.0 - self.gap) / (2.0 - self.gap)).clamp_min(0.0)
        q = self.scale * torch.expm1(level * self._log_max)
        charged = (q >= self.min_charge) & (x >= -1.0 + self.gap / 2)
        return torch.where(charged, q, torch.zeros_like(q))


def charge_transform(cfg: DictConfig) -> ChargeTransform:
    """The ``transform`` node of a recipe's config (``conf/vpsde2d.yaml``) as a ChargeTransform."""
    return from_node(ChargeTransform, cfg.transform)
