"""The shared training loop: loss goes down, checkpoints resume exactly, EMA, callbacks."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from voxgen.errors import ConfigError
from voxgen.runs import load_weights
from voxgen.train.loop import TrainerConfig, train


class LinearFit(nn.Module):
    """y = 3x - 1 regression; loss is MSE."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)

    def loss(self, batch):
        x, y = batch
        mse = ((self.layer(x) - y) ** 2).mean()
        return {"loss": mse, "abs_weight": self.layer.weight.abs().mean().detach()}


def batches(epoch: int):
    gen = torch.Generator().manual_seed(epoch)
    for _ in range(10):
        x = torch.randn(32, 1, generator=gen)
        yield x, 3 * x - 1


def cfg(**kw) -> TrainerConfig:
    base = dict(epochs=8, lr=0.1, schedule="cosine", log_every=5, checkpoint_every=7, progress=False, device="cpu")
    base.update(kw)
    return TrainerConfig(**base)


def test_loss_goes_down_and_logs(tmp_path):
    rows = []
    torch.manual_seed(0)
    model = LinearFit()
    train(model, batches, cfg(), tmp_path, on_metrics=rows.append)
    with (tmp_path / "metrics.csv").open() as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == len(rows) == 16  # 80 steps, every 5
    assert float(logged[-1]["loss"]) < 0.1 * float(logged[0]["loss"])
    assert abs(model.layer.weight.item() - 3) < 0.3


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    torch.manual_seed(0)
    reference = LinearFit()
    init = {k: v.clone() for k, v in reference.state_dict().items()}
    train(reference, batches, cfg(), tmp_path / "ref")

    class Killed(Exception):
        pass

    def dying_batches(epoch):
        for i, b in enumerate(batches(epoch)):
            if epoch == 2 and i == 3:
                raise Killed
            yield b

    interrupted = LinearFit()
    interrupted.load_state_dict(init)
    with pytest.raises(Killed):
        train(interrupted, dying_batches, cfg(), tmp_path / "run")
    resumed = LinearFit()  # a fresh process: new weights, resumed from the checkpoint
    train(resumed, batches, cfg(), tmp_path / "run")
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v)


def test_ema_weights_load(tmp_path):
    model = LinearFit()
    train(model, batches, cfg(ema_decay=0.9), tmp_path)
    ema = load_weights(tmp_path / "checkpoints" / "last.pt", LinearFit())
    raw = load_weights(tmp_path / "checkpoints" / "last.pt", LinearFit(), use_ema=False)
    torch.testing.assert_close(raw.layer.weight, model.layer.weight)
    assert not torch.equal(ema.layer.weight, model.layer.weight)
    assert abs(ema.layer.weight.item() - 3) < 0.5


def test_bad_trainer_values():
    with pytest.raises(ConfigError, match="trainer.schedule"):
        TrainerConfig(schedule="sometimes")


def test_resuming_another_models_checkpoint_is_a_one_line_error(tmp_path):
    train(LinearFit(), batches, cfg(epochs=1), tmp_path)

    class Wider(LinearFit):
        def __init__(self) -> None:
            super().__init__()
            self.extra = nn.Linear(2, 2)

    with pytest.raises(ConfigError, match="checkpoint of another model setup"):
        train(Wider(), batches, cfg(epochs=2), tmp_path)
    # a run that finished its epochs reports its last logged figures when called again
    assert train(LinearFit(), batches, cfg(epochs=1), tmp_path)["step"] > 0


def test_a_resumed_run_says_so_keeps_one_row_per_step_and_counts_all_its_time(tmp_path, capsys):
    class Killed(Exception):
        pass

    def dying_batches(epoch):
        for i, b in enumerate(batches(epoch)):
            if epoch == 1 and i == 6:
                raise Killed
            yield b

    settings = dict(log_every=1, checkpoint_every=5, schedule="none")
    with pytest.raises(Killed):
        train(LinearFit(), dying_batches, cfg(**settings), tmp_path)
    first = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in first][-1] == 16  # logged past the checkpoint at step 15
    capsys.readouterr()
    last = train(LinearFit(), batches, cfg(**settings), tmp_path)
    said = capsys.readouterr().out
    assert "resuming" in said and "epoch 2/8, step 15" in said
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "metrics.csv").open())]
    assert steps == list(range(1, 81))  # each step once, in order
    seconds = [float(r["seconds"]) for r in csv.DictReader((tmp_path / "metrics.csv").open())]
    assert seconds == sorted(seconds)  # the clock continues from the checkpoint, it does not restart
    assert last["seconds"] >= float(first[13]["seconds"])


def test_zero_training_steps_is_an_error_not_a_success(tmp_path):
    with pytest.raises(ConfigError, match="no training batch"):
        train(LinearFit(), lambda epoch: iter(()), cfg(epochs=1), tmp_path)
    for bad in ({"max_steps_per_epoch": -1}, {"log_every": 0}, {"epochs": 0}, {"lr": float("nan")}):
        with pytest.raises(ConfigError, match="trainer."):
            cfg(**bad)
