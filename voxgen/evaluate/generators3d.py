"""What the report of a 3D generator run holds beyond the event yardstick: the conditioning
study (muon length against requested momentum, SSNet3D class rates per requested species, each
next to real events) and ``report.md`` tying the run's figures together. The sampling itself
is the caller's (``voxgen.pipelines.generators3d``), handed in as a function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig

from voxgen.data.event_crops import event_conditions
from voxgen.evaluate.observables import event_observables
from voxgen.evaluate.report import summary_table
from voxgen.events import SEMANTIC_NAMES, Event
from voxgen.generative.conditioning import PARTICLES
from voxgen.io.atomic import write_text_atomic
from voxgen.models.ssnet3d import ssnet3d_features
from voxgen.viz.display import comparison_grid

MUON, ELECTRON = PARTICLES["muon"], PARTICLES["electron"]
SampleFn = Callable[[np.ndarray, np.ndarray, int], list[Event]]  # (pid (n,), momentum (n,) MeV/c, seed) -> events


def _lengths(events: list[Event]) -> np.ndarray:
    """PCA length (cm) of each event."""
    return np.array([event_observables(e)["pca_length"] for e in events])


def conditioning_study(
    sample: SampleFn, reference: list[Event], momenta: list[float], per_condition: int, seed: int, ssnet3d=None
) -> dict:
    """Muon PCA length (cm) against requested momentum next to real muons in the same momentum
    bins, and (with ``ssnet3d``) the mean SSNet3D class fractions of muon and electron requests
    next to real muons and electrons. ``per_condition`` samples per momentum / species, drawn
    by ``sample``."""
    pid, mom = event_conditions(reference)
    edges = np.concatenate([[0.0], (np.array(momenta[:-1]) + np.array(momenta[1:])) / 2, [np.inf]])
    rows = []
    for k, p in enumerate(momenta):
        gen = sample(np.full(per_condition, MUON), np.full(per_condition, p, np.float32), seed + k)
        real = [e for e, a, m in zip(reference, pid, mom) if a == MUON and edges[k] <= m < edges[k + 1]]
        lg, lr = _lengths(gen), _lengths(real) if real else np.zeros(0)
        rows.append(
            {
                "momentum": p,
                "generated_length_cm": float(lg.mean()),
                "generated_length_sem": float(lg.std() / np.sqrt(len(lg))),
                "real_length_cm": float(lr.mean()) if len(lr) else None,
                "real_length_sem": float(lr.std() / np.sqrt(len(lr))) if len(lr) > 1 else None,
                "real_events": len(real),
            }
        )
    out: dict = {"muon_length_vs_momentum": rows}
    if ssnet3d is not None:
        rates = {}
        for name, code in (("muon", MUON), ("electron", ELECTRON)):
            pool = mom[pid == code]
            rng = np.random.default_rng(seed)
            request = (
                rng.choice(pool, per_condition).astype(np.float32)
                if len(pool)
                else np.full(per_condition, 400.0, np.float32)
            )
            gen = sample(np.full(per_condition, code), request, seed + 100 + code)
            real = [e for e, a in zip(reference, pid) if a == code]
            for label, events in (("generated", gen), ("real", real)):
                fractions = ssnet3d_features(ssnet3d, events)[1] if events else np.zeros((0, len(SEMANTIC_NAMES)))
                rates[f"{name}_{label}"] = {
                    SEMANTIC_NAMES[c]: float(fractions[:, c].mean()) if len(fractions) else None for c in SEMANTIC_NAMES
                }
                rates[f"{name}_{label}"]["track_dominated"] = (
                    float((fractions.argmax(1) == 1).mean()) if len(fractions) else None
                )
        out["class_rates"] = rates
    return out


def plot_conditioning(study: dict, path: Path) -> Path:
    """Muon length against momentum, and class fractions per species (generated vs real)."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    rows = study["muon_length_vs_momentum"]
    p = [r["momentum"] for r in rows]
    axes[0].errorbar(
        p,
        [r["generated_length_cm"] for r in rows],
        [r["generated_length_sem"] for r in rows],
        marker="o",
        label="generated (requested momentum)",
    )
    real = [r for r in rows if r["real_length_cm"] is not None]
    axes[0].errorbar(
        [r["momentum"] for r in real],
        [r["real_length_cm"] for r in real],
        [r["real_length_sem"] or 0.0 for r in real],
        marker="s",
        label="held-out real (momentum bin)",
    )
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
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(fmt(v) for v in row) + " |" for row in rows
    ]


def request_name(event: Event) -> str:
    """The request an event was generated for: "muon at 750 MeV/c"."""
    p = event.particles[0]
    names = {v: k for k, v in PARTICLES.items()}
    return f"{names.get(p.pid, 'any')} at {p.momentum:.0f} MeV/c"


