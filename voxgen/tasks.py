"""One function per CLI command: a composed config in, outputs + run record out.

Each is a plain function of its config (so Ray can call it unchanged) and returns the
headline figures it also writes to ``manifest.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from voxgen.config import from_node, required
from voxgen.errors import BadInput, ConfigError
from voxgen.io.atomic import write_text_atomic
from voxgen.io.outputs import check_output_path
from voxgen.io.sources import event_at, event_indices, open_events
from voxgen.manifest import write_run_record
from voxgen.shards import ShardMap, local_shards


@contextmanager
def shard_map(cfg: DictConfig) -> Iterator[ShardMap]:
    """Where the command's shards run: in this process (``ray.address`` null), or as Ray tasks on
    the cluster ``ray.address`` names, connected for the block."""
    ray_cfg = cfg.get("ray")
    if ray_cfg is None or ray_cfg.address is None:
        yield local_shards
        return
    from voxgen.scale.cluster import check_resources, ray_session
    from voxgen.scale.shards import RayShards

    if ray_cfg.cpus_per_task < 1:
        raise ConfigError(f"ray.cpus_per_task: {ray_cfg.cpus_per_task}; must be at least 1")
    with ray_session(ray_cfg.address):
        check_resources(ray_cfg.cpus_per_task, 0, f"ray.cpus_per_task={ray_cfg.cpus_per_task}")
        yield RayShards(ray_cfg.cpus_per_task)


def simulate(cfg: DictConfig) -> dict:
    """Simulate ``cfg.splits`` (events per split) into ``<out>/<split>/*.h5``.

    Rerun into the same ``out`` with the same settings, a killed run resumes: finished shards
    are kept and only the others simulated. Other settings in a used ``out`` are refused.
    """
    from voxgen.sim.config import SimConfig
    from voxgen.sim.generator import simulate_splits
    from voxgen.sim.output import check_settings, claim_folder

    splits = check_settings(cfg)
    sim_cfg = from_node(SimConfig, cfg.sim)
    out = Path(cfg.out)
    claim_folder(cfg, splits, sim_cfg.mode)
    start = time.perf_counter()
    shards = simulate_splits(
        sim_cfg,
        out,
        splits,
        cfg.seed,
        workers=cfg.workers,
        events_per_shard=cfg.events_per_shard,
        progress=cfg.progress,
        resume=True,
        layout=cfg.layout,
    )
    figures: dict = {"mode": sim_cfg.mode, **{f"{k}_events": v for k, v in splits.items() if v > 0}}
    figures["seconds"] = round(time.perf_counter() - start, 2)
    write_run_record(out, "simulate", cfg, figures, outputs=[str(p) for p in shards])
    print(f"wrote {len(shards)} shards to {out} ({figures['seconds']} s)")
    return figures


def inspect(cfg: DictConfig) -> dict:
    """Summarise an event file or folder and print a table; with ``cfg.out``, also write
    ``<out>/summary.json`` and the run record there."""
    from voxgen.io.summary import format_summary, summarize

    path = Path(required(cfg, "in", "an .h5/.parquet file or folder"))
    out = None if cfg.out is None else check_output_path(cfg.out, kind="folder")
    events = open_events(path, cfg.format)
    n = len(events) if cfg.max_events <= 0 else min(cfg.max_events, len(events))
    summary = summarize((events[i] for i in range(n)), n_events=n, progress=cfg.progress)
    print(format_summary(summary))
    if out is not None:
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        write_run_record(out, "inspect", cfg, summary, inputs=[str(path)], outputs=[str(out / "summary.json")])
    return summary


def export(cfg: DictConfig) -> dict:
    """Convert events to ``cfg.format`` (parquet, h5, ply, glb) at ``cfg.out``, replacing a
    previous export there."""
    from voxgen.io.export import check_export, export_events

    src = Path(required(cfg, "in", "an .h5/.parquet file or folder"))
    out = check_output_path(required(cfg, "out", "output file or folder"), kind=None)
    options = {"events_per_shard": cfg.events_per_shard, "layout": cfg.layout}
    check_export(out, cfg.format, **options)
    events = open_events(src, cfg.in_format, fmt_key="in_format")
    selected = [events[i] for i in event_indices(cfg.events, len(events), src)]
    written = export_events(selected, out, cfg.format, color_by=cfg.color_by, **options)
    figures = {"events": len(selected), "files": len(written), "format": cfg.format}
    write_run_record(out, "export", cfg, figures, inputs=[str(src)], outputs=[str(p) for p in written], beside=True)
    print(f"exported {len(selected)} events to {out} ({len(written)} files)")
    return figures


def show(cfg: DictConfig) -> dict:
    """Event display of event ``cfg.event`` of ``cfg.in`` written to ``cfg.out`` (PNG)."""
    from voxgen.detector.planes import PlaneGeometry
    from voxgen.viz.display import show_event

    src = Path(required(cfg, "in", "an .h5/.parquet file or folder"))
    out = check_output_path(cfg.out, kind="file")
    event = event_at(open_events(src, cfg.format), cfg.event, src)
    geometry = PlaneGeometry.from_config(cfg.detector)
    show_event(event, out, geometry=geometry, title=f"{src.name} event {cfg.event}")
    figures = {"voxels": len(event), "energy_mev": round(event.total_energy, 3)}
    write_run_record(out, "show", cfg, figures, inputs=[str(src)], outputs=[str(out)])
    print(f"wrote {out}")
    return figures


def train(cfg: DictConfig) -> dict:
    """Train the recipe's model (``cfg.model.name``); outputs and run record in ``cfg.out``. With
    ``distributed.workers`` > 1, data-parallel on Ray Train (``voxgen.scale.train``)."""
    from voxgen.pipelines import run_training

    if "distributed" in cfg and cfg.distributed.workers != 1:
        from voxgen.scale.train import train_distributed

        figures = train_distributed(cfg)
    else:
        figures = run_training(cfg)
    write_run_record(Path(cfg.out), "train", cfg, figures)
    print(json.dumps(figures, indent=2))
    return figures


def sample(cfg: DictConfig) -> dict:
    """``_sample`` with its shards where ``cfg.ray`` says (connected before anything is written)."""
    with shard_map(cfg) as shards:
        return _sample(cfg, shards)


def _sample(cfg: DictConfig, shards: ShardMap) -> dict:
    """``cfg.n`` samples from the generator run ``cfg.ckpt``, conditions from ``cfg.cond``: crops
    into ``<out>/samples.npz`` (the crop-set format ``voxgen evaluate`` reads) and
    ``<out>/samples.png``, or events into ``<out>/events.parquet`` / ``events.h5`` (``cfg.format``).
    The request and the output folder are checked first; a condition outside the run's training
    conditions is warned about on stderr and listed in the figures' "warnings"; the outputs of a
    previous ``voxgen sample`` into ``out`` are replaced, never left beside the new ones."""
    from voxgen.runs import model_spec, sampleable_run
    from voxgen.sample import (
        condition_warnings,
        generate,
        previous_outputs,
        print_warnings,
        remove_outputs,
        requested_momentum,
    )
    from voxgen.viz.display import crop_grid

    ckpt = cfg.ckpt
    if ckpt is None:
        raise ConfigError(f"missing required key 'ckpt' (a trained run: voxgen train conf={cfg.model.name})")
    if cfg.n < 1:
        raise ConfigError(f"n: {cfg.n} samples asked for; need at least 1")
    if cfg.seed < 0:
        raise ConfigError(f"seed: {cfg.seed}; need a non-negative seed")
    momentum = requested_momentum(cfg.cond.momentum)
    out = Path(cfg.out)
    if (out / "checkpoints").is_dir():  # never over a training run's record or its report's samples/
        out = out / "sampled"
    stale = previous_outputs(check_output_path(out, kind="folder"))
    run, run_cfg = sampleable_run(ckpt)
    warnings = condition_warnings(run, cfg.cond.particle, momentum)
    print_warnings(warnings)
    if model_spec(run_cfg.model.name).samples == "events":
        return _sample_events(cfg, out, stale, warnings, shards)
    result = generate(
        ckpt,
        cfg.n,
        seed=cfg.seed,
        device=cfg.trainer.device,
        particle=cfg.cond.particle,
        momentum=momentum,
        sampler=cfg.sampler,
        progress=cfg.trainer.progress,
        shards=shards,
    )
    remove_outputs(out, stale)
    npz = result.crops.save(out / "samples.npz")
    png = crop_grid(result.crops.images[:64], out_png=out / "samples.png")
    figures = {
        "n": cfg.n,
        "seconds": round(result.seconds, 3),
        "seconds_per_image": result.seconds / cfg.n,
        "network_evaluations_per_image": result.nfe,
        "charged_pixels_per_image": float((result.crops.images > 0).sum() / cfg.n),
        "warnings": warnings,
    }
    write_run_record(out, "sample", cfg, figures, inputs=[str(ckpt)], outputs=[str(npz), str(png)])
    print(f"wrote {cfg.n} samples to {npz} ({figures['seconds']} s, {result.nfe} network evaluations per image)")
    return figures


def _sample_events(cfg: DictConfig, out: Path, stale: list[Path], warnings: list[str], shards: ShardMap) -> dict:
    """``sample`` for a 3D generator run: events in ``cfg.format`` and the first one displayed,
    replacing the ``stale`` outputs of a previous sample in ``out``."""
    from voxgen.io.export import export_events
    from voxgen.io.pilarnet import LAYOUT_DATASETS
    from voxgen.sample import generate_events, remove_outputs
    from voxgen.viz.display import show_event

    if cfg.format not in ("parquet", "h5"):
        raise ConfigError(f"format: '{cfg.format}' is not an event format for sampling (parquet, h5)")
    if cfg.layout not in LAYOUT_DATASETS:
        raise ConfigError(f"layout: unknown PILArNet-M layout '{cfg.layout}' (choose v1, v2)")
    result = generate_events(
        cfg.ckpt,
        cfg.n,
        seed=cfg.seed,
        device=cfg.trainer.device,
        particle=cfg.cond.particle,
        momentum=cfg.cond.momentum,
        sampler=cfg.sampler,
        progress=cfg.trainer.progress,
        shards=shards,
    )
    remove_outputs(out, stale)
    written = export_events(result.events, out / f"events.{cfg.format}", cfg.format, layout=cfg.layout)
    png = show_event(result.events[0], out / "event_000.png", title="generated event 0")
    n_voxels = [len(e) for e in result.events]
    figures = {
        "n": cfg.n,
        "seconds": round(result.seconds, 3),
        "seconds_per_event": result.seconds / cfg.n,
        "network_evaluations_per_event": result.nfe,
        "voxels_per_event": float(np.mean(n_voxels)),
        "warnings": warnings,
    }
    write_run_record(
        out, "sample", cfg, figures, inputs=[str(cfg.ckpt)], outputs=[str(p) for p in written] + [str(png)]
    )
    print(f"wrote {cfg.n} events to {written[0]} ({figures['seconds']} s, {result.nfe} network evaluations per event)")
    return figures


def evaluate(cfg: DictConfig) -> dict:
    """``_evaluate`` with its shards where ``cfg.ray`` says (connected before anything is written)."""
    with shard_map(cfg) as shards:
        return _evaluate(cfg, shards)


def _evaluate(cfg: DictConfig, shards: ShardMap) -> dict:
    """Score ``cfg.candidate`` against ``cfg.reference`` (2D crop sets ``.npz`` or 3D event
    files); ``metrics.json``, ``report.md`` and plots in ``cfg.out``; prints the summary table.
    Counts, the output folder and every item of both sets are checked before any scoring."""
    from voxgen.evaluate.inputs import check_counts
    from voxgen.evaluate.report import summary_table, write_report

    ref_path = Path(required(cfg, "reference", "real images (.npz) or events (.h5/.parquet)"))
    cand_path = Path(required(cfg, "candidate", "candidate images (.npz) or events (.h5/.parquet)"))
    images = ref_path.suffix == ".npz"
    if images != (cand_path.suffix == ".npz"):
        raise BadInput(f"{cand_path}: reference and candidate must both be image sets (.npz) or both event files")
    check_counts(cfg, images)
    out = check_output_path(cfg.out, kind="folder")
    curves = None
    if images:
        result, curves = _evaluate_image_files(cfg, ref_path, cand_path)
    else:
        from voxgen.evaluate.event_sets import evaluate_events

        ssnet3d = None
        if cfg.ssnet3d is not None:
            from voxgen.runs import load_model

            ssnet3d = load_model(cfg.ssnet3d, "ssnet3d", cfg.device)[0]
        result = evaluate_events(
            open_events(ref_path),
            open_events(cand_path),
            n=cfg.n,
            seed=cfg.seed,
            n_pairs=cfg.n_pairs_events,
            names=(str(ref_path), str(cand_path)),
            progress=cfg.progress,
            ssnet3d=ssnet3d,
            crop=cfg.crop,
            shards=shards,
        )
    report = write_report(out, result, curves, title=f"{cand_path.name} vs {ref_path.name}")
    print(summary_table(result))
    print(f"report: {report}")
    figures = {"kind": result["kind"], "n": result["n"], "candidate": result["candidate"], "floor": result["floor"]}
    write_run_record(
        out,
        "evaluate",
        cfg,
        figures,
        inputs=[str(ref_path), str(cand_path)],
        outputs=[str(report), str(out / "metrics.json")],
    )
    return figures


def _evaluate_image_files(cfg: DictConfig, ref_path: Path, cand_path: Path) -> tuple[dict, dict | None]:
    """``evaluate_images`` (and the degradation curves when asked) on two crop-set files, each
    image checked first (``check_images``: the SSNet's crop shape, float, finite, non-negative)."""
    from voxgen.data.crops import CropSet
    from voxgen.evaluate.image_sets import degradation_curves, evaluate_images
    from voxgen.evaluate.inputs import C2ST_FOLDS, check_images
    from voxgen.runs import load_model

    if cfg.ssnet is None:
        raise ConfigError(
            "missing required key 'ssnet' for image sets (an SSNet2D run folder: voxgen train conf=ssnet2d)"
        )
    model, ssnet_cfg = load_model(cfg.ssnet, "ssnet2d", cfg.device)
    size = ssnet_cfg.data.size
    reference = check_images(CropSet.load(ref_path).images, str(ref_path), size, at_least=2 * C2ST_FOLDS)
    candidate = check_images(CropSet.load(cand_path).images, str(cand_path), size, at_least=C2ST_FOLDS)
    train_images = None
    if cfg.train is not None:
        train_images = check_images(CropSet.load(Path(cfg.train)).images, str(cfg.train), size, at_least=1)
    result = evaluate_images(
        model,
        reference,
        candidate,
        n=cfg.n,
        seed=cfg.seed,
        train=train_images,
        n_emd=cfg.n_emd,
        collapse_n=cfg.collapse_n,
        progress=cfg.progress,
    )
    curves = None
    if cfg.degradations:
        scored = result["scored"]  # the reference halves are already through SSNet
        curves = degradation_curves(
            model, scored["reference"], scored["heldout"], seed=cfg.seed, n_emd=cfg.n_emd, progress=cfg.progress
        )
    return result, curves
