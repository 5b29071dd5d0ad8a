"""CUDA check of the generative processes and the conditional generators, for a machine with a GPU.

For the 2D VP-SDE score model and the 3D latent generator under flow matching and the VP-SDE:
a tiny model trains a few steps on CUDA (the loss must fall), then the same weights sample on
CUDA and on the CPU from the same seed (noise is drawn on the CPU, so both see the same noise).
Prints, per model, the loss before/after and the largest |CUDA - CPU| difference of the samples
relative to their spread; exits 1 when a loss does not fall or the samples disagree beyond 1e-3
(cuDNN convolutions run in TF32 by default, so a few 1e-4 is expected). On an NVIDIA H200
(torch 2.11, CUDA 13): 2.4e-4 (vpsde2d), 7.3e-4 (latent flow), 6.1e-4 (latent VP-SDE).

    python tools/check_cuda.py
"""

from __future__ import annotations

import copy
import sys

import torch

from voxgen.generative.flow import FlowMatching, FlowSamplerConfig
from voxgen.generative.score_sde import ScoreSDE
from voxgen.generative.solvers import SamplerConfig
from voxgen.models.latent3d import LatentGenerator3D
from voxgen.models.score2d import ScoreModel2D


def _data(shape: tuple[int, ...], n: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Muon requests light one site/row, electron requests another: a conditional toy set."""
    gen = torch.Generator().manual_seed(0)
    x = -torch.ones(n, *shape)
    pid = torch.tensor([2, 1] * (n // 2))
    x[pid == 2, ..., 1, 1] = 1.0
    x[pid == 1, ..., 2, 2] = 1.0
    return x + 0.05 * torch.randn(x.shape, generator=gen), pid, torch.full((n,), 400.0)


def check(name: str, model: torch.nn.Module, shape: tuple[int, ...], sampler, sample_kwargs: dict) -> bool:
    x, pid, momentum = _data(shape)
    model = model.cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = tuple(t.cuda() for t in (x, pid, momentum))
    torch.manual_seed(0)
    losses = []
    for _ in range(60):
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    before, after = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    request = (torch.tensor([2] * 4 + [1] * 4), torch.full((8,), 400.0))
    on_gpu, nfe = model.sample(*request, sampler, generator=torch.Generator().manual_seed(1), **sample_kwargs)
    cpu_model = copy.deepcopy(model).cpu()
    on_cpu, _ = cpu_model.sample(*request, sampler, generator=torch.Generator().manual_seed(1), **sample_kwargs)
    diff = (on_gpu.cpu() - on_cpu).abs().max().item() / on_cpu.std().item()
    ok = after < 0.7 * before and diff < 1e-3
    print(
        f"{name:<22} loss {before:.4f} -> {after:.4f}   samples {tuple(on_gpu.shape)} on {on_gpu.device}, "
        f"{nfe} evaluations, max |cuda - cpu| / std = {diff:.2e}   {'ok' if ok else 'FAILED'}"
    )
    return ok


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    print(torch.__version__, torch.cuda.get_device_name())
    torch.manual_seed(0)
    results = [
        check(
            "vpsde2d (ScoreSDE)",
            ScoreModel2D(ScoreSDE(), base=8, mults=(1, 2), emb_dim=32, patch=2),
            (1, 8, 8),
            SamplerConfig(method="euler_maruyama", steps=50, guidance=1.0),
            {"size": 8},
        ),
        check(
            "latent3d (flow)",
            LatentGenerator3D(FlowMatching(), 2, 4, base=8, mults=(1, 2), emb_dim=16),
            (2, 4, 4, 4),
            FlowSamplerConfig(method="midpoint", steps=10),
            {},
        ),
        check(
            "latent3d (vpsde)",
            LatentGenerator3D(ScoreSDE(), 2, 4, base=8, mults=(1, 2), emb_dim=16),
            (2, 4, 4, 4),
            SamplerConfig(method="ode", ode_method="rk4", steps=10),
            {},
        ),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
