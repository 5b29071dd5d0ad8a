"""Ray scale-out costs on this machine: sharded sampling with 1 and 2 Ray workers against the
local run, Ray's overhead per task, and a sweep's wall time against its trials' summed time.

    python tools/bench_ray.py --crops 2000 --tasks 200

The sampler is a small untrained VP-SDE (its cost per crop, not its quality, matters here); the
sweep trains the tiny SSNet2D of the tests. Prints ratios against baselines measured in the same
run.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from omegaconf import OmegaConf

from voxgen.cli import main as voxgen
from voxgen.config import compose_config
from voxgen.runs import model_spec, save_conditions
from voxgen.sample import generate
from voxgen.scale.shards import RayShards
from voxgen.shards import local_shards
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_splits


def small_vpsde_run(root: Path) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    cfg = compose_config("vpsde2d", ["model.base=8", "model.mults=[1,2]", "model.emb_dim=16"])
    (root / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.save({"model": model_spec("vpsde2d").build(cfg.model).state_dict()}, root / "checkpoints" / "last.pt")
    save_conditions(root, np.array([2, 1]), np.array([300.0, 200.0]))
    return root


def sample_seconds(run: Path, n: int, shards) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images = generate(run, n, seed=0, device="cpu", sampler={"steps": 4}, progress=False, shards=shards).crops.images
    return time.perf_counter() - start, images


def task_overhead(tasks: int) -> float:
    """Seconds per empty task, submitted together and gathered."""
    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get([noop.remote() for _ in range(20)])  # workers started
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(tasks)])
    return (time.perf_counter() - start) / tasks


def sweep_times(root: Path) -> tuple[float, float, int]:
    data = root / "data"
    simulate_splits(SimConfig(species=["mu-", "e-"]), data, {"train": 12, "test": 8}, seed=0, progress=False)
    out = root / "sweep"
    args = ["tune", "conf=ssnet2d", "tune=ssnet2d_lr", f"out={out}", f"data.root={data}", "model.base=8"]
    args += ["batch_size=8", "data.crops_per_event=2", "trainer.epochs=3", "trainer.device=cpu", "ray.address=local"]
    assert voxgen(args) == 0
    figures = json.loads((out / "manifest.json").read_text())["figures"]
    with (out / "results.csv").open() as f:
        trials = len(list(csv.DictReader(f)))
    return figures["wall_seconds"], figures["trial_seconds_summed"], trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=2000, help="crops sampled (250 per task)")
    parser.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = small_vpsde_run(root / "run")
        threads = torch.get_num_threads()
        local, reference = sample_seconds(run, args.crops, local_shards)
        torch.set_num_threads(1)
        local_one, _ = sample_seconds(run, args.crops, local_shards)
        torch.set_num_threads(threads)
        rows = [("local, one process", threads, local), ("local, one process", 1, local_one)]
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False)
            sample_seconds(run, 250 * workers, RayShards(1))  # workers started, model shipped once
            seconds, images = sample_seconds(run, args.crops, RayShards(1))
            if workers == 1:
                overhead = task_overhead(args.tasks)
            ray.shutdown()
            rows.append((f"Ray, {workers} worker{'s' * (workers > 1)}", 1, seconds))
            assert np.array_equal(images.shape, reference.shape)
        print(f"sampling {args.crops} crops (tiny VP-SDE, 4 steps, {args.crops // 250} tasks of 250):")
        print(f"{'run':<24} {'threads':>7} {'seconds':>8} {'crops/s':>8} {'vs local':>9}")
        for name, t, seconds in rows:
            print(f"{name:<24} {t:>7} {seconds:>8.2f} {args.crops / seconds:>8.0f} {local / seconds:>8.2f}x")
        print(f"Ray overhead per empty task: {overhead * 1e3:.2f} ms ({args.tasks} tasks)")
        wall, summed, trials = sweep_times(root)
        print(f"sweep of {trials} trials: wall {wall:.1f} s, trials' summed time {summed:.1f} s", end="")
        print(f" (summed / wall {summed / wall:.2f})")


if __name__ == "__main__":
    main()
