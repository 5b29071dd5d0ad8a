"""The main job, ``voxgen train conf=flowmatch3d`` (or ``conf=diffusion3d``), in stages:

1. the cascade generator (``voxgen.train.generators3d``);
2. the SSNet3D of the evaluation (``ssnet3d``: none, a run, or trained into ``<out>/ssnet3d``);
3. samples with the held-out events' conditions, exported to Parquet and PILArNet-M h5, event
   displays with their U/V/Y wire planes, generated events beside held-out events of the same
   requests, the event yardstick against held-out events next to its real-vs-real floor, the
   conditioning study, and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from voxgen.config import compose_config
from voxgen.data.event_crops import event_conditions, event_crops
from voxgen.evaluate.event_sets import evaluate_events
from voxgen.evaluate.generators3d import (
    comparison_study,
    conditioning_study,
    goal_checks,
    plot_conditioning,
    request_name,
    species_study,
    write_generator_report,
)
from voxgen.evaluate.report import write_report
from voxgen.io.export import export_events
from voxgen.pipelines import run_training
from voxgen.runs import load_model
from voxgen.sample import sample_events
from voxgen.train.generators3d import train_generator3d
from voxgen.train.loop import MetricsCallback, write_metrics
from voxgen.viz.display import show_event


def ssnet3d_stage(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None):
    """The SSNet3D of the evaluation: none (``cfg.ssnet3d`` null), the run at ``cfg.ssnet3d``, or
    (``train``) the ``conf=ssnet3d`` CPU preset trained into ``<out>/ssnet3d`` unless already there."""
    if cfg.ssnet3d is None:
        return None
    path = Path(cfg.ssnet3d)
    if cfg.ssnet3d == "train":
        path = out / "ssnet3d"
        ss_cfg = compose_config("ssnet3d", [f"out={path}"])
        ss_cfg.data, ss_cfg.trainer.device, ss_cfg.trainer.progress = cfg.data, cfg.trainer.device, cfg.trainer.progress
        if not (path / "metrics.json").is_file():
            print("SSNet3D for the evaluation ->", path)
            run_training(ss_cfg, on_metrics)
    return load_model(path, "ssnet3d", cfg.trainer.device)[0]


def report_stage(cfg: DictConfig, out: Path, model, sampler, figures: dict, ssnet3d=None) -> dict:
    """Sample, export, display, draw held-out events beside events generated for the same
    requests (``<out>/comparison.png``), evaluate and study conditioning; writes
    ``<out>/report.md`` and returns the headline figures."""
    rep, progress = cfg.report, cfg.trainer.progress
    reference = event_crops(cfg.data, "test", model.grid, progress)
    pid, mom = event_conditions(reference)
    n = min(rep.n, len(reference))
    generated = sample_events(model, pid[:n], mom[:n], sampler, cfg.seed, progress=progress)
    samples = out / "samples"
    exported = [
        p
        for fmt, name in (("parquet", "events.parquet"), ("h5", "events.h5"))
        for p in export_events(generated.events, samples / name, fmt, layout=cfg.layout)
    ]
    displays = [
        show_event(e, samples / f"event_{i:03d}.png", title=f"generated event {i}: {request_name(e)}")
        for i, e in enumerate(generated.events[: rep.displays])
    ]
    draw = lambda p, m, seed: sample_events(model, p, m, sampler, seed, progress=progress).events
    comparison = comparison_study(draw, reference, out / "comparison.png", cfg.seed)
    result = evaluate_events(
        reference,
        generated.events,
        n=n,
        seed=cfg.seed,
        names=("held-out events", "generated events"),
        progress=progress,
        ssnet3d=ssnet3d,
    )
    write_report(out / "evaluation", result, title=f"{cfg.model.name} samples vs held-out events")
    species = species_study(reference, generated.events, ssnet3d)
    study = conditioning_study(draw, reference, list(rep.momenta), rep.per_condition, cfg.seed, ssnet3d)
    plot_conditioning(study, out / "conditioning.png")
    headline = {
        "samples": len(generated.events),
        "seconds_per_event": generated.seconds / max(len(generated.events), 1),
        "network_evaluations_per_event": generated.nfe,
        "evaluation": {k: result[k] for k in ("n", "candidate", "floor")},
        "species": species,
        "goals": goal_checks(species, result),
        "conditioning": study,
        "comparison": comparison,
        "exports": [str(p) for p in exported],
    }
    write_generator_report(out, cfg, figures, headline, result, displays)
    return headline


def generator3d_job(cfg: DictConfig, out: Path, on_metrics: MetricsCallback | None = None) -> dict:
    """Stages 1-3 (module docstring) into ``out``; the run's figures, also in ``metrics.json``."""
    model, figures = train_generator3d(cfg, out, on_metrics)
    sampler = model.process.sampler_settings(OmegaConf.to_container(cfg.sampler))
    ssnet3d = ssnet3d_stage(cfg, out, on_metrics)
    print("stage 3: samples, export, projections, evaluation ->", out)
    figures.update(report_stage(cfg, out, model, sampler, figures, ssnet3d))
    return write_metrics(out, figures)
