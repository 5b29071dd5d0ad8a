"""SSNet 2D: track/shower semantic segmentation of 64x64 charge crops (Lutkus et al., arXiv:2204.02496, A.5).

Classes: 0 background, 1 shower, 2 track (``voxgen.views.SSNET_CLASSES``). Input charge in
MeV per pixel; the network sees ``log1p(charge / charge_scale)`` so real and generated
images share one transform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxgen.nn.unet2d import UResNet2d

N_CLASSES = 3


class SSNet2D(nn.Module):
    """U-ResNet segmenter; ``features`` gives the bottleneck embedding used for SSNet-FID."""

    def __init__(
        self,
        base: int = 16,
        depth: int = 4,
        charge_scale: float = 1.0,
        class_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        self.net = UResNet2d(1, N_CLASSES, base=base, depth=depth)
        self.charge_scale = charge_scale
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images[:, None]
        return torch.log1p(images.clamp_min(0) / self.charge_scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) or (B, H, W) charge -> (B, 3, H, W) logits."""
        return self.net(self._prepare(images))[0]

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities (B, 3, H, W), bottleneck features (B, D) = spatial mean and max)."""
        logits, bottleneck = self.net(self._prepare(images))
        feats = torch.cat([bottleneck.mean(dim=(2, 3)), bottleneck.amax(dim=(2, 3))], dim=1)
        return logits.softmax(dim=1), feats

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Class-weighted cross entropy over all pixels; also logs accuracy on charged pixels."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, weight=self.class_weights)
        with torch.no_grad():
            charged = labels > 0
            acc = (logits.argmax(1)[charged] == labels[charged]).float().mean()
        return {"loss": loss, "charged_accuracy": acc}


@torch.no_grad()
def predict_crops(model: SSNet2D, images, batch_size: int = 256, progress: bool = False):
    """Numpy in, numpy out: images (N, H, W) MeV -> (probabilities (N, 3, H, W) float32,
    bottleneck features (N, D) float32)."""
    import numpy as np
    from tqdm import tqdm

    device = next(model.parameters()).device
    model.eval()
    probs, feats = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="ssnet", unit="batch", disable=not progress):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size]), dtype=torch.float32, device=device)
        p, f = model.predict(x)
        probs.append(p.cpu().numpy())
        feats.append(f.cpu().numpy())
    return np.concatenate(probs), np.concatenate(feats)


def build_ssnet2d(m) -> SSNet2D:
    """SSNet2D from its ``model`` config node (``conf/model/ssnet2d.yaml``)."""
    return SSNet2D(base=m.base, depth=m.depth, charge_scale=m.charge_scale, class_weights=tuple(m.class_weights))