def comparison_requests(reference: list[Event], per_species: int = 2, max_rows: int = 8) -> list[int]:
    """Indices of the held-out events whose requests the comparison grid draws: per species
    present, ``per_species`` events at evenly spaced momentum quantiles; species take turns so
    that ``max_rows`` rows cover as many species as they can. Ordered by species, then momentum."""
    pid, mom = event_conditions(reference)
    picked = []
    for code in sorted(set(pid[pid >= 0].tolist())):
        members = np.flatnonzero(pid == code)
        members = members[np.argsort(mom[members], kind="stable")]
        quantiles = ((np.arange(per_species) + 0.5) * len(members) / per_species).astype(int)
        picked.append(list(dict.fromkeys(members[quantiles].tolist())))
    turns = [(turn, index) for rows in picked for turn, index in enumerate(rows)]
    chosen = [index for _, index in sorted(turns, key=lambda t: t[0])[:max_rows]]
    return sorted(chosen, key=lambda i: (pid[i], mom[i]))


def comparison_study(
    sample: SampleFn, reference: list[Event], path: Path, seed: int, per_request: int = 2, max_rows: int = 8
) -> list[str]:
    """``path``: the comparison grid of the requests of ``comparison_requests`` (2 per species,
    at most ``max_rows``), each held-out event beside ``per_request`` events generated by
    ``sample`` with exactly its particle and momentum. Returns the requests' names, one per row."""
    chosen = comparison_requests(reference, max_rows=max_rows)
    if not chosen:
        return []
    pid, mom = event_conditions([reference[i] for i in chosen])
    generated = sample(np.repeat(pid, per_request), np.repeat(mom, per_request), seed)
    names = [request_name(reference[i]) for i in chosen]
    pairs = [
        (name, [reference[i]], generated[k * per_request : (k + 1) * per_request])
        for k, (name, i) in enumerate(zip(names, chosen))
    ]
    comparison_grid(pairs, path)
    return names


COMPARISON_GUIDE = (
    "Each row is one request of the held-out set: the real event on the left, events generated with "
    "exactly its particle and momentum on the right, as xy, yz and zx energy projections on one colour "
    "scale per row. Look for connected tracks (muons, pions, protons) and showers branching from one "
    "vertex (electrons, photons); generated events made of isolated blobs of a few voxels scattered "
    "over the crop are fragments, not trajectories."
)


def write_generator_report(
    out: Path, cfg: DictConfig, figures: dict, headline: dict, result: dict, displays: list[Path]
) -> None:
    """``<out>/report.md``: the comparison grid of real and generated events (when
    ``headline["comparison"]`` names its requests), the autoencoder's figures, the yardstick's
    summary table, the conditioning study and the event displays of a 3D generator run."""
    ae = figures.get("autoencoder", {})
    parts = [
        f"# {cfg.model.name}: generated 3D events",
        "",
        f"Latent {cfg.model.process} generator on the sparse autoencoder's latent grid; sampler {dict(cfg.sampler)}.",
        "",
    ]
    if headline.get("comparison"):
        parts += ["## Real and generated events of the same requests", "", COMPARISON_GUIDE, ""]
        parts += ["![real vs generated events](comparison.png)", ""]
    if ae:
        rows = [
            ("voxel occupancy precision", "occupancy_precision"),
            ("voxel occupancy recall", "occupancy_recall"),
            ("voxel occupancy IoU", "occupancy_iou"),
            ("reconstructed / true voxels", "voxel_count_ratio"),
            ("total-energy residual (E_rec - E) / E, mean", "total_energy_residual_mean"),
            ("total-energy residual, std", "total_energy_residual_std"),
            ("voxel energy residual abs(E_rec - E) / E, median of matched voxels", "voxel_energy_residual_median"),
        ]
        parts += [
            "## Autoencoder (held-out events)",
            "",
            "A perfect autoencoder scores 1, 1, 1, 1, 0, 0, 0; the floor of these figures is the perfect score.",
            "",
        ]
        parts += _table([(label, ae[key]) for label, key in rows], ("metric", "value")) + [""]
    parts += [
        "## Generated vs held-out events",
        "",
        f"{headline['samples']} events generated with the held-out events' conditions, "
        f"{headline['seconds_per_event']:.3f} s and {headline['network_evaluations_per_event']} network "
        "evaluations per event. Full report: [evaluation/report.md](evaluation/report.md).",
        "",
        summary_table(result),
        "",
        "![histograms](evaluation/histograms.png)",
        "",
        "## Conditioning",
        "",
        "![conditioning](conditioning.png)",
        "",
    ]
    study = headline["conditioning"]
    parts += _table(
        [
            (r["momentum"], r["generated_length_cm"], r["real_length_cm"], r["real_events"])
            for r in study["muon_length_vs_momentum"]
        ],
        ("muon momentum [MeV/c]", "generated length [cm]", "real length [cm]", "real events"),
    ) + [""]
    if "class_rates" in study:
        names = [SEMANTIC_NAMES[c] for c in SEMANTIC_NAMES] + ["track_dominated"]
        parts += _table(
            [(key.replace("_", " "), *[v[n] for n in names]) for key, v in study["class_rates"].items()],
            ("set", *names),
        ) + [""]
    parts += ["## Generated events with their U/V/Y wire-plane projections", ""]
    parts += [f"![{p.stem}](samples/{p.name})" for p in displays]
    parts += ["", "Exports: " + ", ".join(f"`{Path(p).relative_to(out)}`" for p in headline["exports"]), ""]
    write_text_atomic(out / "report.md", "\n".join(parts))
