"""What the report of a 3D generator run holds beyond the event yardstick: the topology and
SSNet3D class rates per requested species and the goals they are held to (``species_study``,
``goal_checks``), the conditioning study (muon length against requested momentum, SSNet3D class
rates per requested species, each next to real events) and ``report.md`` tying the run's
figures together. The sampling itself
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
from voxgen.evaluate.topology import topology_observables
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


TRACK_SPECIES = ("muon", "pion", "proton")  # one connected trajectory each
SHOWER_SPECIES = ("photon", "electron")


def species_study(reference: list[Event], generated: list[Event], ssnet3d=None) -> dict:
    """Per requested species present in both sets: {"generated": row, "real": row}, a row holding
    the events' count, medians of the largest cluster's energy share and of the numbers of
    26-connected clusters (all, and of at least 3 voxels), and with ``ssnet3d`` the mean SSNet3D
    track and shower voxel fractions. Generated events count under their requested species,
    real ones under their primary's."""
    out = {}
    for name, code in PARTICLES.items():
        sets = {
            "generated": [e for e in generated if e.particles and e.particles[0].pid == code],
            "real": [e for e in reference if e.particles and e.particles[0].pid == code],
        }
        if not all(sets.values()):
            continue
        out[name] = {}
        for label, events in sets.items():
            topo = [topology_observables(e) for e in events]
            row = {"events": len(events)}
            for key in ("largest_share", "n_clusters", "n_clusters_3plus"):
                row[key] = float(np.median([t[key] for t in topo]))
            if ssnet3d is not None:
                fractions = ssnet3d_features(ssnet3d, events)[1]
                row["track_fraction"] = float(fractions[:, 1].mean())
                row["shower_fraction"] = float(fractions[:, 0].mean())
            out[name][label] = row
    return out


def goal_checks(species: dict, result: dict) -> list[dict]:
    """The CPU preset's goals, each {"goal", "value", "target", "met"}: median largest-cluster share
    at least 0.9 for track species and within 0.1 of real for shower species; median count of
    clusters of 3+ voxels within 2x of real for every species; SSNet3D track fraction of muon
    requests and shower fraction of electron requests at least 0.6; SSNet3D-FID at most 10x and
    the KL of voxel count, total energy and PCA length at most 3x their real-vs-real floors."""
    goals = []

    def add(goal: str, value: float | None, target: str, met: bool) -> None:
        goals.append({"goal": goal, "value": value, "target": target, "met": bool(met)})

    for name, rows in species.items():
        gen, real = rows["generated"], rows["real"]
        if name in TRACK_SPECIES:
            add(f"{name}: largest-cluster share", gen["largest_share"], ">= 0.9", gen["largest_share"] >= 0.9)
        else:
            gap = abs(gen["largest_share"] - real["largest_share"])
            add(f"{name}: largest-cluster share - real", gap, "<= 0.1", gap <= 0.1)
        ratio = (gen["n_clusters_3plus"] + 1e-9) / max(real["n_clusters_3plus"], 1e-9)
        add(f"{name}: clusters of 3+ voxels / real", ratio, "0.5-2", 0.5 <= ratio <= 2.0)
    for name, key in (("muon", "track_fraction"), ("electron", "shower_fraction")):
        value = species.get(name, {}).get("generated", {}).get(key)
        if value is not None:
            add(f"{name}: SSNet3D {key.replace('_', ' ')}", value, ">= 0.6", value >= 0.6)
    for key, limit in (("ssnet3d_fid", 10), ("kl_n_voxels", 3), ("kl_total_energy", 3), ("kl_pca_length", 3)):
        cand, floor = result["candidate"].get(key), result["floor"].get(key)
        if cand is not None and floor:
            add(f"{key} / floor", cand / floor, f"<= {limit}", cand / floor <= limit)
    return goals


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
    ``headline["comparison"]`` names its requests), the goals and the per-species table, the
    yardstick's summary table, the conditioning study and the event displays of a 3D generator run."""
    parts = [
        f"# {cfg.model.name}: generated 3D events",
        "",
        f"Cascade generator, {figures.get('levels')} sparse levels each generated by {cfg.model.process}; "
        f"sampler {dict(cfg.sampler)}.",
        "",
    ]
    if headline.get("comparison"):
        parts += ["## Real and generated events of the same requests", "", COMPARISON_GUIDE, ""]
        parts += ["![real vs generated events](comparison.png)", ""]
    if headline.get("goals"):
        parts += ["## Goals", "", "Held-out requests, generated against real (medians per species).", ""]
        parts += _table(
            [(g["goal"], g["value"], g["target"], "yes" if g["met"] else "no") for g in headline["goals"]],
            ("goal", "value", "target", "met"),
        ) + [""]
    if headline.get("species"):
        keys = ("largest_share", "n_clusters", "n_clusters_3plus", "track_fraction", "shower_fraction")
        rows = [
            (name, label, row["events"], *[row.get(k) for k in keys])
            for name, pair in headline["species"].items()
            for label, row in pair.items()
        ]
        parts += ["## Topology and SSNet3D class rates per requested species", ""]
        parts += _table(rows, ("species", "set", "events", *keys)) + [""]
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
