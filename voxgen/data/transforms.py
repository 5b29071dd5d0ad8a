"""Charge <-> model-space transforms for generative models of 2D charge images."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChargeTransform:
    """Pixel charge q (MeV) <-> model value x in [-1, 1]: x = 2 log1p(q/scale) / log1p(q_max/scale) - 1.

    Empty pixels map to -1; charges above ``q_max`` are clipped (0.1% of simulated crop pixels
    exceed 15 MeV). ``to_charge`` inverts and zeroes pixels below ``min_charge`` MeV, so
    generated images are as sparse as real ones (real crops have ~3% of their charged pixels
    below 0.05 MeV).
    """

    scale: float = 0.1
    q_max: float = 30.0
    min_charge: float = 0.05

    @property
    def _log_max(self) -> float:
        return math.log1p(self.q_max / self.scale)

    def to_model(self, charge: torch.Tensor) -> torch.Tensor:
        """(…) MeV -> (…) in [-1, 1]."""
        q = charge.clamp(0.0, self.q_max)
        return 2.0 * torch.log1p(q / self.scale) / self._log_max - 1.0

    def to_charge(self, x: torch.Tensor) -> torch.Tensor:
        """(…) model values -> (…) MeV, thresholded at ``min_charge``."""
        q = self.scale * torch.expm1((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * self._log_max)
        return torch.where(q >= self.min_charge, q, torch.zeros_like(q))
