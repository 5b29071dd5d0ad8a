"""The sparse backends against dense PyTorch convolutions (the kernel meaning of
``voxgen.nn.sparse.base``) and against each other (same weights, same outputs)."""

import pytest
import torch
import torch.nn.functional as F

from voxgen.errors import ConfigError
from voxgen.nn.sparse import BACKENDS, get_backend, match_coordinates
from voxgen.nn.sparse.base import copy_weights
from voxgen.nn.sparse.unet import SparseUNet


def installed(name: str) -> bool:
    try:
        get_backend(name)
        return True
    except ConfigError:
        return False


AVAILABLE = [name for name in BACKENDS if installed(name)]
SHAPE = (16, 16, 16)


def random_sites(n: int = 300, batch: int = 2, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, batch, (n, 1), generator=g), torch.randint(0, SHAPE[0], (n, 3), generator=g)], 1
    )
    coords = torch.unique(coords, dim=0).int()
    return coords, torch.randn(len(coords), c, generator=g)


def at_sites(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    c = coords.long()
    return dense.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]


def aligned(backend, x, coords: torch.Tensor) -> torch.Tensor:
    """Features of sparse tensor x reordered to the rows of ``coords``."""
    index = match_coordinates(coords, backend.coords(x))
    assert (index >= 0).all()
    return backend.feats(x)[index]


@pytest.mark.parametrize("name", AVAILABLE)
def test_submanifold_conv_is_the_dense_correlation_at_the_sites(name):
    b = get_backend(name)
    coords, feats = random_sites()
    x = b.tensor(feats, coords, SHAPE, 2)
    conv = b.conv(3, 5, kernel=3)
    w = torch.randn(3, 3, 3, 3, 5)
    conv.load_canonical(w)
    out = conv(x)
    dense = F.conv3d(b.to_dense(x), w.permute(4, 3, 0, 1, 2), padding=1)
    assert torch.allclose(aligned(b, out, coords), at_sites(dense, coords), atol=1e-4)


@pytest.mark.parametrize("name", AVAILABLE)
def test_strided_and_generative_transposed_convs_match_dense(name):
    b = get_backend(name)
    coords, feats = random_sites()
    x = b.tensor(feats, coords, SHAPE, 2)
    down = b.conv(3, 4, stride=2, key="d")
    w = torch.randn(2, 2, 2, 3, 4)
    down.load_canonical(w)
    y = down(x)
    coarse = torch.unique(torch.cat([coords[:, :1], coords[:, 1:] // 2], 1), dim=0)
    assert len(b.coords(y)) == len(coarse) and b.spatial_shape(y) == (8, 8, 8)
    dense = F.conv3d(b.to_dense(x), w.permute(4, 3, 0, 1, 2), stride=2)
    assert torch.allclose(aligned(b, y, coarse), at_sites(dense, coarse), atol=1e-4)

    up = b.conv_transpose(4, 2, stride=2)
    wt = torch.randn(2, 2, 2, 4, 2)
    up.load_canonical(wt)
    z = up(y)
    assert len(b.coords(z)) == 8 * len(coarse) and b.spatial_shape(z) == SHAPE
    dense_up = F.conv_transpose3d(b.to_dense(y), wt.permute(3, 4, 0, 1, 2), stride=2)
    assert torch.allclose(b.to_dense(z), dense_up, atol=1e-4)

    inverse = b.inverse_conv(4, 2, stride=2, key="d")
    inverse.load_canonical(wt)
    back = inverse(y, x)
    assert torch.allclose(aligned(b, back, coords), at_sites(dense_up, coords), atol=1e-4)


@pytest.mark.parametrize("name", AVAILABLE)
def test_prune_and_dense_round_trip(name):
    b = get_backend(name)
    coords, feats = random_sites()
    x = b.tensor(feats, coords, SHAPE, 2)
    keep = feats[:, 0] > 0
    pruned = b.prune(x, keep)
    assert torch.equal(aligned(b, pruned, coords[keep]), feats[keep])
    again = b.from_dense(b.to_dense(x))
    assert torch.allclose(aligned(b, again, coords), feats)


@pytest.mark.parametrize("name", AVAILABLE)
def test_sparse_unet_trains_on_cpu(name):
    """Forward and backward run on CPU (spconv needs its native algorithm and stream fix there)."""
    b = get_backend(name)
    torch.manual_seed(0)
    coords, feats = random_sites(n=600)
    target = (feats[:, 0] > 0).long()
    net = SparseUNet(b, 3, 2, widths=(8, 16), blocks=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out, _ = net(b.tensor(feats, coords, SHAPE, 2))
        loss = F.cross_entropy(aligned(b, out, coords), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(len(AVAILABLE) < 2, reason="needs both backends (bash tools/install_minkowski.sh)")
def test_backends_agree_on_the_same_weights():
    spconv, minkowski = get_backend("spconv"), get_backend("minkowski")
    torch.manual_seed(0)
    a = SparseUNet(spconv, 3, 4, widths=(8, 16, 32), blocks=1).eval()
    m = SparseUNet(minkowski, 3, 4, widths=(8, 16, 32), blocks=1).eval()
    for module in a.modules():  # non-trivial normalisation statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    copy_weights(a, m)
    coords, feats = random_sites(n=800)
    with torch.no_grad():
        out_a, bottom_a = a(spconv.tensor(feats, coords, SHAPE, 2))
        out_m, bottom_m = m(minkowski.tensor(feats, coords, SHAPE, 2))
    assert torch.allclose(aligned(spconv, out_a, coords), aligned(minkowski, out_m, coords), atol=1e-4)
    sites = spconv.coords(bottom_a)
    assert torch.allclose(spconv.feats(bottom_a), aligned(minkowski, bottom_m, sites), atol=1e-4)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        get_backend("torchsparse")


def test_match_coordinates_finds_rows_across_large_batches_and_grids():
    reference = torch.tensor([[40, 767, 0, 5], [3, 1, 2, 3], [40, 767, 0, 6], [7, 0, 767, 767]]).int()
    query = torch.tensor([[40, 767, 0, 6], [7, 0, 767, 767], [40, 767, 0, 5], [8, 0, 767, 767]]).int()
    assert match_coordinates(query, reference).tolist() == [2, 3, 0, -1]
