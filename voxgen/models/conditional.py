"""The common surface of the conditional dense generators (the 2D score model): a
network out(x, t, pid, momentum) trained and sampled under any generative process
(``voxgen.generative.process``), conditioned on particle type and momentum, with
classifier-free guidance."""

from __future__ import annotations

import torch
from torch import nn

from voxgen.generative.conditioning import ConditionEmbedding, drop_condition
from voxgen.generative.guidance import classifier_free, evaluations
from voxgen.generative.process import GenerativeProcess, SamplerSettings
from voxgen.nn.cond_unet import TimeEmbedding

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x (B, ...), pid (B,), momentum (B,) MeV/c


class ConditionalGenerator(nn.Module):
    """Subclasses build ``self.net`` and define ``network``; ``to_process``/``from_process`` map
    data to the process's space and back (identity here). ``p_uncond`` of training conditions are
    dropped to the null condition so one network gives both terms of the guidance."""

    def __init__(self, process: GenerativeProcess, emb_dim: int, p_uncond: float) -> None:
        super().__init__()
        self.process, self.p_uncond = process, p_uncond
        self.time = TimeEmbedding(emb_dim)
        self.cond = ConditionEmbedding(emb_dim)

    def network(self, x: torch.Tensor, t: torch.Tensor, pid: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The network output (B, ...) for X_t = ``x`` at process times ``t`` (B,)."""
        raise NotImplementedError

    def to_process(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_process(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The process's loss on a batch (x, pid, momentum), dropping ``p_uncond`` conditions."""
        x, pid, momentum = batch
        x = self.to_process(x)
        pid = drop_condition(pid, self.p_uncond if self.training else 0.0)
        return {"loss": self.process.loss(lambda xt, t: self.network(xt, t, pid, momentum), x)}

    @torch.no_grad()
    def sample(
        self,
        pid: torch.Tensor,
        momentum: torch.Tensor,
        sampler: SamplerSettings,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, int]:
        """(samples (B, *shape) in data space, network evaluations per sample) for conditions
        ``pid`` (B,) (-1 = unconditional) and ``momentum`` (B,) MeV/c; noise drawn on the CPU
        from ``generator``, so a seed gives the same samples on any device."""
        self.eval()
        device = next(self.parameters()).device
        pid, momentum = pid.to(device), momentum.to(device).float()
        noise = torch.randn((len(pid), *shape), generator=generator, device="cpu").to(device)
        guided = classifier_free(self.network, pid, momentum, sampler.guidance)
        x, nfe = self.process.sample(guided, noise, sampler, generator, progress)
        return self.from_process(x), evaluations(nfe, sampler.guidance)
