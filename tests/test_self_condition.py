"""Self-conditioning and per-row loss weights of the generative processes."""

from __future__ import annotations

import pytest
import torch

from voxgen.generative.flow import CondOTPath, FlowMatching, flow_matching_loss
from voxgen.generative.score_sde import ScoreSDE
from voxgen.generative.sde import VPSDE
from voxgen.generative.self_condition import sampling_network, training_network


class Recorder:
    """A self-conditioned network returning 2 x, that records the estimates it is fed."""

    def __init__(self) -> None:
        self.fed: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, estimate: torch.Tensor, *rest) -> torch.Tensor:
        self.fed.append(estimate.clone())
        return 2.0 * x


def test_data_estimates_invert_the_paths():
    g = torch.Generator().manual_seed(0)
    x1, x0, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.rand(5, generator=g)
    xt, velocity = CondOTPath().sample(x0, x1, t)
    assert torch.allclose(FlowMatching().data_estimate(velocity, xt, t), x1, atol=1e-6)
    sde = VPSDE(0.1, 20.0)
    xt = sde.perturb(x1, t, x0)
    alpha, std = sde.alpha(t)[:, None], sde.std(t)[:, None]
    assert torch.allclose(ScoreSDE(sde, "v").data_estimate(alpha * x0 - std * x1, xt, t), x1, atol=1e-5)
    t = 0.5 * t  # away from t = T, where alpha_t -> 0 and the noise parameterisation divides by it
    xt = sde.perturb(x1, t, x0)
    assert torch.allclose(ScoreSDE(sde, "noise").data_estimate(x0, xt, t), x1, atol=1e-4)


def test_sampling_feeds_each_call_the_estimate_of_the_call_before():
    net = Recorder()
    out = sampling_network(net, FlowMatching())
    x, t = torch.ones(4, 2), torch.full((4,), 0.25)
    out(x, t)
    out(3.0 * x, 2 * t)
    assert torch.equal(net.fed[0], torch.zeros(4, 2))  # the first call: no estimate yet
    assert torch.allclose(net.fed[1], x + 0.75 * 2.0 * x)  # X_1 = x + (1 - t) v of the first call
    out(torch.ones(8, 2), torch.full((8,), 0.5))  # another batch shape (guided calls) starts from zero
    assert torch.equal(net.fed[2], torch.zeros(8, 2))


@pytest.mark.parametrize("p, fed", [(0.0, 0), (1.0, 4)])
def test_training_feeds_the_first_pass_to_a_share_of_the_groups(p, fed):
    net = Recorder()
    groups = torch.tensor([0, 0, 1, 1])
    x, t = torch.ones(4, 2), torch.full((4,), 0.5)
    training_network(net, FlowMatching(), p, groups)(x, t)
    last = net.fed[-1]
    assert int((last != 0).any(dim=1).sum()) == fed
    if fed:
        assert torch.allclose(last, x + 0.5 * 2.0 * x)


def test_row_weights_give_each_row_its_own_weight():
    x1 = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    zero = lambda x, t: torch.zeros_like(x)  # loss per row: mean (X_1 - X_0)^2, whatever t
    g = torch.Generator().manual_seed(1)
    torch.rand(6, generator=g)  # the times the loss draws first
    per_row = ((x1 - torch.randn(x1.shape, generator=g)) ** 2).mean(dim=1)
    loss = lambda w: flow_matching_loss(CondOTPath(), zero, x1, torch.Generator().manual_seed(1), weights=w).item()
    assert loss(None) == pytest.approx(per_row.mean().item())
    assert loss(torch.ones(6)) == pytest.approx(per_row.mean().item())
    w = torch.tensor([3.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert loss(w) == pytest.approx(((3 * per_row[0] + per_row[1]) / 4).item())
