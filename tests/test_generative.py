"""The VP-SDE, its samplers, conditioning with classifier-free guidance, and the score model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxgen.data.transforms import ChargeTransform
from voxgen.errors import ConfigError
from voxgen.generative.conditioning import NULL_PID, ConditionEmbedding, drop_condition, particle_pid
from voxgen.generative.guidance import classifier_free
from voxgen.generative.score_sde import ScoreSDE
from voxgen.generative.sde import VPSDE, denoising_score_loss, noise_from_prediction
from voxgen.generative.solvers import SamplerConfig, euler_maruyama, predictor_corrector, probability_flow
from voxgen.models.score2d import ScoreModel2D

SDE = VPSDE(0.1, 20.0)
DATA_MEAN, DATA_STD = 2.0, 0.5


def exact_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Score of the VP-SDE marginal when the data are N(DATA_MEAN, DATA_STD^2)."""
    a = SDE.log_mean_coeff(t).exp()[:, None]
    return -(x - a * DATA_MEAN) / (a**2 * DATA_STD**2 + 1 - a**2)


def test_vp_marginals_follow_the_closed_form():
    t = torch.tensor([1e-3, 0.5, 1.0])
    # -1/2 int_0^t beta = -(0.1 t + 9.95 t^2) / 2
    assert torch.allclose(SDE.log_mean_coeff(t), -(0.1 * t + 9.95 * t**2) / 2)
    assert SDE.std(torch.tensor([1.0])).item() == pytest.approx(1.0, abs=1e-4)  # X_T ~ N(0, I)
    x0 = torch.full((20000, 1), DATA_MEAN)
    g = torch.Generator().manual_seed(0)
    xt = SDE.perturb(x0, torch.full((20000,), 0.3), torch.randn(x0.shape, generator=g))
    mean, std = SDE.marginal(x0[:1], torch.tensor([0.3]))
    assert xt.mean().item() == pytest.approx(mean.item(), abs=0.02)
    assert xt.std().item() == pytest.approx(std.item(), abs=0.02)


@pytest.mark.parametrize(
    "solve, kwargs, nfe",
    [
        (euler_maruyama, {"steps": 300}, 300),
        (predictor_corrector, {"steps": 150}, 300),
        (probability_flow, {"method": "rk4", "steps": 40}, 160),
    ],
)
def test_samplers_recover_a_known_distribution(solve, kwargs, nfe):
    """With the exact score, every sampler turns N(0, 1) into the data's N(2, 0.5^2)."""
    g = torch.Generator().manual_seed(1)
    x = SDE.prior_sample((8000, 1), g)
    extra = {} if solve is probability_flow else {"generator": g}
    y, used = solve(SDE, exact_score, x, **kwargs, **extra)
    assert used == nfe
    assert y.mean().item() == pytest.approx(DATA_MEAN, abs=0.03)
    assert y.std().item() == pytest.approx(DATA_STD, abs=0.03)


def test_adaptive_ode_counts_its_evaluations():
    x = SDE.prior_sample((500, 1), torch.Generator().manual_seed(2))
    y, nfe = probability_flow(SDE, exact_score, x, rtol=1e-5, atol=1e-5)
    assert 20 < nfe < 500
    assert y.mean().item() == pytest.approx(DATA_MEAN, abs=0.05)


def test_euler_maruyama_is_seed_003s_update():
    """Two steps by hand: mu = x + [-beta x / 2 - beta s] dt, x' = mu + z sqrt(-beta dt)."""
    score = lambda x, t: -x
    x = torch.tensor([[0.7]])
    g = torch.Generator().manual_seed(3)
    out, _ = euler_maruyama(SDE, score, x, steps=2, eps=1e-3, generator=torch.Generator().manual_seed(3))
    dt = -(1.0 - 1e-3)
    beta = SDE.beta(torch.tensor(1.0))
    x1 = x + (-0.5 * beta * x + beta * x) * dt + torch.randn((1, 1), generator=g) * torch.sqrt(-beta * dt)
    beta = SDE.beta(torch.tensor(1e-3))
    assert torch.allclose(out, x1 + (-0.5 * beta * x1 + beta * x1) * dt)


def test_denoising_loss_is_zero_for_the_true_noise_only():
    """The oracle that recovers z from X_t = mu_t + sigma_t z scores 0; predicting 0 scores E[z^2] = 1
    (the mean of 16,384 squared normals: standard error 0.011, so 0.05 is 4.5 standard errors)."""
    x0 = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    oracle = lambda xt, tt: (xt - SDE.marginal(x0, tt)[0]) / SDE.std(tt)[:, None, None, None]
    assert denoising_score_loss(SDE, oracle, x0, generator=torch.Generator().manual_seed(0)).item() == pytest.approx(
        0.0, abs=1e-8
    )
    zero = denoising_score_loss(
        SDE, lambda xt, tt: torch.zeros_like(xt), x0, generator=torch.Generator().manual_seed(2)
    )
    assert zero.item() == pytest.approx(1.0, abs=0.05)


def test_v_prediction_oracle_recovers_the_noise():
    """v = alpha z - sigma x0 scores 0 under the v loss, and converts back to exactly z."""
    x0 = torch.randn(16, 1, 8, 8)

    def v_oracle(xt, tt):
        alpha, sigma = SDE.log_mean_coeff(tt).exp()[:, None, None, None], SDE.std(tt)[:, None, None, None]
        z = (xt - alpha * x0) / sigma
        return alpha * z - sigma * x0

    g = torch.Generator().manual_seed(0)
    assert denoising_score_loss(SDE, v_oracle, x0, prediction="v", generator=g).item() == pytest.approx(0.0, abs=1e-8)
    t = torch.rand(16) * 0.99 + 0.01
    z = torch.randn_like(x0)
    xt = SDE.perturb(x0, t, z)
    assert torch.allclose(noise_from_prediction(SDE, "v", v_oracle(xt, t), xt, t), z, atol=1e-4)


