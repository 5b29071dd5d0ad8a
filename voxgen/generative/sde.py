"""The variance-preserving SDE (Song et al. 2021, arXiv:2011.13456), apart from any network; on
LArTPC crops as in Imani et al. (arXiv:2307.13687).

    dX_t = -1/2 beta(t) X_t dt + sqrt(beta(t)) dW_t,   beta(t) = beta_min + t (beta_max - beta_min),  t in [0, T]

Marginal: p(X_t | X_0) = N(X_0 exp(-1/2 int_0^t beta), (1 - exp(-int_0^t beta)) I), so X_T ~ N(0, I).
Reverse-time SDE: dX = [-1/2 beta X - beta grad log p_t(X)] dt + sqrt(beta) dW-bar; probability-flow
ODE: dX/dt = -1/2 beta X - 1/2 beta grad log p_t(X). A *score function* is any callable
``score(x, t) -> (B, ...)`` with ``t`` (B,) in (0, T].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from voxgen.generative.process import batch_expand, group_times, weighted_mean

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VPSDE:
    """Linear-beta VP-SDE; ``beta_min``/``beta_max`` per unit time, time horizon ``T``."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        """-1/2 int_0^t beta(s) ds."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) mean coefficient alpha_t of p(X_t | X_0) = N(alpha_t X_0, sigma_t^2 I)."""
        return self.log_mean_coeff(t).exp()

    def marginal(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (B, ...), std (B,)) of p(X_t | X_0 = x0) for times ``t`` (B,)."""
        return batch_expand(self.alpha(t), x0) * x0, self.std(t)

    def std(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) standard deviation of p(X_t | X_0)."""
        return torch.sqrt(-torch.expm1(2.0 * self.log_mean_coeff(t)))

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of X_t given X_0 = x0 with standard-normal ``noise``."""
        mean, std = self.marginal(x0, t)
        return mean + batch_expand(std, x0) * noise

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * batch_expand(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t))

    def prior_sample(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """X_T ~ N(0, I)."""
        return torch.randn(shape, generator=generator, device=device)

    def reverse_drift(self, score: ScoreFn, x: torch.Tensor, t: torch.Tensor, ode: bool = False) -> torch.Tensor:
        """f - g^2 score (reverse SDE) or f - 1/2 g^2 score (probability-flow ODE), in forward time."""
        weight = 0.5 if ode else 1.0
        return self.drift(x, t) - weight * batch_expand(self.beta(t), x) * score(x, t)


PREDICTIONS = ("noise", "v")


def noise_from_prediction(
    sde: VPSDE, prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The noise estimate z_hat of X_t = alpha_t X_0 + sigma_t z from a network output.

    ``noise``: the output is z_hat. ``v`` (Salimans & Ho 2022): the output is v_hat, an estimate
    of v = alpha_t z - sigma_t X_0, and z_hat = sigma_t X_t + alpha_t v_hat (alpha^2 + sigma^2 = 1).
    With ``v`` the identity z ~ X_t of high t is built in, so a net's small errors there cannot
    compound along a sampling trajectory.
    """
    if prediction == "noise":
        return out
    return batch_expand(sde.std(t), x_t) * x_t + batch_expand(sde.alpha(t), x_t) * out


def data_from_prediction(
    sde: VPSDE, prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The data estimate X_0_hat of X_t = alpha_t X_0 + sigma_t z from a network output: alpha_t X_t -
    sigma_t v_hat for ``v`` (stable at every t), (X_t - sigma_t z_hat) / alpha_t for ``noise``."""
    alpha, std = batch_expand(sde.alpha(t), x_t), batch_expand(sde.std(t), x_t)
    if prediction == "noise":
        return (x_t - std * out) / alpha.clamp_min(1e-3)
    return alpha * x_t - std * out


def denoising_score_loss(
    sde: VPSDE,
    network: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    prediction: str = "noise",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    groups: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoising score matching, t ~ U(eps, T); ``network(X_t, t)`` predicts ``prediction``.

    ``noise``: || z_hat - z ||^2, which is sigma_t^2 || s - (-(X_t - mu_t) / sigma_t^2) ||^2 with the
    score s = -z_hat / sigma_t: the score-matching loss of Imani et al. with Song et al.'s weighting
    that keeps every t on one scale. ``v``: || v_hat - v ||^2 = || z_hat - z ||^2 / alpha_t^2, which
    weights high t more (the global layout of an image is decided there). t is drawn per row of
    ``x0``, or per group of rows with ``groups`` (N,) int64. Returns the mean over rows, weighted by
    ``weights`` (N,) when given (scalar).
    """
    b = x0.shape[0]
    t = group_times(x0, generator, groups) * (sde.T - eps) + eps
    z = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device)
    out = network(sde.perturb(x0, t, z), t)
    if prediction == "noise":
        target = z
    else:
        target = batch_expand(sde.alpha(t), x0) * z - batch_expand(sde.std(t), x0) * x0
    return weighted_mean(((out - target) ** 2).reshape(b, -1).mean(dim=1), weights)
