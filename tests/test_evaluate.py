"""`voxgen evaluate`: floors, candidate scores, degradation curves and the written report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxgen.cli import main
from voxgen.data.crops import CropSet
from voxgen.evaluate import degrade
from voxgen.evaluate.event_sets import evaluate_events
from voxgen.evaluate.image_sets import BLIND, HEADLINE, degradation_curves, evaluate_images, reference_halves
from voxgen.io.pilarnet import PilarnetReader
from voxgen.runs import load_model
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits


@pytest.fixture(scope="module")
def ssnet_run(tmp_path_factory):
    """A small SSNet2D trained for a minute on simulated mu-/e- crops, plus its crop sets."""
    root = tmp_path_factory.mktemp("eval")
    simulate_splits(
        SimConfig(species=["mu-", "e-", "p"]), root / "data", {"train": 160, "test": 260}, seed=1, progress=False
    )
    run = root / "ssnet"
    assert (
        main(
            [
                "train",
                "conf=ssnet2d",
                f"out={run}",
                f"data.root={root / 'data'}",
                "model.base=8",
                "trainer.epochs=5",
                "trainer.progress=false",
                "trainer.device=cpu",
                "batch_size=16",
                "data.crops_per_event=8",
            ]
        )
        == 0
    )
    return run, CropSet.load(run / "data" / "test_crops.npz"), root


def trained_segmenter_is_usable(run) -> None:
    assert json.loads((run / "metrics.json").read_text())["charged_pixel_accuracy"] > 0.7


def test_floor_is_small_and_a_bad_candidate_is_far(ssnet_run):
    run, test, _ = ssnet_run
    trained_segmenter_is_usable(run)
    model, _ = load_model(run, "ssnet2d", "cpu")
    train = CropSet.load(run / "data" / "train_crops.npz")  # disjoint from the reference events
    blurred = degrade.DEGRADATIONS["gaussian_blur"](train.images, 1.0, np.random.default_rng(0))
    result = evaluate_images(model, test.images, blurred, n=len(test) // 2, n_emd=60)
    cand, floor = result["candidate"], result["floor"]
    assert set(cand) == set(floor)
    for metric in ("fid", "mmd_features", "mmd_pixels", "pixel_charge_w1", "kl_track_score"):
        assert cand[metric] > 2 * abs(floor[metric]), (metric, cand[metric], floor[metric])
    assert cand["emd_nn"] > floor["emd_nn"]
    assert cand["c2st_accuracy"] > 0.75 and abs(floor["c2st_accuracy"] - 0.5) < 0.1


def test_evaluate_command_writes_report(ssnet_run, tmp_path, capsys):
    run, test, root = ssnet_run
    train = CropSet.load(run / "data" / "train_crops.npz")
    noisy = CropSet(
        degrade.DEGRADATIONS["additive_noise"](train.images, 0.05, np.random.default_rng(1)),
        train.labels,
        train.event,
        train.pid,
        train.momentum,
    )
    cand_path = noisy.save(tmp_path / "noisy.npz")
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                f"reference={run / 'data' / 'test_crops.npz'}",
                f"candidate={cand_path}",
                f"ssnet={run}",
                f"out={out}",
                "n=60",
                "n_emd=30",
                "collapse_n=40",
                "degradations=true",
                "progress=false",
                f"train={run / 'data' / 'train_crops.npz'}",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| fid |" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["candidate"]["fid"] > metrics["floor"]["fid"]
    assert set(metrics["degradations"]) == set(degrade.DEGRADATIONS)
    report = (out / "report.md").read_text()
    pngs = (
        "histograms.png",
        "reference_grid.png",
        "candidate_grid.png",
        "degradations.png",
        "degradations_topology.png",
    )
    for png in pngs:
        assert png in report and (out / png).stat().st_size > 5000
    assert "### Topology under the same degradations" in report and "kl_largest_share" in report
    assert "mode_collapse" in metrics and (out / "manifest.json").is_file()


def test_missing_ssnet_is_one_line(tmp_path, capsys):
    crops = tmp_path / "c.npz"
    CropSet(
        np.zeros((2, 64, 64), np.float32),
        np.zeros((2, 64, 64), np.int64),
        np.zeros(2, int),
        np.zeros(2, int),
        np.zeros(2, np.float32),
    ).save(crops)
    assert main(["evaluate", f"reference={crops}", f"candidate={crops}", f"ssnet={tmp_path}"]) == 2
    assert "not a training run of SSNet2D" in capsys.readouterr().err


def test_headline_metrics_sit_at_the_floor_and_worsen_monotonically(ssnet_run):
    """The yardstick's proof: every headline metric of real vs degraded held-out real images
    equals the real-vs-real floor at strength 0 and rises with every step of strength, except
    where it is blind to a degradation by construction (image_sets.BLIND). At this test's size
    (~1000 images, a 30-second SSNet) a step may dip by sampling noise or once the curve has
    saturated; the n = 1000 figures of docs/results.md with the CPU-preset SSNet rise strictly."""
    run, test, _ = ssnet_run
    model, _ = load_model(run, "ssnet2d", "cpu")
    n = len(test) // 2
    curves = degradation_curves(model, *reference_halves(model, test.images, n, seed=0), n_emd=60)
    floor = evaluate_images(model, test.images, test.images, n=n, n_emd=60)["floor"]
    c2st_error = 2 * np.sqrt(0.25 / (2 * n))  # twice the cross-validated accuracy's standard error
    for name, curve in curves.items():
        assert curve["strength"] == degrade.STRENGTHS[name]
        if name in ("cut_tracks", "scatter_fragments"):
            # topology degradations: the SSNet-feature metrics do not see them (this test's FID
            # under cut_tracks: 2.00 -> 0.72 -> 0.41 -> 1.13); the topology KLs do
            # (tests/test_topology2d.py, docs/evaluation/topology2d.md)
            assert curve["fid"][0] == pytest.approx(floor["fid"], rel=1e-9, abs=1e-12)
            continue
        for metric in HEADLINE:
            values = np.asarray(curve[metric])
            assert values[0] == pytest.approx(floor[metric], rel=1e-9, abs=1e-12), (name, metric)
            if (metric, name) in BLIND:
                continue
            # a step may dip by sampling noise (two C2ST standard errors, or 5% of the rise), or
            # where the curve has saturated: within the top 20% of its rise, where a 30-second
            # SSNet's features stop separating stronger damage (FID 47 -> 133 -> 121 for noise)
            noise = c2st_error if metric == "c2st_accuracy" else 0.05 * (values.max() - values.min())
            # FID's finite-sample bias is of the size of its floor (two samples of one distribution
            # score it) and shrinks with the spread of the features, so a weak degradation that
            # narrows them may dip below the floor by up to the floor itself (10% and 25% pixel
            # dropout: FID 2.00 -> 1.19 -> 0.99 -> 9.22 with this test's SSNet); the rise below
            # is held to the same bound as every other metric's
            dip = max(noise, abs(floor["fid"])) if metric == "fid" else noise
            saturated = values[1:] >= values[0] + 0.8 * (values.max() - values[0])
            assert np.all((np.diff(values) > -dip) | saturated), (name, metric, values)
            assert values[-1] > values[0] + 2 * noise, (name, metric, values)
    for metric in ("emd_nn", "mmd_pixels"):  # unit-charge metrics cannot see a charge scale
        assert np.allclose(curves["rescale_charge"][metric], floor[metric])


@pytest.fixture(scope="module")
def event_sets(tmp_path_factory):
    """Simulated event files: a mixed real set, another mixed sample, and an electrons-only set."""
    root = tmp_path_factory.mktemp("events")
    mixed = SimConfig(species=["mu-", "e-", "p"])
    simulate_splits(mixed, root / "real", {"test": 40}, seed=11, progress=False)
    simulate_splits(mixed, root / "same", {"test": 20}, seed=12, progress=False)
    simulate_splits(SimConfig(species=["e-"]), root / "electrons", {"test": 20}, seed=13, progress=False)
    return root


def test_event_sets_floor_and_a_different_species_mix(event_sets):
    real = PilarnetReader(event_sets / "real" / "test")
    same = PilarnetReader(event_sets / "same" / "test")
    electrons = PilarnetReader(event_sets / "electrons" / "test")
    fair = evaluate_events(real, same, n=20, n_pairs=15, progress=False)
    unfair = evaluate_events(real, electrons, n=20, n_pairs=15, progress=False)
    assert fair["floor"] == unfair["floor"]  # the same two halves of the real set
    assert fair["candidate"]["plane_residual_mean"] < 1e-5  # projections of 3D charge agree
    # electron showers only: no long muon tracks, so the length distribution moves
    assert unfair["candidate"]["kl_pca_length"] > 2 * fair["candidate"]["kl_pca_length"]
    assert unfair["candidate"]["kl_dedx"] == np.inf  # no track voxels at all
    assert np.isfinite(fair["candidate"]["sinkhorn_set"])


def test_evaluate_command_on_event_files(event_sets, tmp_path, capsys):
    out = tmp_path / "eval3d"
    assert (
        main(
            [
                "evaluate",
                f"reference={event_sets / 'real' / 'test'}",
                f"candidate={event_sets / 'electrons' / 'test'}",
                f"out={out}",
                "n=15",
                "n_pairs_events=10",
                "progress=false",
            ]
        )
        == 0
    )
    assert "| chi2_pca_length |" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "events" and metrics["n"] == 15
    assert (out / "histograms.png").stat().st_size > 5000 and "histograms.png" in (out / "report.md").read_text()


def test_mixing_images_and_events_is_one_line(event_sets, tmp_path, capsys):
    crops = tmp_path / "c.npz"
    CropSet(
        np.zeros((4, 64, 64), np.float32),
        np.zeros((4, 64, 64), np.int64),
        np.zeros(4, int),
        np.zeros(4, int),
        np.zeros(4, np.float32),
    ).save(crops)
    assert main(["evaluate", f"reference={crops}", f"candidate={event_sets / 'real' / 'test'}"]) == 2
    assert "both be image sets" in capsys.readouterr().err
