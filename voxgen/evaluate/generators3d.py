"""Stage 3 of a 3D generator run: samples with the held-out events' conditions, exported to
Parquet and PILArNet-M h5, event displays with their U/V/Y wire-plane projections, the event
yardstick against held-out events (next to the real-vs-real floor), the conditioning study,
and ``report.md`` tying them together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from voxgen.evaluate.observables import event_observables
from voxgen.evaluate.report import summary_table, write_report
from voxgen.events import SEMANTIC_NAMES, Event
from voxgen.generative.conditioning import PARTICLES
from voxgen.io.atomic import write_text_atomic

MUON, ELECTRON = PARTICLES["muon"], PARTICLES["electron"]


def _lengths(events: list[Event]) -> np.ndarray:
    """PCA length (cm) of each event."""
    return np.array([event_observables(e)["pca_length"] for e in events])


def conditioning_study(model, autoencoder, reference: list[Event], sampler, momenta: list[float], per_condition: int,
                       seed: int, ssnet3d=None, progress: bool = True) -> dict:
    """Muon PCA length (cm) against requested momentum next to real muons in the same momentum
    bins, and (with ``ssnet3d``) the mean SSNet3D class fractions of muon and electron requests
    next to real muons and electrons. ``per_condition`` samples per momentum / species."""
    from voxgen.sample import sample_events
    from voxgen.train.generators3d import event_conditions

    pid, mom = event_conditions(reference)
    edges = np.concatenate([[0.0], (np.array(momenta[:-1]) + np.array(momenta[1:])) / 2, [np.inf]])
    rows = []
    for k, p in enumerate(momenta):
        gen = sample_events(model, autoencoder, np.full(per_condition, MUON), np.full(per_condition, p, np.float32),
                            sampler, seed + k, progress=progress).events
        real = [e for e, a, m in zip(reference, pid, mom) if a == MUON and edges[k] <= m < edges[k + 1]]
        lg, lr = _lengths(gen), _lengths(real) if real else np.zeros(0)
        rows.append({"momentum": p, "generated_length_cm": float(lg.mean()), "generated_length_sem": float(lg.std() / np.sqrt(len(lg))),
                     "real_length_cm": float(lr.mean()) if len(lr) else None,
                     "real_length_sem": float(lr.std() / np.sqrt(len(lr))) if len(lr) > 1 else None, "real_events": len(real)})
    out: dict = {"muon_length_vs_momentum": rows}
    if ssnet3d is not None:
        from voxgen.models.ssnet3d import ssnet3d_features

        rates = {}
        for name, code in (("muon", MUON), ("electron", ELECTRON)):
            pool = mom[pid == code]
            rng = np.random.default_rng(seed)
            request = rng.choice(pool, per_condition).astype(np.float32) if len(pool) else np.full(per_condition, 400.0, np.float32)
            gen = sample_events(model, autoencoder, np.full(per_condition, code), request, sampler, seed + 100 + code,
                                progress=progress).events
            real = [e for e, a in zip(reference, pid) if a == code]
            for label, events in (("generated", gen), ("real", real)):
                fractions = ssnet3d_features(ssnet3d, events)[1] if events else np.zeros((0, len(SEMANTIC_NAMES)))
                rates[f"{name}_{label}"] = {SEMANTIC_NAMES[c]: float(fractions[:, c].mean()) if len(fractions) else None
                                            for c in SEMANTIC_NAMES}
                rates[f"{name}_{label}"]["track_dominated"] = float((fractions.argmax(1) == 1).mean()) if len(fractions) else None
        out["class_rates"] = rates
    return out


def plot_conditioning(study: dict, path: Path) -> Path:
    """Muon length against momentum, and class fractions per species (generated vs real)."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    rows = study["muon_length_vs_momentum"]
    p = [r["momentum"] for r in rows]
    axes[0].errorbar(p, [r["generated_length_cm"] for r in rows], [r["generated_length_sem"] for r in rows],
                     marker="o", label="generated (requested momentum)")
    real = [r for r in rows if r["real_length_cm"] is not None]
    axes[0].errorbar([r["momentum"] for r in real], [r["real_length_cm"] for r in real],
                     [r["real_length_sem"] or 0.0 for r in real], marker="s", label="held-out real (momentum bin)")
    axes[0].set(xlabel="muon momentum [MeV/c]", ylabel="PCA length in the crop [cm]", title="muon length vs momentum")
    axes[0].legend()
    if "class_rates" in study:
        names = [SEMANTIC_NAMES[c] for c in SEMANTIC_NAMES]
        sets = list(study["class_rates"])
        width = 0.8 / len(sets)
        for i, key in enumerate(sets):
            values = [study["class_rates"][key][n] or 0.0 for n in names]
            axes[1].bar(np.arange(len(names)) + i * width, values, width, label=key.replace("_", " "))
        axes[1].set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        axes[1].set(ylabel="mean SSNet3D voxel fraction", title="class rates by requested species")
        axes[1].legend(fontsize=8)
    else:
        axes[1].set_axis_off()
    fig.savefig(path, dpi=100)
    return path


def _table(rows: list[tuple], header: tuple[str, ...]) -> list[str]:
    fmt = lambda v: "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]


