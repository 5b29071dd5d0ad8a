"""The 3D generator: flow path and ODE solves, the cascade (levels, targets, assembly, training,
backend parity, conditioning), and the recipes end to end (train, report, exports, sample, bad
input)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from voxgen.cli import main
from voxgen.data.batches import event_batches, sparse_batch
from voxgen.errors import ConfigError
from voxgen.evaluate.observables import event_observables
from voxgen.evaluate.topology import topology_observables
from voxgen.events import Clusters, Event, Particle
from voxgen.generative.flow import CondOTPath, FlowMatching, FlowSamplerConfig, flow_matching_loss, integrate_flow
from voxgen.io.parquet import read_parquet
from voxgen.io.sources import open_events
from voxgen.models.cascade3d import OFFSETS, SparseCascade3D, bridge_children, cascade_levels
from voxgen.nn.sparse import get_backend, match_coordinates
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


# ---------------------------------------------------------------- the cascade
def test_cascade_levels_reach_a_small_top_grid():
    assert [cascade_levels(g) for g in (32, 128, 256, 768)] == [4, 6, 7, 8]
    assert [g // 2 ** cascade_levels(g) for g in (32, 128, 256, 768)] == [2, 2, 2, 3]
    with pytest.raises(ConfigError, match="model.grid"):
        cascade_levels(5)


def tiny_cascade(process=None, backend: str = "spconv", seed: int = 0, **options) -> SparseCascade3D:
    torch.manual_seed(seed)
    return SparseCascade3D(process or FlowMatching(), backend, grid=GRID, widths=(8, 16), emb_dim=16, **options)


def test_cascade_options_out_of_range_fail_by_key():
    with pytest.raises(ConfigError, match="model.self_condition"):
        tiny_cascade(self_condition=1.0)
    with pytest.raises(ConfigError, match="model.fine_events"):
        tiny_cascade(fine_events=0)
    with pytest.raises(ConfigError, match="model.bridge"):
        tiny_cascade(bridge="diagonals")


def _children(parents: torch.Tensor, occupied: torch.Tensor) -> np.ndarray:
    """(K, 3) voxel coordinates of the occupied children (P, 8) of ``parents`` (P, 4)."""
    rows, slots = occupied.nonzero(as_tuple=True)
    return (2 * parents[rows, 1:] + OFFSETS[slots]).numpy()


def _pieces(coords: np.ndarray) -> int:
    from voxgen.evaluate.topology import component_labels

    return len(np.unique(component_labels(coords)))


@pytest.mark.parametrize(
    "reach, step, pieces",
    [
        ("none", (1, 0, 0), 2),
        ("faces", (1, 0, 0), 1),
        ("faces", (1, 1, 0), 2),
        ("edges", (1, 1, 0), 1),
        ("edges", (1, 1, 1), 2),
        ("corners", (1, 1, 1), 1),
    ],
)
def test_bridging_joins_the_children_of_adjacent_parents(reach, step, pieces):
    # two parents one step apart, each with one child on the far side from the other
    parents = torch.tensor([[0, 4, 4, 4], [0, 4 + step[0], 4 + step[1], 4 + step[2]]])
    far = [int("".join("0" if d else "1" for d in step), 2), int("".join("1" if d else "0" for d in step), 2)]
    occupied = torch.zeros(2, 8, dtype=torch.bool)
    occupied[0, far[0]] = occupied[1, far[1]] = True
    scores = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    bridged = bridge_children(parents, occupied, scores, reach)
    assert _pieces(_children(parents, bridged)) == pieces
    assert (bridged | occupied).eq(bridged).all()  # children are added, never removed
    assert bridged.sum() - occupied.sum() == (0 if pieces == 2 else 2)


def test_bridging_keeps_a_connected_chain_of_parents_connected():
    # a wandering chain of parents, each step a face, an edge or a corner, with random children
    gen = torch.Generator().manual_seed(1)
    steps = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, -1, 0], [1, 1, -1]] * 3)
    sites = torch.cat([torch.zeros(1, 3, dtype=torch.long), steps.cumsum(0)]) + 20
    parents = torch.cat([torch.zeros(len(sites), 1, dtype=torch.long), sites], dim=1)
    occupied = torch.rand(len(parents), 8, generator=gen) < 0.2
    occupied[torch.arange(len(parents)), torch.randint(0, 8, (len(parents),), generator=gen)] = True
    scores = torch.randn(len(parents), 8, generator=gen)
    assert _pieces(_children(parents, occupied)) > 1
    assert _pieces(_children(parents, bridge_children(parents, occupied, scores, "corners"))) == 1
    # a second event with the same sites is bridged on its own: nothing joins across events
    both = torch.cat([parents, parents + torch.tensor([1, 0, 0, 0])])
    bridged = bridge_children(both, occupied.repeat(2, 1), scores.repeat(2, 1), "corners")
    assert torch.equal(bridged[: len(parents)], bridged[len(parents) :])


def test_level_targets_hold_each_parents_children():
    model = tiny_cascade()
    # one event: voxels (0,0,0) 1 MeV and (1,0,1) 2 MeV share the stride-2 parent (0,0,0); (5,4,4) 4 MeV
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 1], [0, 5, 4, 4]])
    energy = torch.tensor([1.0, 2.0, 4.0])
    level0 = model.level_targets(coords, energy, 1, 0)
    assert level0.coords.tolist() == [[0, 0, 0, 0], [0, 2, 2, 2]]
    bits = level0.x[:, :8]
    assert bits[0].tolist() == [1, -1, -1, -1, -1, 1, -1, -1]  # slots 0 = (0,0,0) and 5 = (1,0,1)
    assert bits[1].tolist() == [-1, -1, -1, -1, 1, -1, -1, -1]  # slot 4 = (1,0,0)
    e = model._energy(level0.x[:, 8:], 0)
    assert e[0, 0].item() == pytest.approx(1.0) and e[0, 5].item() == pytest.approx(2.0)
    assert e[1, 4].item() == pytest.approx(4.0)
    assert model._energy(level0.parent_energy, 1).tolist() == pytest.approx([3.0, 4.0])
    top = model.level_targets(coords, energy, 1, model.levels - 1)
    # the top grid: all 2^3 stride-16 sites; the voxels fill stride-8 child 0 of the first
    assert len(top.coords) == 2**3 and (top.x[:, :8] > 0).nonzero().tolist() == [[0, 0]]
    assert (top.parent_energy == 0).all()


def test_sampling_with_the_true_children_rebuilds_the_event():
    """The cascade's assembly: solving each level exactly (an oracle for the process) turns the
    top grid into the event's voxels and energies."""
    rng = np.random.default_rng(1)
    events = [toy_event(rng) for _ in range(3)]
    model = tiny_cascade()
    model.set_scale(events)
    coords, energy, _, n = sparse_batch(events)

    def oracle(batch, pid, momentum, sampler, generator=None, progress=False):
        level = int(batch.level[0])
        truth = model.level_targets(coords, energy[:, 0], n, level)
        rows = match_coordinates(batch.coords, truth.coords)
        assert (rows >= 0).all()  # every parent made is a true parent
        return truth.x[rows], 1

    model.solve_level = oracle
    out_coords, out_energy, nfe = model.sample(torch.tensor([2, 2, 1]), torch.full((3,), 300.0), None)
    assert nfe == model.levels
    for event, c, e in zip(events, out_coords, out_energy):
        order, truth = np.lexsort(c.T), np.lexsort(event.coords.T)
        assert np.array_equal(c[order], event.coords[truth])
        assert np.allclose(e[order], event.energy[truth], rtol=1e-4)


