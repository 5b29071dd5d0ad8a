"""Scale-out on a real Ray cluster on this machine: a head and a worker node on loopback
(``ray.cluster_utils.Cluster``). A Tune sweep with early stopping that resumes, data-parallel
training equal to one process, sharded sampling (through the job API) and evaluation equal to
local runs, a worker node lost in the middle of a sharded job and of a training run, and no Ray
process left behind."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from omegaconf import OmegaConf

from voxgen.cli import main
from voxgen.config import compose_config
from voxgen.data.batches import shard_batch
from voxgen.errors import ConfigError
from voxgen.io.sources import open_events
from voxgen.runs import model_spec, save_conditions
from voxgen.scale.sweep import SweepSettings, check_space
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits

ray = pytest.importorskip("ray")

SSNET2D = [
    "conf=ssnet2d",
    "model.base=8",
    "trainer.progress=false",
    "trainer.device=cpu",
    "batch_size=8",
    "data.crops_per_event=2",
]
SAMPLE2D = ["conf=vpsde2d", "sampler.steps=4", "trainer.device=cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (2 CPUs, dashboard and job server) and one worker node (2 CPUs); after the module,
    shut down, and no process of its session may remain."""
    from ray.cluster_utils import Cluster

    os.environ.pop("RAY_ADDRESS", None)
    port = free_port()
    head_args = {"num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port}
    c = Cluster(initialize_head=True, head_node_args=head_args)
    c.worker = c.add_node(num_cpus=2)
    c.wait_for_nodes()
    c.dashboard = f"http://127.0.0.1:{port}"
    session = Path(c.head_node.get_session_dir_path()).name
    yield c
    c.shutdown()
    time.sleep(2)
    left = [
        p.info["name"] for p in psutil.process_iter(["name", "cmdline"]) if session in " ".join(p.info["cmdline"] or [])
    ]
    assert not left, f"Ray processes left running: {left}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_data")
    simulate_splits(SimConfig(species=["mu-", "e-"]), root, {"train": 12, "test": 8}, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def run2d(tmp_path_factory):
    """An untrained, small VP-SDE run: a 250-crop sampling batch takes about a second."""
    root = tmp_path_factory.mktemp("run2d")
    (root / "checkpoints").mkdir()
    torch.manual_seed(0)
    cfg = compose_config("vpsde2d", ["model.base=8", "model.mults=[1,2]", "model.emb_dim=16"])
    (root / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.save({"model": model_spec("vpsde2d").build(cfg.model).state_dict()}, root / "checkpoints" / "last.pt")
    save_conditions(root, np.array([2, 1]), np.array([300.0, 200.0]))
    return root


def local_reference(args: list[str]) -> None:
    """``voxgen <args>`` in this process with one torch thread, as each Ray task of 1 CPU runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)


def crops(folder: Path) -> np.ndarray:
    return np.load(folder / "samples.npz")["images"]


def test_shards_of_a_batch_put_together_are_the_batch():
    coords = torch.tensor([[0, 1, 1, 1], [1, 2, 2, 2], [1, 3, 3, 3], [2, 4, 4, 4], [3, 5, 5, 5]], dtype=torch.int32)
    energy, labels = torch.arange(5.0)[:, None], torch.arange(5)
    batch = (coords, energy, labels, 4, torch.tensor([1, 2, 3, 4]), torch.tensor([10.0, 20.0, 30.0, 40.0]))
    first, second = shard_batch(batch, 0, 2), shard_batch(batch, 1, 2)
    assert first[3] == second[3] == 2
    assert first[0].tolist() == [[0, 1, 1, 1], [1, 2, 2, 2], [1, 3, 3, 3]]
    assert second[0].tolist() == [[0, 4, 4, 4], [1, 5, 5, 5]]  # renumbered from 0
    assert second[1][:, 0].tolist() == [3.0, 4.0] and second[4].tolist() == [3, 4]
    images = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(torch.cat([shard_batch((images,), r, 3)[0] for r in range(3)]), images)
    with pytest.raises(ConfigError, match="do not split evenly over distributed.workers=4"):
        shard_batch((images,), 0, 4)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_requests_are_one_line_and_write_nothing(cluster, data, tmp_path, capsys, run2d):
    out = tmp_path / "run"
    assert (
        main(["train", *SSNET2D, f"data.root={data}", f"out={out}", "ray.address=127.0.0.1:1", "distributed.workers=2"])
        == 2
    )
    assert "ray.address: no Ray cluster answers at 127.0.0.1:1" in one_line_error(capsys)
    assert (
        main(
            [
                "train",
                *SSNET2D,
                f"data.root={data}",
                f"out={out}",
                f"ray.address={cluster.address}",
                "distributed.workers=8",
            ]
        )
        == 2
    )
    assert "distributed.workers=8 (cpus_per_worker=1, use_gpu=False): needs 8 CPUs" in one_line_error(capsys)
    assert main(["train", *SSNET2D, f"data.root={data}", f"out={out}", "distributed.workers=3"]) == 2
    assert "batch_size: 8 does not split evenly over distributed.workers=3" in one_line_error(capsys)
    assert not out.exists()
    with pytest.raises(ConfigError, match="tune/mine.yaml: space key 'model.nope' is not a key of conf=ssnet2d"):
        check_space("ssnet2d", [], SweepSettings(space={"model.nope": {"choice": [1, 2]}}), "mine")
    bad_space = tmp_path / "space"
    assert main(["tune", "conf=ssnet2d", "tune=ssnet2d_lr", f"out={bad_space}", "tune.trials=0"]) == 2
    assert "tune.trials: 0; must be at least 1" in one_line_error(capsys)
    assert main(["sample", f"ckpt={run2d}", f"out={tmp_path / 's'}", *SAMPLE2D, "n=10", "ray.address=127.0.0.1:1"]) == 2
    assert "ray.address: no Ray cluster answers" in one_line_error(capsys)
    assert not (tmp_path / "s").exists() and not bad_space.exists()
    assert main(["submit", f"ray.dashboard={cluster.dashboard}", "--", "python", "-c", "print(1)"]) == 2
    assert "after -- comes a voxgen command line" in one_line_error(capsys)
    assert main(["submit", "ray.dashboard=http://127.0.0.1:1", "--", "voxgen", "--version"]) == 2
    assert "ray.dashboard: no Ray job server at http://127.0.0.1:1" in one_line_error(capsys)


def test_a_sweep_stops_worse_trials_early_and_resumes(cluster, data, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["tune", *SSNET2D, "tune=ssnet2d_lr", f"out={out}", f"data.root={data}", "trainer.epochs=3"]
    # one trial at a time: ASHA then compares each trial with the ones before it, in a fixed order
    args += ["tune.trials=6", "tune.max_concurrent=1", f"ray.address={cluster.address}"]
    assert main(args) == 0
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert {r["status"] for r in rows} <= {"completed", "stopped early"}
    assert any(r["status"] == "stopped early" and int(r["epochs"]) < 3 for r in rows)
    for r in rows:  # each trial is a voxgen train run folder
        assert (Path(r["run"]) / "config.yaml").is_file() and (Path(r["run"]) / "checkpoints" / "last.pt").is_file()
        assert sum(1 for _ in open(Path(r["run"]) / "metrics.csv")) - 1 == int(r["epochs"])
    best = OmegaConf.load(out / "best.yaml")
    finished = [r for r in rows if r["status"] == "completed"]
    assert best.trainer.lr == pytest.approx(float(min(finished, key=lambda r: float(r["loss"]))["trainer.lr"]))
    assert (out / "trials.png").stat().st_size > 10_000 and (out / "manifest.json").is_file()
    capsys.readouterr()
    assert main(args) == 0  # the same sweep again: restored, nothing retrained
    assert "resuming the sweep" in capsys.readouterr().out
    with (out / "results.csv").open() as f:
        assert [r["trial"] for r in csv.DictReader(f)] == [r["trial"] for r in rows]


def test_two_workers_train_the_same_weights_as_one_process(cluster, data, tmp_path):
    common = [*SSNET2D, f"data.root={data}", "trainer.epochs=2", "model.class_weights=[1.0,1.0,1.0]"]
    assert main(["train", *common, f"out={tmp_path / 'one'}"]) == 0
    two = ["distributed.workers=2", f"ray.address={cluster.address}"]
    assert main(["train", *common, f"out={tmp_path / 'two'}", *two]) == 0
    a = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 6
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, atol=1e-5, rtol=1e-4)
    assert (tmp_path / "two" / "metrics.json").is_file() and (tmp_path / "two" / "manifest.json").is_file()


def test_a_sharded_sample_submitted_as_a_job_equals_the_local_run(cluster, run2d, tmp_path):
    request = [f"ckpt={run2d}", *SAMPLE2D, "n=1000"]
    local_reference(["sample", *request, f"out={tmp_path / 'local'}", "trainer.progress=false"])
    job = ["voxgen", "sample", *request, f"out={tmp_path / 'job'}", "ray.address=auto"]
    submit = ["submit", f"ray.dashboard={cluster.dashboard}", "--"]
    assert main([*submit, *job]) == 0
    np.testing.assert_array_equal(crops(tmp_path / "job"), crops(tmp_path / "local"))
    record = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert record["figures"]["n"] == 1000


def test_sharded_3d_sampling_and_evaluation_equal_local_runs(cluster, data, tmp_path):
    root = tmp_path / "run3d"
    (root / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    cfg = compose_config("flowmatch3d", ["model.widths=[8,16]", "model.emb_dim=16"])
    (root / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.save({"model": model_spec("flowmatch3d").build(cfg.model).state_dict()}, root / "checkpoints" / "last.pt")
    save_conditions(root, np.array([2, 1]), np.array([300.0, 200.0]))
    fast = ["n=2", "sampler.method=euler", "sampler.steps=1", "trainer.device=cpu", "trainer.progress=false"]
    local_reference(["sample", f"ckpt={root}", f"out={tmp_path / 'local'}", *fast])
    assert main(["sample", f"ckpt={root}", f"out={tmp_path / 'ray'}", *fast, f"ray.address={cluster.address}"]) == 0
    a, b = open_events(tmp_path / "local" / "events.parquet"), open_events(tmp_path / "ray" / "events.parquet")
    for i in range(2):
        np.testing.assert_array_equal(a[i].coords, b[i].coords)
        np.testing.assert_allclose(a[i].energy, b[i].energy, rtol=1e-6)
    scores = ["evaluate", f"reference={data / 'test'}", f"candidate={data / 'train'}", "n=4", "n_pairs_events=4"]
    assert main([*scores, f"out={tmp_path / 'ev_local'}", "progress=false"]) == 0
    assert main([*scores, f"out={tmp_path / 'ev_ray'}", "progress=false", f"ray.address={cluster.address}"]) == 0
    local, sharded = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("ev_local", "ev_ray"))
    for side in ("candidate", "floor"):
        for key, value in local[side].items():
            assert sharded[side][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


class Watched:
    """A voxgen command in a subprocess, its output gathered as it comes."""

    def __init__(self, args: list[str]):
        self.text = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voxgen.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for char in iter(lambda: self.process.stdout.read(1), ""):
            self.text += char

    def wait_for(self, condition, timeout: float = 240.0) -> None:
        end = time.time() + timeout
        while not condition():
            assert self.process.poll() is None, self.text[-3000:]
            assert time.time() < end, self.text[-3000:]
            time.sleep(0.2)

    def finish(self, timeout: float = 300.0) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def lose_worker_node(cluster) -> None:
    """The worker node removed (its tasks and actors die), then a fresh one added in its place."""
    cluster.remove_node(cluster.worker)
    cluster.worker = cluster.add_node(num_cpus=2)


def test_a_sharded_sample_loses_no_shard_when_a_node_is_lost(cluster, run2d, tmp_path):
    local_reference(
        ["sample", f"ckpt={run2d}", f"out={tmp_path / 'local'}", *SAMPLE2D, "n=2000", "trainer.progress=false"]
    )
    job = Watched(
        ["sample", f"ckpt={run2d}", f"out={tmp_path / 'ray'}", *SAMPLE2D, "n=2000", f"ray.address={cluster.address}"]
    )
    job.wait_for(lambda: re.search(r"\| [1-7]/8 ", job.text))  # some shards done, others running
    lose_worker_node(cluster)
    assert job.finish() == 0, job.text[-3000:]
    images = crops(tmp_path / "ray")
    assert len(images) == 2000
    np.testing.assert_array_equal(images, crops(tmp_path / "local"))


def test_training_resumes_from_its_checkpoint_when_a_node_is_lost(cluster, data, tmp_path):
    out = tmp_path / "run"
    args = ["train", *SSNET2D, f"data.root={data}", f"out={out}", "trainer.epochs=12", "distributed.workers=2"]
    job = Watched([*args, "distributed.placement=SPREAD", f"ray.address={cluster.address}"])
    job.wait_for(lambda: (out / "metrics.csv").is_file() and len((out / "metrics.csv").read_text().splitlines()) >= 3)
    lose_worker_node(cluster)
    assert job.finish() == 0, job.text[-3000:]
    assert re.search(r"resuming .* from checkpoints/last.pt: epoch \d+/12", job.text), job.text[-3000:]
    with (out / "metrics.csv").open() as f:
        steps = [int(float(r["step"])) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 36  # 12 epochs of 3 steps, no row twice
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=False)["state"]["step"] == 36


def test_an_interrupted_sweep_resumes_its_trials_from_their_checkpoints(cluster, data, tmp_path):
    out = tmp_path / "sweep"
    args = ["tune", *SSNET2D, "tune=ssnet2d_lr", f"out={out}", f"data.root={data}", "trainer.epochs=8"]
    args += ["tune.trials=2", "tune.scheduler.grace_period=8", f"ray.address={cluster.address}"]
    job = Watched(args)
    trained = lambda: [p for p in (out / "trials").glob("*/metrics.csv") if len(p.read_text().splitlines()) >= 3]
    job.wait_for(lambda: (out / "trials").is_dir() and trained())
    job.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert job.finish() != 0
    rerun = Watched(args)
    assert rerun.finish() == 0, rerun.text[-3000:]
    assert "resuming the sweep" in rerun.text
    assert re.search(r"resuming \S+ from checkpoints/last.pt: epoch [2-8]/8", rerun.text), rerun.text[-3000:]
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] == "completed" and r["epochs"] == "8" for r in rows)
    for r in rows:  # every step logged once across the interruption, every epoch reached
        with (Path(r["run"]) / "metrics.csv").open() as f:
            logged = [(int(float(x["epoch"])), int(x["step"])) for x in csv.DictReader(f)]
        steps = [step for _, step in logged]
        assert steps == sorted(set(steps)) and steps[-1] == 24  # 8 epochs of 3 steps
        assert sorted({epoch for epoch, _ in logged}) == list(range(1, 9))
