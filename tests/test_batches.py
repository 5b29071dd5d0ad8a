"""The one epoch batcher behind every recipe: shuffled full batches, repeatable per (seed, epoch)."""

from __future__ import annotations

import pytest
import torch

from voxgen.data.batches import EpochBatches, flip_transpose, tensor_batches
from voxgen.errors import ConfigError


def _epochs(batches, epochs=3):
    return [[b.tolist() for b in batches(epoch)] for epoch in range(epochs)]


def test_epoch_batches_cover_full_batches_once_and_repeat_per_seed_and_epoch():
    batches = EpochBatches(10, 3, seed=7, make=lambda idx, gen: idx)
    assert len(batches) == 3
    epochs = _epochs(batches)
    for epoch in epochs:
        assert len(epoch) == 3 and all(len(b) == 3 for b in epoch)  # the last partial batch is dropped
        seen = [i for b in epoch for i in b]
        assert len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert epochs == _epochs(EpochBatches(10, 3, seed=7, make=lambda idx, gen: idx))
    assert epochs[0] != epochs[1]  # each epoch its own shuffle
    assert epochs != _epochs(EpochBatches(10, 3, seed=8, make=lambda idx, gen: idx))


@pytest.mark.parametrize("n, batch_size", [(2, 3), (10, 0), (10, -4)])
def test_a_batch_size_that_gives_no_batch_is_a_one_line_error(n, batch_size):
    with pytest.raises(ConfigError, match=f"batch_size: {batch_size}"):
        EpochBatches(n, batch_size, seed=0, make=lambda idx, gen: idx)


def test_tensor_batches_keep_rows_aligned_and_flip_only_the_first():
    x = torch.arange(8 * 4 * 4, dtype=torch.float32).reshape(8, 1, 4, 4)
    pid = torch.arange(8)
    for xb, pb in tensor_batches((x, pid), 4, seed=0, flips=True)(0):
        for image, p in zip(xb, pb):
            original = x[p, 0]
            variants = [v for f in (original, original.flip(-1)) for g in (f, f.flip(-2)) for v in (g, g.T)]
            assert any(torch.equal(image[0], v) for v in variants)  # a flip/transpose of its own row


def test_flip_transpose_applies_one_draw_to_every_array():
    images, labels = torch.randn(2, 1, 5, 5), torch.randint(0, 3, (2, 5, 5))
    gen = torch.Generator().manual_seed(3)
    fi, fl = flip_transpose((images, labels * 1.0), gen)
    # the same geometric map on both: labels stay on their pixels
    recovered = [m for m in range(8) if torch.equal(_map(images[:, 0], m), fi[:, 0])]
    assert recovered and torch.equal(_map(labels * 1.0, recovered[0]), fl)


def _map(a: torch.Tensor, m: int) -> torch.Tensor:
    a = a.flip(-1) if m & 1 else a
    a = a.flip(-2) if m & 2 else a
    return a.transpose(-1, -2) if m & 4 else a