@pytest.mark.parametrize("balance", [False, True])
def test_training_groups_share_one_time_per_event_and_level(balance):
    model = tiny_cascade()
    model.balance_levels = balance
    events = [toy_event(np.random.default_rng(i)) for i in range(2)]
    model.set_scale(events)
    seen = {}

    def record(network, x, generator=None, groups=None, weights=None):
        seen["groups"], seen["rows"], seen["weights"] = groups, len(x), weights
        return x.sum()

    model.process = SimpleNamespace(loss=record)
    coords, energy, labels, n = sparse_batch(events)
    model.loss((coords, energy, labels, n, torch.tensor([2, 1]), torch.tensor([300.0, 50.0])))
    groups = seen["groups"]
    assert seen["rows"] == len(groups) and int(groups.max()) + 1 == n * model.levels
    if not balance:
        assert seen["weights"] is None  # every parent weighs the same
        return
    # every level weighs the same: its rows' weights sum to 1 (items of a level are n consecutive groups)
    per_level = torch.zeros(model.levels).index_add_(0, groups // n, seen["weights"])
    assert torch.allclose(per_level, torch.ones(model.levels))


def two_species(n: int, seed: int = 0) -> tuple[list[Event], np.ndarray, np.ndarray]:
    """``n`` toy events: muons (pid 2) a straight 20-voxel track, electrons (pid 1) a compact blob."""
    rng = np.random.default_rng(seed)
    events, pid = [], np.array([2, 1] * (n // 2))
    for p in pid:
        centre = rng.uniform(12, 20, 3)
        if p == 2:
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            points = centre + np.outer(np.arange(-10, 10), direction)
        else:
            points = centre + rng.normal(scale=1.0, size=(15, 3))
        coords = np.unique(np.clip(np.round(points), 0, GRID - 1).astype(int), axis=0)
        energy = rng.uniform(0.5, 1.5, len(coords))
        events.append(Event(coords, energy, particles=[Particle(int(p), 300.0, (0.0,) * 3, (1.0, 0, 0))], grid=GRID))
    return events, pid, np.full(n, 300.0, np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    events, pid, momentum = two_species(64)
    model = tiny_cascade(seed=0)
    model.set_scale(events)
    first = [
        model.loss(batch)["loss"].item() for batch in event_batches(events, 16, 5, GRID, False, (pid, momentum))(0)
    ]
    cfg = TrainerConfig(epochs=60, lr=3e-3, log_every=20, progress=False, device="cpu", checkpoint_every=10_000)
    last = train(model, event_batches(events, 16, 0, GRID, True, (pid, momentum)), cfg, tmp_path_factory.mktemp("c"))
    return model.eval(), float(np.mean(first)), last


def _medians(model, pid: int, n: int = 8) -> dict:
    sampler = FlowSamplerConfig(method="midpoint", steps=8)
    coords, energy, _ = model.sample(
        torch.full((n,), pid), torch.full((n,), 300.0), sampler, torch.Generator().manual_seed(0)
    )
    events = [Event(c, e, grid=GRID) for c, e in zip(coords, energy)]
    rows = [{**topology_observables(e), **event_observables(e)} for e in events]
    return {k: float(np.median([r[k] for r in rows])) for k in ("largest_share", "n_clusters", "pca_length")} | {
        "voxels": float(np.median([len(e) for e in events]))
    }


def test_training_lowers_the_loss_and_makes_connected_events(trained):
    model, first, last = trained
    assert last["loss"] < 0.6 * first
    untrained = tiny_cascade(seed=0)
    untrained.set_scale(two_species(64)[0])
    muons, electrons, blind = _medians(model, 2), _medians(model, 1), _medians(untrained.eval(), 2)
    # the untrained twin scatters over a thousand voxels in some 60 pieces; after 240 steps the
    # cascade draws a few pieces of the right size (truth: one piece, 20 voxels a muon)
    assert blind["voxels"] > 1000 and 5 < muons["voxels"] < 40 and electrons["voxels"] < 40
    assert muons["n_clusters"] < 10 < blind["n_clusters"]
    assert muons["largest_share"] > 2 * blind["largest_share"]
    # and reads the request: a muon (a 20-voxel track) gets more voxels than an electron (a blob)
    assert muons["voxels"] > 1.5 * electrons["voxels"]


def test_the_network_is_the_same_on_both_backends():
    try:
        get_backend("minkowski")
    except ConfigError:
        pytest.skip("MinkowskiEngine not installed")
    model, twin = tiny_cascade(), tiny_cascade(backend="minkowski", seed=1)
    copy_weights(model.net, twin.net)
    target = twin.state_dict()
    target.update({k: v for k, v in model.state_dict().items() if k in target and target[k].shape == v.shape})
    twin.load_state_dict(target)
    events = [toy_event(np.random.default_rng(i)) for i in range(2)]
    coords, energy, _, n = sparse_batch(events)
    batch = model.level_targets(coords, energy[:, 0], n, 0)
    t, pid, momentum = torch.rand(len(batch.coords)), torch.tensor([2, 1]), torch.tensor([300.0, 80.0])
    t = t[batch.coords[:, 0]]  # one time per event
    out, ref = (
        model.network(batch.x, t, None, pid, momentum, batch),
        twin.network(batch.x, t, None, pid, momentum, batch),
    )
    assert torch.allclose(out, ref, atol=1e-4)


# ---------------------------------------------------------------- recipes end to end
TINY = [
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=3",
    "trainer.progress=false",
    "trainer.device=cpu",
    "batch_size=4",
    "model.widths=[8,16]",
    "model.emb_dim=16",
    "report.n=8",
    "report.per_condition=2",
    "report.momenta=[200,600]",
    "report.displays=1",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny flowmatch3d run and a tiny diffusion3d run."""
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
    assert figures["levels"] == 6 and figures["network_evaluations_per_event"] == 120  # midpoint, 10 steps a level
    assert set(figures["evaluation"]) == {"n", "candidate", "floor"}
    assert "pca_length" in "".join(figures["evaluation"]["candidate"])
    report = (fm / "report.md").read_text()
    for part in (
        "## Goals",
        "## Topology and SSNet3D class rates per requested species",
        "## Generated vs held-out events",
        "## Conditioning",
        "conditioning.png",
        "samples/event_000.png",
    ):
        assert part in report
    # held-out events beside generated events of the same requests, first in the report: 2 per species
    assert [name.split(" at ")[0] for name in figures["comparison"]] == ["electron", "electron", "muon", "muon"]
    assert (fm / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.index("](comparison.png)") < report.index("## Goals") and "connected tracks" in report
    assert set(figures["species"]) == {"electron", "muon"} and figures["species"]["muon"]["real"]["largest_share"] > 0.5
    goals = {g["goal"]: g for g in figures["goals"]}
    assert "muon: largest-cluster share" in goals and "kl_pca_length / floor" in goals
    parquet, h5 = read_parquet(fm / "samples" / "events.parquet"), open_events(fm / "samples" / "events.h5")
    assert len(parquet) == len(h5) == 8
    for a, i in zip(parquet, range(8)):
        b = h5[i]
        assert np.array_equal(a.coords, b.coords) and np.allclose(a.energy, b.energy)
    assert (fm / "evaluation" / "report.md").is_file()


def test_a_rerun_with_the_same_seed_repeats_the_training(runs, tmp_path):
    """Initial weights are drawn after seeding too, so two runs of a recipe log the same losses."""
    import csv

    args = [
        "train",
        "conf=flowmatch3d",
        f"data.root={runs / 'data'}",
        *TINY,
        "trainer.epochs=1",
        "trainer.log_every=1",
        "ssnet3d=null",
        "report.n=2",
        "report.momenta=[200]",
        "report.per_condition=1",
        "sampler.steps=1",
        "sampler.method=euler",
    ]
    losses = []
    for name in ("a", "b"):
        torch.manual_seed(len(losses))  # whatever the process's random state before the run
        assert main([*args, f"out={tmp_path / name}"]) == 0
        with (tmp_path / name / "metrics.csv").open() as f:
            losses.append([float(row["loss"]) for row in csv.DictReader(f)])
    assert len(losses[0]) == 3 and losses[0] == losses[1]


def test_diffusion3d_runs_the_same_cascade_as_a_vp_sde(runs):
    figures = json.loads((runs / "vp" / "metrics.json").read_text())
    assert figures["process"] == "vpsde" and figures["network_evaluations_per_event"] == 4 * 6


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
    assert manifest["figures"]["network_evaluations_per_event"] == 2 * 6  # Euler, 2 steps at each of 6 levels
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
