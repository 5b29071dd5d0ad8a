"""The 3D generator: flow path and ODE solves, the sparse autoencoder (training, decoding,
backend parity), the latent generators' conditioning, and the recipes end to end (train, report,
exports, sample, bad input)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from voxgen.cli import main
from voxgen.data.batches import event_batches, sparse_batch, tensor_batches
from voxgen.events import Clusters, Event
from voxgen.generative.flow import CondOTPath, FlowMatching, FlowSamplerConfig, flow_matching_loss, integrate_flow
from voxgen.generative.score_sde import ScoreSDE
from voxgen.io.parquet import read_parquet
from voxgen.io.sources import open_events
from voxgen.models.latent3d import LatentGenerator3D
from voxgen.models.sparse_ae import SparseAutoencoder3D, keep_sites, level_sites, reconstruction_scores_3d
from voxgen.nn.sparse import BACKENDS, get_backend
from voxgen.nn.sparse.base import copy_weights
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits
from voxgen.train.loop import TrainerConfig, train

GRID = 32


def toy_event(rng: np.random.Generator) -> Event:
    """A straight track and a compact blob in a GRID^3 box."""
    start, direction = rng.uniform(6, 26, 3), rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    track = np.clip(np.round(start + np.outer(np.arange(-10, 10), direction)), 0, GRID - 1).astype(int)
    blob = np.clip(np.round(rng.uniform(8, 24, 3) + rng.normal(scale=1.2, size=(20, 3))), 0, GRID - 1).astype(int)
    coords, index = np.unique(np.concatenate([track, blob]), axis=0, return_index=True)
    energy = np.concatenate([np.full(len(track), 0.6), rng.exponential(1.5, len(blob))])[index]
    return Event(
        coords,
        energy,
        cluster=np.zeros(len(coords), np.int32),
        clusters=Clusters.build(semantic=[1], pid=[2]),
        grid=GRID,
    )


# ---------------------------------------------------------------- flow path and solvers
def test_condot_path_interpolates_noise_and_data():
    x0, x1 = torch.randn(4, 3), torch.randn(4, 3)
    xt, target = CondOTPath().sample(x0, x1, torch.tensor([0.0, 1.0, 0.5, 0.25]))
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[1], x1[1])
    assert torch.allclose(xt[2], (x0[2] + x1[2]) / 2) and torch.allclose(xt[3], 0.75 * x0[3] + 0.25 * x1[3])
    assert torch.allclose(target, x1 - x0)
    # the exact velocity of a point-mass target makes the loss zero
    mu = torch.tensor([1.0, -2.0, 0.5])
    exact = lambda xt, t: (mu - xt) / (1 - t[:, None]).clamp_min(1e-6)
    assert flow_matching_loss(CondOTPath(), exact, mu.expand(64, 3).clone()) < 1e-8


@pytest.mark.parametrize(
    "method, steps, nfe, tol",
    [("euler", 1000, 1000, 2e-3), ("midpoint", 20, 40, 1e-3), ("rk4", 5, 20, 1e-4), ("dopri5", 0, None, 1e-4)],
)
def test_integrate_flow_solves_dx_dt_equals_x(method, steps, nfe, tol):
    x0 = torch.tensor([[1.0], [2.0]])
    out, used = integrate_flow(lambda x, t: x, x0, method=method, steps=max(steps, 1), rtol=1e-7, atol=1e-7)
    assert torch.allclose(out, x0 * math.e, rtol=tol)
    assert nfe is None or used == nfe


def test_flow_sampler_rejects_unknown_methods():
    from voxgen.errors import ConfigError

    with pytest.raises(ConfigError, match="ODE method"):
        FlowSamplerConfig(method="leapfrog")
    with pytest.raises(ConfigError, match="solves a VP-SDE"):
        FlowMatching().sampler_settings({"method": "euler_maruyama", "steps": 10})


# ---------------------------------------------------------------- autoencoder
def test_level_sites_and_keep_sites():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 2, 0, 0], [1, 7, 7, 7]], dtype=torch.int32)
    assert level_sites(coords, 1).tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [1, 3, 3, 3]]
    score = torch.tensor([-0.9, -0.5, 0.7, -1.0])
    batch = torch.tensor([0, 0, 1, 2])
    # event 0 keeps its best site although none is positive, event 1 its one, event 2 its only site
    assert keep_sites(score, batch).tolist() == [False, True, True, True]


def test_keep_children_keeps_the_expected_count_of_each_parents_children():
    from itertools import product

    from voxgen.models.sparse_ae import keep_children

    first = [[0, *d] for d in product((0, 1), repeat=3)]
    second = [[0, 2 + d[0], d[1], d[2]] for d in product((0, 1), repeat=3)]
    p = torch.tensor([0.1, 0.9, 0.1, 0.8, 0.6, 0.1, 0.1, 0.1] + [0.05] * 7 + [0.3])
    keep = keep_children(torch.logit(p), torch.tensor(first + second))
    # sum 2.8 -> the 3 likeliest; sum 0.65 -> 1, never 0 for an occupied parent
    assert keep.nonzero()[:, 0].tolist() == [1, 3, 4, 15]


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    rng = np.random.default_rng(0)
    events = [toy_event(rng) for _ in range(40)]
    torch.manual_seed(0)
    model = SparseAutoencoder3D("spconv", widths=(16, 16, 16), feature_channels=8, grid=GRID)
    first = model.loss(sparse_batch(events[:8]))
    cfg = TrainerConfig(epochs=30, lr=5e-3, log_every=5, progress=False, device="cpu", checkpoint_every=1000)
    train(model, event_batches(events[:32], 8, 0, GRID, augmented=True), cfg, tmp_path_factory.mktemp("ae"))
    return model.eval(), events, first


def test_autoencoder_training_lowers_every_level_loss(autoencoder):
    model, events, first = autoencoder
    model.train()
    after = model.loss(sparse_batch(events[:8]))
    model.eval()
    for key in ("occ1", "occ0", "energy"):
        assert after[key] < 0.8 * first[key], key
    assert after["occ1"] < 0.48  # a blind guess at the base rate: 0.53


def test_autoencoder_latent_marks_occupancy_and_is_zero_off_the_event(autoencoder):
    model, events, _ = autoencoder
    coords, energy, _, n = sparse_batch(events[32:36])
    z = model.encode(coords, energy, n)
    assert z.shape == (4, 9, 8, 8, 8) and z[:, 1:].abs().max() <= 1
    occupied = torch.zeros(4, 8, 8, 8, dtype=torch.bool)
    sites = level_sites(coords, 2).long()
    occupied[sites[:, 0], sites[:, 1], sites[:, 2], sites[:, 3]] = True
    assert torch.equal(z[:, 0], occupied.float() * 2 - 1)
    assert (z[:, 1:].abs().sum(1)[~occupied] == 0).all()


def test_autoencoder_reconstructs_held_out_events(autoencoder):
    model, events, _ = autoencoder
    scores = reconstruction_scores_3d(model, events[32:])
    assert scores["coarse_occupancy_precision"] == scores["coarse_occupancy_recall"] == 1.0  # read off channel 0
    torch.manual_seed(0)
    untrained = reconstruction_scores_3d(
        SparseAutoencoder3D("spconv", widths=(16, 16, 16), feature_channels=8, grid=GRID).eval(), events[32:]
    )
    assert scores["occupancy_iou"] > 1.5 * untrained["occupancy_iou"] and 0.5 < scores["voxel_count_ratio"] < 1.5
    assert abs(scores["total_energy_residual_mean"]) < 0.5
    decoded = model.decode(model.encode(*_encode_args(events[32:36])))
    for c, e in zip(decoded.coords, decoded.energy):
        assert len(c) >= 1 and c.min() >= 0 and c.max() < GRID and (e >= 0).all() and np.isfinite(e).all()
        assert len(np.unique(c, axis=0)) == len(c)


def _encode_args(events):
    coords, energy, _, n = sparse_batch(events)
    return coords, energy, n


@pytest.mark.skipif("minkowski" not in BACKENDS, reason="no MinkowskiEngine")
def test_autoencoder_decodes_alike_on_both_backends(autoencoder):
    try:
        get_backend("minkowski")
    except Exception:
        pytest.skip("MinkowskiEngine not installed")
    model, events, _ = autoencoder
    twin = SparseAutoencoder3D("minkowski", widths=(16, 16, 16), feature_channels=8, grid=GRID)
    copy_weights(model, twin)
    twin.dense.load_state_dict(model.dense.state_dict())
    twin.eval()
    args = _encode_args(events[32:36])
    z, z_twin = model.encode(*args), twin.encode(*args)
    assert torch.allclose(z, z_twin, atol=1e-5)
    a, b = model.decode(z), twin.decode(z)
    for ca, cb, ea, eb in zip(a.coords, b.coords, a.energy, b.energy):
        order_a, order_b = np.lexsort(ca.T), np.lexsort(cb.T)
        assert np.array_equal(ca[order_a], cb[order_b])
        assert np.allclose(ea[order_a], eb[order_b], atol=1e-4)


# ---------------------------------------------------------------- latent generators
def _latent_data(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents (n, 2, 4, 4, 4) in the autoencoder's layout: channel 0 occupancy (+1 on the event,
    -1 elsewhere), channel 1 a feature (0 off the event). Muons (pid 2) occupy site (1, 1, 1) with
    feature +0.5, electrons (pid 1) site (2, 2, 2) with feature -0.5."""
    pid = torch.tensor([2, 1] * (n // 2))
    z = torch.zeros(n, 2, 4, 4, 4)
    z[:, 0] = -1.0
    z[pid == 2, :, 1, 1, 1] = torch.tensor([1.0, 0.5])
    z[pid == 1, :, 2, 2, 2] = torch.tensor([1.0, -0.5])
    return z, pid, torch.full((n,), 400.0)


def test_latent_scale_is_the_per_channel_rms_over_all_sites():
    z, _, _ = _latent_data(8)
    model = LatentGenerator3D(FlowMatching(), channels=2, grid=4, base=8, mults=(1, 2), emb_dim=16)
    model.set_scale(z)
    # occupancy (+1/-1 everywhere) keeps its scale; the feature, 0.5 at one site of 64, has RMS 0.5 / 8
    assert torch.allclose(model.latent_scale, torch.tensor([1.0, 0.0625]))


@pytest.mark.parametrize("process", ["flow", "vpsde"])
def test_latent_generator_learns_the_conditional_latents(process, tmp_path):
    from voxgen.generative.solvers import SamplerConfig

    torch.manual_seed(0)
    z, pid, momentum = _latent_data(64)
    model = LatentGenerator3D(
        FlowMatching() if process == "flow" else ScoreSDE(),
        channels=2,
        grid=4,
        base=16,
        mults=(1, 2),
        emb_dim=32,
        p_uncond=0.1,
    )
    model.set_scale(z)
    first = model.loss((z[:16], pid[:16], momentum[:16]))["loss"].item()
    cfg = TrainerConfig(epochs=40, lr=3e-3, log_every=10, progress=False, device="cpu", checkpoint_every=10_000)
    last = train(model, tensor_batches((z, pid, momentum), 16, 0), cfg, tmp_path)
    assert last["loss"] < 0.5 * first
    sampler = (
        FlowSamplerConfig(method="midpoint", steps=10, guidance=1.0)
        if process == "flow"
        else SamplerConfig(method="euler_maruyama", steps=50, guidance=1.0)
    )
    samples, nfe = model.sample(
        torch.tensor([2] * 8 + [1] * 8), torch.full((16,), 400.0), sampler, generator=torch.Generator().manual_seed(0)
    )
    assert samples.shape == (16, 2, 4, 4, 4) and nfe == (40 if process == "flow" else 100)
    muon_site, electron_site = samples[:, :, 1, 1, 1], samples[:, :, 2, 2, 2]
    # each request occupies its own site (channel 0 near +1) with its feature's sign, and not the other's
    assert muon_site[:8, 0].mean() > 0.5 and muon_site[:8, 1].mean() > 0.25
    assert electron_site[8:, 0].mean() > 0.5 and electron_site[8:, 1].mean() < -0.25
    assert muon_site[8:, 0].mean() < -0.5 and electron_site[:8, 0].mean() < -0.5


# ---------------------------------------------------------------- recipes end to end
TINY = [
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=3",
    "trainer.progress=false",
    "trainer.device=cpu",
    "batch_size=4",
    "autoencoder.trainer.epochs=1",
    "autoencoder.trainer.max_steps_per_epoch=3",
    "autoencoder.model.widths=[8,8,8,8]",
    "autoencoder.model.context_width=4",
    "model.base=8",
    "model.mults=[1,2]",
    "report.n=8",
    "report.per_condition=2",
    "report.momenta=[200,600]",
    "report.displays=1",
    "latent_copies=1",
    "calibration_samples=4",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny flowmatch3d run (its own autoencoder) and a diffusion3d run reusing that autoencoder."""
    root = tmp_path_factory.mktemp("gen3d")
    simulate_splits(SimConfig(species=["mu-", "e-"]), root / "data", {"train": 24, "test": 16}, seed=3, progress=False)
    data = f"data.root={root / 'data'}"
    assert main(["train", "conf=flowmatch3d", f"out={root / 'fm'}", data, *TINY, "ssnet3d=null"]) == 0
    assert (
        main(
            [
                "train",
                "conf=diffusion3d",
                f"out={root / 'vp'}",
                data,
                *TINY,
                "ssnet3d=null",
                f"autoencoder_run={root / 'fm' / 'autoencoder'}",
                "sampler.steps=4",
            ]
        )
        == 0
    )
    return root


def test_flowmatch3d_run_writes_report_exports_and_figures(runs):
    fm = runs / "fm"
    figures = json.loads((fm / "metrics.json").read_text())
    assert figures["process"] == "flow" and figures["samples"] == 8
    assert figures["network_evaluations_per_event"] == 20  # midpoint, 10 steps
    ae = figures["autoencoder"]
    assert (
        0 <= ae["occupancy_iou"] <= 1
        and ae["coarse_occupancy_recall"] == 1.0
        and ae["latent_shape"] == [17, 16, 16, 16]
    )
    assert set(figures["evaluation"]) == {"n", "candidate", "floor"}
    assert "pca_length" in "".join(figures["evaluation"]["candidate"])
    report = (fm / "report.md").read_text()
    for part in (
        "## Autoencoder",
        "## Generated vs held-out events",
        "## Conditioning",
        "conditioning.png",
        "samples/event_000.png",
    ):
        assert part in report
    # held-out events beside generated events of the same requests, first in the report: 2 per species
    assert [name.split(" at ")[0] for name in figures["comparison"]] == ["electron", "electron", "muon", "muon"]
    assert (fm / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.index("](comparison.png)") < report.index("## Autoencoder") and "connected tracks" in report
    parquet, h5 = read_parquet(fm / "samples" / "events.parquet"), open_events(fm / "samples" / "events.h5")
    assert len(parquet) == len(h5) == 8
    for a, i in zip(parquet, range(8)):
        b = h5[i]
        assert np.array_equal(a.coords, b.coords) and np.allclose(a.energy, b.energy)
    assert (fm / "evaluation" / "report.md").is_file() and (fm / "autoencoder" / "test_reconstruction.png").is_file()


def test_a_rerun_with_the_same_seed_repeats_the_training(runs, tmp_path):
    """Initial weights are drawn after seeding too, so two runs of a recipe log the same losses."""
    import csv

    args = [
        "train",
        "conf=autoencoder3d",
        f"data.root={runs / 'data'}",
        "trainer.epochs=1",
        "trainer.max_steps_per_epoch=3",
        "trainer.log_every=1",
        "trainer.progress=false",
        "trainer.device=cpu",
        "batch_size=4",
        "model.widths=[8,8,8,8]",
        "model.context_width=4",
    ]
    losses = []
    for name in ("a", "b"):
        torch.manual_seed(len(losses))  # whatever the process's random state before the run
        assert main([*args, f"out={tmp_path / name}"]) == 0
        with (tmp_path / name / "metrics.csv").open() as f:
            losses.append([float(row["loss"]) for row in csv.DictReader(f)])
    assert len(losses[0]) == 3 and losses[0] == losses[1]


def test_diffusion3d_reuses_the_autoencoder(runs):
    vp = runs / "vp"
    figures = json.loads((vp / "metrics.json").read_text())
    assert figures["process"] == "vpsde" and figures["network_evaluations_per_event"] == 4
    assert not (vp / "autoencoder").exists()


@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_sample_writes_conditioned_events(runs, tmp_path, fmt):
    out = tmp_path / "s"
    assert (
        main(
            [
                "sample",
                "conf=flowmatch3d",
                f"ckpt={runs / 'fm'}",
                "n=3",
                "cond.particle=muon",
                "cond.momentum=500",
                f"out={out}",
                f"format={fmt}",
                "trainer.progress=false",
                "sampler.steps=2",
                "sampler.method=euler",
            ]
        )
        == 0
    )
    events = open_events(out / f"events.{fmt}")
    assert len(events) == 3 and all(len(events[i]) >= 1 for i in range(3))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["figures"]["network_evaluations_per_event"] == 2
    if fmt == "parquet":
        assert all(
            e.particles[0].pid == 2 and e.particles[0].momentum == 500 for e in read_parquet(out / "events.parquet")
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["format=ply"], "not an event format"),
        (["cond.particle=kaon"], "unknown particle"),
        (["sampler.method=euler_maruyama"], "solves a VP-SDE"),
    ],
)
def test_sample_bad_requests_fail_in_one_line(runs, tmp_path, capsys, args, message):
    code = main(
        [
            "sample",
            "conf=flowmatch3d",
            f"ckpt={runs / 'fm'}",
            "n=2",
            f"out={tmp_path / 's'}",
            "trainer.progress=false",
            *args,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s" / "events.ply").exists()


def test_latent_generator_refuses_a_foreign_autoencoder_run(runs, tmp_path, capsys):
    code = main(
        [
            "train",
            "conf=diffusion3d",
            f"out={tmp_path / 'x'}",
            f"data.root={runs / 'data'}",
            *TINY,
            f"autoencoder_run={runs / 'fm'}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "not autoencoder3d" in err and len(err.splitlines()) == 1


def test_fold_is_a_lossless_block_to_channel_map():
    from voxgen.models.latent3d import fold, unfold

    x = torch.randn(2, 3, 8, 8, 8)
    folded = fold(x, 2)
    assert folded.shape == (2, 24, 4, 4, 4) and torch.equal(unfold(folded, 2), x)
    assert torch.equal(folded[0, :8, 1, 2, 3], x[0, 0, 2:4, 4:6, 6:8].flatten())


def test_channels_last_layout_changes_no_numbers():
    """The dense 3D stacks run channels-last (NDHWC) for speed; the same weights in the default
    layout give the same outputs and gradients, and checkpoints load into either."""
    torch.manual_seed(0)
    model = LatentGenerator3D(FlowMatching(), channels=2, grid=8, base=8, mults=(1, 2), emb_dim=16, patch=2)
    assert model.net.stem.weight.is_contiguous(memory_format=torch.channels_last_3d)
    plain = LatentGenerator3D(FlowMatching(), channels=2, grid=8, base=8, mults=(1, 2), emb_dim=16, patch=2)
    plain.net.to(memory_format=torch.contiguous_format)
    plain.load_state_dict(model.state_dict())
    x, t = torch.randn(3, 2, 8, 8, 8), torch.rand(3)
    pid, momentum = torch.tensor([0, 2, -1]), torch.tensor([100.0, 400.0, 0.0])
    out, ref = model.network(x, t, pid, momentum), plain.network(x, t, pid, momentum)
    assert torch.allclose(out, ref, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    grad, ref_grad = (
        model.net.stem.weight.grad,
        plain.net.stem.weight.grad,
    )  # entries up to ~20: float32 sums differ in order
    assert torch.allclose(grad, ref_grad, rtol=1e-3, atol=1e-4 * float(ref_grad.abs().max()))

    ae = SparseAutoencoder3D("spconv", widths=(4, 4, 4, 4), feature_channels=2, context_width=8)
    assert ae.dense[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    z = torch.randn(2, 3, 16, 16, 16)
    assert torch.allclose(ae.dense(z), ae.dense.to(memory_format=torch.contiguous_format)(z), atol=1e-5)


def test_calibrated_occupancy_level_keeps_the_training_fraction():
    from voxgen.models.latent3d import calibrate_occupancy

    torch.manual_seed(0)
    model = LatentGenerator3D(FlowMatching(), channels=2, grid=4, base=8, mults=(1, 2), emb_dim=16)
    pid, momentum = torch.tensor([2, 1] * 4), torch.full((8,), 300.0)
    sampler = FlowSamplerConfig(method="euler", steps=2)
    level = calibrate_occupancy(model, 0.25, pid, momentum, sampler, seed=3)
    samples, _ = model.sample(pid, momentum, sampler, generator=torch.Generator().manual_seed(3))
    assert (samples[:, 0] > level).float().mean().item() == pytest.approx(0.25, abs=1 / 512)