def generator_report(cfg: DictConfig, out: Path, model, autoencoder, figures: dict, ssnet3d=None) -> dict:
    """Sample, export, display, evaluate and study conditioning; writes ``<out>/report.md`` and
    returns the headline figures."""
    from voxgen.evaluate.event_sets import evaluate_events
    from voxgen.io.export import export_events
    from voxgen.models.latent3d import sampler_config
    from voxgen.sample import sample_events
    from voxgen.train.generators3d import event_conditions
    from voxgen.train.ssnet3d import event_crops
    from voxgen.viz.display import show_event

    rep, progress = cfg.report, cfg.trainer.progress
    reference = event_crops(cfg.data, "test", autoencoder.grid, progress)
    sampler = sampler_config(cfg.model.process, OmegaConf.to_container(cfg.sampler))
    pid, mom = event_conditions(reference)
    n = min(rep.n, len(reference))
    generated = sample_events(model, autoencoder, pid[:n], mom[:n], sampler, cfg.seed, progress=progress)
    samples = out / "samples"
    exported = [p for fmt, name in (("parquet", "events.parquet"), ("h5", "events.h5"))
                for p in export_events(generated.events, samples / name, fmt)]
    displays = [show_event(e, samples / f"event_{i:03d}.png", title=f"generated event {i}: {_request(e)}")
                for i, e in enumerate(generated.events[:rep.displays])]
    result = evaluate_events(reference, generated.events, n=n, seed=cfg.seed,
                             names=("held-out events", "generated events"), progress=progress, ssnet3d=ssnet3d)
    write_report(out / "evaluation", result, title=f"{cfg.model.name} samples vs held-out events")
    study = conditioning_study(model, autoencoder, reference, sampler, list(rep.momenta), rep.per_condition, cfg.seed,
                               ssnet3d, progress)
    plot_conditioning(study, out / "conditioning.png")
    headline = {"samples": len(generated.events), "seconds_per_event": generated.seconds / max(len(generated.events), 1),
                "network_evaluations_per_event": generated.nfe, "evaluation": {k: result[k] for k in ("n", "candidate", "floor")},
                "conditioning": study, "exports": [str(p) for p in exported]}
    _write_markdown(out, cfg, figures, headline, result, displays)
    return headline


def _request(event: Event) -> str:
    p = event.particles[0]
    names = {v: k for k, v in PARTICLES.items()}
    return f"{names.get(p.pid, 'any')} at {p.momentum:.0f} MeV/c"


def _write_markdown(out: Path, cfg: DictConfig, figures: dict, headline: dict, result: dict, displays: list[Path]) -> Path:
    ae = figures.get("autoencoder", {})
    parts = [f"# {cfg.model.name}: generated 3D events", "",
             f"Latent {cfg.model.process} generator on the sparse autoencoder's latent grid; "
             f"sampler {dict(cfg.sampler)}.", ""]
    if ae:
        rows = [("voxel occupancy precision", "occupancy_precision"), ("voxel occupancy recall", "occupancy_recall"),
                ("voxel occupancy IoU", "occupancy_iou"), ("reconstructed / true voxels", "voxel_count_ratio"),
                ("total-energy residual (E_rec - E) / E, mean", "total_energy_residual_mean"),
                ("total-energy residual, std", "total_energy_residual_std"),
                ("voxel energy residual abs(E_rec - E) / E, median of matched voxels", "voxel_energy_residual_median")]
        parts += ["## Autoencoder (held-out events)", "",
                  "A perfect autoencoder scores 1, 1, 1, 1, 0, 0, 0; the floor of these figures is the perfect score.", ""]
        parts += _table([(label, ae[key]) for label, key in rows], ("metric", "value")) + [""]
    parts += ["## Generated vs held-out events", "",
              f"{headline['samples']} events generated with the held-out events' conditions, "
              f"{headline['seconds_per_event']:.3f} s and {headline['network_evaluations_per_event']} network "
              "evaluations per event. Full report: [evaluation/report.md](evaluation/report.md).", "",
              summary_table(result), "", "![histograms](evaluation/histograms.png)", "",
              "## Conditioning", "", "![conditioning](conditioning.png)", ""]
    study = headline["conditioning"]
    parts += _table([(r["momentum"], r["generated_length_cm"], r["real_length_cm"], r["real_events"])
                     for r in study["muon_length_vs_momentum"]],
                    ("muon momentum [MeV/c]", "generated length [cm]", "real length [cm]", "real events")) + [""]
    if "class_rates" in study:
        names = [SEMANTIC_NAMES[c] for c in SEMANTIC_NAMES] + ["track_dominated"]
        parts += _table([(key.replace("_", " "), *[v[n] for n in names]) for key, v in study["class_rates"].items()],
                        ("set", *names)) + [""]
    parts += ["## Generated events with their U/V/Y wire-plane projections", ""]
    parts += [f"![{p.stem}](samples/{p.name})" for p in displays]
    parts += ["", "Exports: " + ", ".join(f"`{Path(p).relative_to(out)}`" for p in headline["exports"]), ""]
    return write_text_atomic(out / "report.md", "\n".join(parts))
