"""``voxgen tune conf=<recipe> tune=<space> [tune.<key>=...] [ray.address=...] [out=...] [overrides]``:
a Ray Tune sweep over Hydra overrides of any training recipe.

The space (``conf/tune/<space>.yaml``) names recipe keys and their distributions, the figure
the trials are compared by and the ASHA scheduler that stops the worse trials early. Each trial
is a ``voxgen train`` run in ``<out>/trials/<trial id>``; the training loop reports to Tune after
every epoch, with the run's checkpoint, so a trial Tune restarts resumes from it. Rerun into
the same ``out``, an interrupted sweep resumes (``Tuner.restore``). Written into ``out``:
``results.csv`` (one row per trial), ``best.yaml`` (the best trial's config), ``trials.png`` and
the run record.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from voxgen.config import compose_config, conf_dir
from voxgen.errors import ConfigError
from voxgen.io.atomic import atomic_path, write_text_atomic
from voxgen.manifest import write_run_record
from voxgen.train.parallel import LoopContext, loop_context

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")
USAGE = "usage: voxgen tune conf=<recipe> tune=<space> [tune.<key>=value] [ray.address=...] [out=...] [key=value ...]"


@dataclass
class SweepSettings:
    """A sweep: ``space`` (recipe key -> {distribution: arguments}) and how its trials run."""

    space: dict[str, dict[str, list]] = field(default_factory=dict)
    metric: str = "loss"
    mode: str = "min"
    trials: int = 4
    seed: int = 0
    cpus_per_trial: int = 1
    max_concurrent: int = 0
    scheduler: dict[str, int] = field(default_factory=lambda: {"grace_period": 1, "reduction_factor": 2})

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"tune.mode: '{self.mode}' (min or max)")
        for key in ("trials", "cpus_per_trial"):
            if getattr(self, key) < 1:
                raise ConfigError(f"tune.{key}: {getattr(self, key)}; must be at least 1")
        if self.max_concurrent < 0:
            raise ConfigError(f"tune.max_concurrent: {self.max_concurrent}; 0 (no limit) or more")
        if set(self.scheduler) != {"grace_period", "reduction_factor"} or min(self.scheduler.values()) < 1:
            raise ConfigError(f"tune.scheduler: {self.scheduler}; needs grace_period >= 1 and reduction_factor >= 2")
        if not self.space:
            raise ConfigError("tune.space: empty; name at least one recipe key and its distribution")
        for key, spec in self.space.items():
            if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
                raise ConfigError(f"tune.space.{key}: {spec!r}; one of {', '.join(DISTRIBUTIONS)} with its arguments")


def space_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "tune").glob("*.yaml"))


def load_sweep(name: str, overrides: list[str]) -> SweepSettings:
    """``conf/tune/<name>.yaml`` with ``tune.<key>=value`` ``overrides``; ConfigError naming the key."""
    path = conf_dir() / "tune" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"tune: unknown search space '{name}' (have {', '.join(space_names())})")
    node = OmegaConf.merge(OmegaConf.structured(SweepSettings), OmegaConf.load(path))
    for override in overrides:
        key, _, value = override.partition("=")
        if OmegaConf.select(node, key.removeprefix("tune."), default="<unset>") == "<unset>":
            raise ConfigError(f"unknown config key '{key}' (tune/{name}.yaml has {', '.join(node)})")
        OmegaConf.update(node, key.removeprefix("tune."), OmegaConf.create({"v": value})["v"] if value else None)
    try:
        return SweepSettings(**OmegaConf.to_container(node, resolve=True))
    except TypeError as err:
        raise ConfigError(f"tune/{name}.yaml: {err}") from None


def check_space(recipe: str, overrides: list[str], sweep: SweepSettings, name: str) -> None:
    """ConfigError naming the first space key that ``conf=<recipe>`` does not have."""
    cfg = compose_config(recipe, overrides)
    for key in sweep.space:
        if OmegaConf.select(cfg, key, default="<unset>") == "<unset>":
            raise ConfigError(f"tune/{name}.yaml: space key '{key}' is not a key of conf={recipe}")


def _search_space(space: dict[str, dict[str, list]]) -> dict[str, Any]:
    from ray import tune

    made = {}
    for key, spec in space.items():
        ((kind, args),) = spec.items()
        made[key] = tune.choice(list(args)) if kind == "choice" else getattr(tune, kind)(*args)
    return made


def _report_epoch(row: dict, ckpt: Path | None) -> None:
    """One epoch to Tune: the row's figures and the run's checkpoint."""
    import tempfile

    from ray import tune

    metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(ckpt, Path(folder) / "last.pt")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _trial(params: dict, recipe: str, overrides: list[str], root: str, threads: int) -> None:
    """One trial: ``voxgen train`` of the recipe with the drawn ``params`` into ``<root>/trials/<id>``."""
    import torch
    from ray import tune

    from voxgen.pipelines import run_training
    from voxgen.scale.train import restore_checkpoint

    torch.set_num_threads(threads)
    out = Path(root) / "trials" / tune.get_context().get_trial_id()
    drawn = [f"{key}={value}" for key, value in params.items()]
    cfg = compose_config(recipe, [*overrides, *drawn, f"out={out}", "trainer.progress=false"])
    restore_checkpoint(tune.get_checkpoint(), out)
    with loop_context(LoopContext(on_epoch=_report_epoch)):
        run_training(cfg)


def _trial_endings():
    """A Tune callback whose ``unended`` holds the trials started in this ``fit`` that neither
    completed (all epochs, or stopped by the scheduler) nor failed: Tune marks those terminated
    too when Ctrl-C ends the sweep, so their status alone cannot tell an interrupted sweep."""
    from ray.tune import Callback

    class TrialEndings(Callback):
        def __init__(self) -> None:
            self.unended: set[str] = set()

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.unended.add(trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.unended.discard(trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self.unended.discard(trial.trial_id)

    return TrialEndings()


def _claim(out: Path, record: dict) -> bool:
    """True when ``out`` holds this sweep interrupted (resume it); ConfigError when it holds anything else."""
    saved = out / "sweep.json"
    if not out.exists() or not any(out.iterdir()):
        return False
    if not saved.is_file():
        raise ConfigError(f"out: {out} holds files that are not a voxgen sweep; choose a new out=")
    if json.loads(saved.read_text()) != record:
        raise ConfigError(f"out: {out} holds a sweep of other settings (see its sweep.json); choose a new out=")
    return True


def run_sweep(recipe: str, name: str, overrides: list[str]) -> dict:
    """The sweep ``tune=<name>`` of ``conf=<recipe>``; ``overrides`` mixes ``tune.*``, ``ray.*``,
    ``out=`` and recipe overrides. Returns the figures written to the run record."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from voxgen.scale.cluster import check_resources, ray_session

    own = [o for o in overrides if o.startswith("tune.")]
    address = next((o.split("=", 1)[1] for o in overrides if o.startswith("ray.address=")), None)
    out = Path(next((o.split("=", 1)[1] for o in overrides if o.startswith("out=")), f"runs/tune/{recipe}_{name}"))
    recipe_overrides = [o for o in overrides if not o.startswith(("tune.", "ray.", "out="))]
    sweep = load_sweep(name, own)
    check_space(recipe, recipe_overrides, sweep, name)
    epochs = compose_config(recipe, recipe_overrides).trainer.epochs
    out = out.resolve()
    record = {"recipe": recipe, "space_file": name, "overrides": recipe_overrides, "sweep": asdict(sweep)}
    resuming = _claim(out, record)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sweep.json", json.dumps(record, indent=2) + "\n")
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, recipe=recipe, overrides=recipe_overrides, root=str(out), threads=sweep.cpus_per_trial
        ),
        {"cpu": sweep.cpus_per_trial},
    )
    with ray_session(address if address not in (None, "null") else "local"):
        check_resources(sweep.cpus_per_trial, 0, f"tune.cpus_per_trial={sweep.cpus_per_trial}")
        endings = _trial_endings()
        if resuming and tune.Tuner.can_restore(out / "tune"):
            print(f"resuming the sweep in {out}")
            tuner = tune.Tuner.restore(str(out / "tune"), trainable, resume_unfinished=True, resume_errored=True)
            tuner._local_tuner._run_config.callbacks = [endings]  # the restored run config has none
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=_search_space(sweep.space),
                tune_config=tune.TuneConfig(
                    metric=sweep.metric,
                    mode=sweep.mode,
                    num_samples=sweep.trials,
                    max_concurrent_trials=sweep.max_concurrent or None,
                    search_alg=BasicVariantGenerator(random_state=sweep.seed),
                    scheduler=ASHAScheduler(time_attr="epoch", max_t=epochs, **sweep.scheduler),
                ),
                run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=1, callbacks=[endings]),
            )
        start = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
        if endings.unended or len(grid) < sweep.trials or grid.num_terminated + grid.num_errors < len(grid):
            print(f"the sweep in {out} stopped before its trials ended; rerun the same command to resume it")
            raise KeyboardInterrupt
        rows = _result_rows(grid, out, sweep, epochs)
    return _write_outputs(out, recipe, name, recipe_overrides, sweep, rows, wall)


