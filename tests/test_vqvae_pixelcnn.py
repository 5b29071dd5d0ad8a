"""VQ-VAE 2D and gated PixelCNN: shapes, training on tiny batches, dead codes, causality, sampling."""

from __future__ import annotations

import pytest
import torch

from voxgen.models.pixelcnn2d import GatedPixelCNN
from voxgen.models.vqvae2d import VQVAE2D


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: threads only add contention on a loaded CPU (60x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def line_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) sparse images: background -1, two horizontal/vertical lines at +0.5."""
    gen = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, size, size)
    for k in range(n):
        for _ in range(2):
            pos, start = torch.randint(size, (2,), generator=gen).tolist()
            length = size // 2
            if torch.rand(1, generator=gen).item() < 0.5:
                x[k, 0, pos, start : start + length] = 0.5
            else:
                x[k, 0, start : start + length, pos] = 0.5
    return x


def condition(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n,), 2, dtype=torch.long), torch.full((n,), 300.0)


def test_vqvae_shapes_and_range():
    model = VQVAE2D(n_codes=16, code_dim=4, enc_filters=(8, 16), dec_filters=(16, 8)).eval()
    x = line_images(3, 32)
    codes = model.encode(x)
    assert codes.shape == (3, 8, 8) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 16
    out = model.decode(codes)
    assert out.shape == (3, 1, 32, 32)
    assert out.min() >= -1 and out.max() <= 1
    assert model(x).shape == x.shape


def test_vqvae_training_lowers_recon():
    torch.manual_seed(0)
    model = VQVAE2D(n_codes=16, code_dim=4, enc_filters=(8, 16), dec_filters=(16, 8), dead_code_steps=20)
    batch = (line_images(8, 32), *condition(8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        out = model.loss(batch)
        first = first if first is not None else out["recon"].item()
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert set(out) == {"loss", "recon", "codebook", "commitment", "perplexity", "usage"}
    assert 1.0 <= out["perplexity"].item() <= 16.0 and 0 < out["usage"].item() <= 1.0
    assert out["recon"].item() < 0.5 * first


def test_vqvae_dead_codes_restart():
    torch.manual_seed(0)
    model = VQVAE2D(n_codes=16, code_dim=4, enc_filters=(8, 16), dec_filters=(16, 8), dead_code_steps=5)
    vq = model.quantizer
    with torch.no_grad():  # every encoder output is nearest to code 0
        vq.codebook.fill_(1e3)
        vq.codebook[0] = 0.0
    batch = (torch.rand(4, 1, 16, 16) * 2 - 1, *condition(4))
    with torch.no_grad():
        for _ in range(5):
            usage = model.loss(batch)["usage"].item()
        assert usage == 1 / 16 and torch.all(vq.steps_unused[1:] == 5)
        after = model.loss(batch)["usage"].item()  # sixth pass: codes 1..15 restarted
    assert torch.all(vq.codebook[1:].abs() < 1e2)
    assert after > 4 / 16
    model.eval()  # eval passes neither count nor restart
    steps = vq.steps_unused.clone()
    with torch.no_grad():
        model.loss(batch)
    assert torch.equal(vq.steps_unused, steps)


def test_pixelcnn_is_causal_without_blind_spot():
    torch.manual_seed(0)
    model = GatedPixelCNN(n_codes=16, channels=16, n_blocks=2, kernel=5)
    size = 8
    codes = torch.randint(16, (1, size, size))
    emb = model.embed(codes).detach().requires_grad_()
    model.embed.register_forward_hook(lambda module, inputs, output: emb)
    logits = model.logits(codes, *condition(1))
    order = torch.arange(size * size).view(size, size)
    for i, j in [(3, 0), (3, size - 1), (4, 4), (0, 0)]:
        (grad,) = torch.autograd.grad(logits[0, :, i, j].sum(), emb, retain_graph=True)
        seen = grad[0].abs().sum(-1) > 0
        assert not seen[order >= i * size + j].any(), f"({i}, {j}) sees itself or a later pixel"
        if (i, j) == (0, 0):
            continue
        earlier = [(i, j - 1), (i - 1, j), (i - 1, j - 1), (i - 1, j + 1)]
        for a, b in earlier:
            if 0 <= a < size and 0 <= b < size:
                assert seen[a, b], f"({i}, {j}) does not see ({a}, {b})"


def test_pixelcnn_learns_condition():
    torch.manual_seed(0)
    model = GatedPixelCNN(n_codes=16, channels=16, n_blocks=2, kernel=3)
    n = 8
    pid = torch.tensor([2, 1] * (n // 2))
    codes = torch.where(pid[:, None, None] == 2, 3, 7).expand(n, 4, 4).contiguous()
    batch = (codes, pid, torch.full((n,), 300.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch)["loss"].item()
    for _ in range(100):
        out = model.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["loss"].item() < 0.2 * first
    torch.testing.assert_close(out["bits_per_code"], out["loss"] / torch.log(torch.tensor(2.0)))
    model.eval()
    gen = torch.Generator().manual_seed(0)
    for p, code in [(2, 3), (1, 7)]:
        sample = model.sample(torch.full((2,), p), torch.full((2,), 300.0), shape=(4, 4), generator=gen, guidance=1.0)
        assert torch.mode(sample.flatten()).values.item() == code


def test_pixelcnn_sample_shape_and_determinism():
    torch.manual_seed(0)
    model = GatedPixelCNN(n_codes=16, channels=16, n_blocks=2).eval()
    pid, momentum = torch.tensor([0, 4, -1]), torch.tensor([100.0, 500.0, 0.0])
    a = model.sample(pid, momentum, shape=(4, 5), generator=torch.Generator().manual_seed(3))
    b = model.sample(pid, momentum, shape=(4, 5), generator=torch.Generator().manual_seed(3))
    c = model.sample(pid, momentum, shape=(4, 5), generator=torch.Generator().manual_seed(4), temperature=2.0)
    assert a.shape == (3, 4, 5) and a.dtype == torch.int64
    assert a.min() >= 0 and a.max() < 16
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
