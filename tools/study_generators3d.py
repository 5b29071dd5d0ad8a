"""flowmatch3d against diffusion3d (the same cascade design), at equal numbers of network evaluations,
and quality against the number of sampling steps, each figure beside its real-vs-real floor.

    python tools/study_generators3d.py --flow runs/flowmatch3d --diffusion runs/diffusion3d \
        --ssnet3d runs/flowmatch3d/ssnet3d --nfe 4 10 20 40 --n 100 --out docs/generators3d

Without ``--diffusion`` it studies the flow alone (quality against steps).

For each budget of network evaluations (NFE) per level (an event takes that times its levels): the
flow by Euler (NFE steps) and midpoint (NFE / 2 steps), the VP-SDE by Euler-Maruyama (NFE steps)
and its probability-flow ODE by Euler (NFE steps). Every candidate
set is ``--n`` events generated with held-out conditions, scored by the event yardstick against
``--n`` held-out events; the floor is the same metric between two disjoint halves of the
held-out events. Writes ``results.json``, ``report.md`` and ``quality_vs_nfe.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from voxgen.data.event_crops import event_conditions, event_crops
from voxgen.evaluate.event_sets import evaluate_events
from voxgen.io.atomic import write_text_atomic
from voxgen.runs import load_model
from voxgen.sample import sample_events

METRICS = (
    "ssnet3d_fid",
    "kl_n_voxels",
    "kl_total_energy",
    "kl_pca_length",
    "kl_dedx",
    "kl_largest_share",
    "kl_n_clusters_3plus",
    "kl_track_gaps",
    "sinkhorn_set",
)
SOLVERS = {  # label -> (run key, sampler settings for a budget of `nfe` evaluations)
    "flow euler": ("flow", lambda nfe: {"method": "euler", "steps": nfe}),
    "flow midpoint": ("flow", lambda nfe: {"method": "midpoint", "steps": max(nfe // 2, 1)}),
    "vp-sde euler-maruyama": ("diffusion", lambda nfe: {"method": "euler_maruyama", "steps": max(nfe, 2)}),
    "vp-sde probability-flow ode (euler)": (
        "diffusion",
        lambda nfe: {"method": "ode", "ode_method": "euler", "steps": max(nfe, 2)},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", type=Path, required=True)
    parser.add_argument("--diffusion", type=Path, default=None)
    parser.add_argument("--ssnet3d", type=Path, required=True)
    parser.add_argument("--nfe", type=int, nargs="+", default=[4, 10, 20, 40])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--guidance", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/generators3d"))
    args = parser.parse_args()

    models = {
        key: load_model(path, name)
        for key, name, path in (("flow", "flowmatch3d", args.flow), ("diffusion", "diffusion3d", args.diffusion))
        if path is not None
    }
    ssnet3d, _ = load_model(args.ssnet3d, "ssnet3d")
    flow, cfg = models["flow"]
    reference = event_crops(cfg.data, "test", flow.grid, progress=False)
    pid, mom = event_conditions(reference)
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(reference))[: args.n]
    rows = []
    for label, (key, settings) in SOLVERS.items():
        if key not in models:
            continue
        model, _ = models[key]
        for nfe in args.nfe:
            sampler = model.process.sampler_settings({**settings(nfe), "guidance": args.guidance})
            generated = sample_events(model, pid[pick], mom[pick], sampler, args.seed, progress=False)
            result = evaluate_events(
                reference, generated.events, n=args.n, seed=args.seed, progress=False, ssnet3d=ssnet3d
            )
            row = {
                "solver": label,
                "nfe": generated.nfe,
                "seconds_per_event": generated.seconds / args.n,
                "candidate": {m: result["candidate"][m] for m in METRICS},
                "floor": {m: result["floor"][m] for m in METRICS},
            }
            print(
                f"{label} NFE {row['nfe']}: " + ", ".join(f"{m} {row['candidate'][m]:.3g}" for m in METRICS), flush=True
            )
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python tools/study_generators3d.py " + " ".join(sys.argv[1:])
    results = {
        "n": args.n,
        "guidance": args.guidance,
        "flow": str(args.flow),
        "diffusion": str(args.diffusion),
        "command": command,
        "rows": rows,
    }
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    plot(rows, args.out / "quality_vs_nfe.png")
    write_text_atomic(args.out / "report.md", markdown(results))
    print(f"wrote {args.out / 'report.md'}")


def plot(rows: list[dict], path: Path) -> None:
    fig = Figure(figsize=(15, 12), layout="constrained")
    axes = fig.subplots(3, 3).ravel()
    for ax, metric in zip(axes, METRICS):
        for label in dict.fromkeys(r["solver"] for r in rows):
            mine = [r for r in rows if r["solver"] == label]
            ax.plot([r["nfe"] for r in mine], [r["candidate"][metric] for r in mine], marker="o", label=label)
        ax.axhline(np.mean([r["floor"][metric] for r in rows]), color="k", ls="--", label="real vs real floor")
        ax.set(xscale="log", xlabel="network evaluations per event", title=metric)
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=100)


def markdown(results: dict) -> str:
    rows = results["rows"]
    floor = {m: np.mean([r["floor"][m] for r in rows]) for m in METRICS}
    title = (
        "flowmatch3d against diffusion3d"
        if results["diffusion"] != "None"
        else "flowmatch3d: quality against sampling steps"
    )
    lines = [
        f"# {title}",
        "",
        f"{results['n']} generated events per row (held-out conditions, guidance {results['guidance']}) scored "
        f"against {results['n']} held-out events; the floor row is two disjoint halves of the held-out events. "
        f"Reproduce: `{results['command']}`.",
        "",
        "![quality against NFE](quality_vs_nfe.png)",
        "",
        "| solver | NFE | s / event | " + " | ".join(METRICS) + " |",
        "|" + "---|" * (3 + len(METRICS)),
        "| real vs real floor | - | - | " + " | ".join(f"{floor[m]:.3g}" for m in METRICS) + " |",
    ]
    lines += [
        f"| {r['solver']} | {r['nfe']} | {r['seconds_per_event']:.3f} | "
        + " | ".join(f"{r['candidate'][m]:.3g}" for m in METRICS)
        + " |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