def _result_rows(grid, out: Path, sweep: SweepSettings, epochs: int) -> list[dict]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        epochs_done = int(metrics.get("epoch", 0))  # the run's own count: it may resume past Tune's
        status = "error" if result.error else ("completed" if epochs_done >= epochs else "stopped early")
        trial_id = metrics.get("trial_id") or Path(result.path).name
        rows.append(
            {
                "trial": trial_id,
                "status": status,
                "epochs": epochs_done,
                sweep.metric: metrics.get(sweep.metric),
                **{key: result.config.get(key) for key in sweep.space},
                "seconds": round(float(metrics.get("time_total_s", 0.0)), 2),
                "run": str(out / "trials" / trial_id),
                "history": result.metrics_dataframe,
            }
        )
    return sorted(rows, key=lambda r: r["trial"])


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _write_outputs(
    out: Path, recipe: str, name: str, overrides: list[str], sweep: SweepSettings, rows: list[dict], wall: float
) -> dict:
    """``results.csv``, ``best.yaml``, ``trials.png`` and the run record of a finished sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] != "error" and r[sweep.metric] is not None]
    if not ok:
        raise ConfigError(f"tune: every trial of the sweep in {out} failed; see {out / 'tune'}")
    finished = [r for r in ok if r["status"] == "completed"] or ok
    best = (min if sweep.mode == "min" else max)(finished, key=lambda r: r[sweep.metric])
    columns = [k for k in rows[0] if k != "history"]
    with atomic_path(out / "results.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: r[k] for k in columns} for r in rows)
    shutil.copyfile(Path(best["run"]) / "config.yaml", out / "best.yaml")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in rows:
        history = r["history"]
        if history is not None and sweep.metric in history:
            label = ", ".join(f"{k.split('.')[-1]}={_short(r[k])}" for k in sweep.space)
            ax.plot(history["epoch"], history[sweep.metric], "o-", label=f"{label} ({r['status']})")
    ax.set(xlabel="epoch", ylabel=sweep.metric, title=f"voxgen tune conf={recipe} tune={name}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "trials.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    figures = {
        "trials": len(rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "stopped_early": sum(r["status"] == "stopped early" for r in rows),
        "errors": sum(r["status"] == "error" for r in rows),
        "best": {"trial": best["trial"], sweep.metric: best[sweep.metric], **{k: best[k] for k in sweep.space}},
        "wall_seconds": round(wall, 2),
        "trial_seconds_summed": round(sum(r["seconds"] for r in rows), 2),
    }
    cfg = OmegaConf.create({"conf": recipe, "tune": name, "overrides": overrides, "sweep": asdict(sweep)})
    outputs = [str(out / n) for n in ("results.csv", "best.yaml", "trials.png")]
    write_run_record(out, "tune", cfg, figures, outputs=outputs)
    best_line = " ".join(f"{k}={best[k]}" for k in sweep.space)
    print(f"best of {len(rows)} trials: {best_line} ({sweep.metric} {best[sweep.metric]:.4g}); {out / 'best.yaml'}")
    return figures


def tune_command(recipe: str, overrides: list[str], want_help: bool) -> int:
    """The CLI's ``voxgen tune``: ``tune=<space>`` picks the space; the rest as in ``run_sweep``."""
    if want_help:
        print("voxgen tune: a Ray Tune sweep over overrides of a training recipe (ASHA early stopping)")
        print(USAGE)
        print(f"search spaces (conf/tune/): {', '.join(space_names())}")
        print("tune.<key>: metric, mode, trials, seed, cpus_per_trial, max_concurrent, scheduler.grace_period,")
        print("  scheduler.reduction_factor (described in conf/tune/ssnet2d_lr.yaml)")
        print("ray.address: null|local (a Ray instance here), auto, host:port; out: the sweep folder")
        return 0
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("tune=")]
    if not names:
        raise ConfigError(f"missing required key 'tune' (a search space: {', '.join(space_names())})")
    run_sweep(recipe, names[-1], [o for o in overrides if not o.startswith("tune=")])
    return 0