def test_condition_embedding_and_particles():
    emb = ConditionEmbedding(16)
    pid = torch.tensor([NULL_PID, NULL_PID, 2, 2])
    out = emb(pid, torch.tensor([100.0, 700.0, 100.0, 700.0]))
    assert torch.allclose(out[0], out[1])  # the null condition ignores momentum
    assert not torch.allclose(out[2], out[3])
    assert particle_pid("mu-") == particle_pid("muon") == 2 and particle_pid("gamma") == 0
    with pytest.raises(ConfigError, match="kaon"):
        particle_pid("kaon")
    dropped = drop_condition(torch.full((10000,), 3), 0.1, torch.Generator().manual_seed(0))
    assert (dropped == NULL_PID).float().mean().item() == pytest.approx(0.1, abs=0.015)


def test_charge_transform_round_trip():
    t = ChargeTransform(scale=0.1, q_max=30.0, min_charge=0.05)
    q = torch.tensor([0.0, 0.01, 0.05, 0.7, 15.0, 45.0])
    x = t.to_model(q)
    assert x[0] == -1.0 and x[-1] == 1.0 and torch.all(torch.diff(x) >= 0)
    assert torch.allclose(t.to_charge(x), torch.tensor([0.0, 0.0, 0.05, 0.7, 15.0, 30.0]), rtol=1e-5)


def test_charge_transform_gap_keeps_empty_pixels_empty_under_noise():
    t = ChargeTransform(scale=0.1, q_max=30.0, min_charge=0.05, gap=1.0)
    q = torch.tensor([0.0, 0.05, 0.7, 15.0])
    x = t.to_model(q)
    assert x[0] == -1.0 and 0.0 < x[1] < 0.1 and x[-1] < 1.0
    assert torch.allclose(t.to_charge(x), q, rtol=1e-5)
    # noise of 0.3 in model space: empty pixels stay empty (0.14 would have lit them without the gap)
    noisy = torch.full((1000,), -1.0) + 0.3 * torch.rand(1000)
    assert (t.to_charge(noisy) == 0).all()
    assert (ChargeTransform(gap=0.0).to_charge(noisy) > 0).float().mean() > 0.4


def noise_estimate(model: ScoreModel2D, x, t, pid, momentum) -> torch.Tensor:
    """z_hat of the model's v prediction."""
    return noise_from_prediction(SDE, "v", model.network(x, t, pid, momentum), x, t)


def tiny_score_model() -> ScoreModel2D:
    torch.manual_seed(0)
    return ScoreModel2D(ScoreSDE(SDE, "v"), base=8, mults=(1, 2), blocks=1, emb_dim=32, patch=2, p_uncond=0.2)


def test_score_model_training_lowers_the_loss():
    model = tiny_score_model()
    g = torch.Generator().manual_seed(0)
    x = -torch.ones(32, 1, 16, 16)
    x[:16, :, 8, :] = 0.5  # horizontal tracks for muons, vertical for electrons
    x[16:, :, :, 8] = 0.5
    pid = torch.tensor([2] * 16 + [1] * 16)
    mom = torch.full((32,), 400.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        torch.manual_seed(len(losses))
        loss = model.loss((x, pid, mom))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])
    # the conditioning is learned: from the same noise, the denoised estimate of a muon request
    # carries a horizontal line and that of an electron request a vertical one
    model.eval()
    with torch.no_grad():
        t = torch.full((16,), 0.5)
        xt = SDE.perturb(torch.zeros(16, 1, 16, 16), t, torch.randn(16, 1, 16, 16, generator=g))
        request = torch.tensor([2] * 8 + [1] * 8)
        z = noise_estimate(model, xt, t, request, torch.full((16,), 400.0))
        mean, std = SDE.marginal(torch.ones(1), t)
        x0 = (xt - std[:, None, None, None] * z) / mean[:, None, None, None]
    row_line, col_line = x0[:, 0, 8, :].mean(1), x0[:, 0, :, 8].mean(1)
    assert torch.all(row_line[:8] > col_line[:8]) and torch.all(col_line[8:] > row_line[8:])
    samples, nfe = model.sample(
        request,
        torch.full((16,), 400.0),
        SamplerConfig(steps=20, guidance=1.0),
        size=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert samples.shape == (16, 1, 16, 16) and nfe == 40  # guidance doubles the evaluations
    assert torch.isfinite(samples).all() and samples.abs().max() <= 1.0


def test_guided_score_combines_conditional_and_unconditional():
    model = tiny_score_model().eval()
    x, t = torch.randn(3, 1, 16, 16), torch.full((3,), 0.4)
    pid, mom = torch.tensor([0, 2, 4]), torch.tensor([100.0, 300.0, 700.0])
    std = SDE.std(t)[:, None, None, None]
    with torch.no_grad():
        cond = noise_estimate(model, x, t, pid, mom)
        uncond = noise_estimate(model, x, t, torch.full_like(pid, NULL_PID), mom)
        score = lambda w: model.process.score(classifier_free(model.network, pid, mom, w))
        assert torch.allclose(score(0.0)(x, t), -cond / std, atol=1e-5)
        assert torch.allclose(score(2.0)(x, t), -(3 * cond - 2 * uncond) / std, atol=1e-4)


def test_sampler_config_rejects_unknown_methods():
    with pytest.raises(ConfigError, match="sampler.method"):
        SamplerConfig(method="heun")
