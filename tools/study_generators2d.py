"""The papers' findings on voxgen's data: 2D generators against training progress, against
sampling cost, and under conditioning, each figure beside its real-vs-real floor.

    python tools/study_generators2d.py --ssnet runs/ssnet2d --vpsde runs/vpsde2d \
        --pixelcnn runs/pixelcnn2d --n 200 --out docs/generators2d

Writes ``results.json``, ``report.md`` and PNG plots into ``--out``. Every candidate set is
``--n`` generated crops scored against ``--n`` held-out real crops (``--reference``, the SSNet
run's test crops by default); the floor is the same metric between two disjoint real halves.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from voxgen.data.crops import CropSet
from voxgen.evaluate.conditioning import binned_mean, class_dominance, track_length_by_momentum
from voxgen.evaluate.image_sets import evaluate_images, reference_halves, score_images
from voxgen.generative.conditioning import PARTICLES
from voxgen.io.atomic import write_text_atomic
from voxgen.runs import load_model
from voxgen.sample import generate
from voxgen.viz.display import crop_grid

METRICS = ("fid", "kl_shower_count", "kl_track_count", "c2st_accuracy", "mmd_features")
MOMENTA = np.array([100.0, 250.0, 400.0, 550.0, 700.0, 850.0])  # MeV/c bin edges for the muon length check


def score_generated(ssnet, reference: np.ndarray, ckpt: Path, n: int, seed: int, **sampling) -> dict:
    """Generate ``n`` crops from ``ckpt`` and score them; metrics, floor, cost."""
    result = generate(ckpt, n, seed=seed, progress=False, **sampling)
    scored = evaluate_images(ssnet, reference, result.crops.images, n=n, seed=seed, n_emd=min(100, n))
    balance = class_dominance(scored["scored"]["candidate"])
    return {
        "candidate": {m: scored["candidate"][m] for m in METRICS},
        "floor": {m: scored["floor"][m] for m in METRICS},
        "track_share": balance["track_share"],
        "nfe": result.nfe,
        "seconds_per_image": result.seconds / n,
        "images": result.crops.images[:16],
    }


def epoch_checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("epoch_*.pt"))


def progress_study(ssnet, reference, run: Path, n: int, seed: int, sampler: dict | None) -> list[dict]:
    rows = []
    for ckpt in epoch_checkpoints(run):
        t = time.perf_counter()
        row = score_generated(ssnet, reference, ckpt, n, seed, sampler=sampler)
        row["epoch"] = int(ckpt.stem.split("_")[1])
        print(
            f"{run.name} epoch {row['epoch']}: "
            + ", ".join(f"{m} {row['candidate'][m]:.3g}" for m in METRICS)
            + f" ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
        rows.append(row)
    return rows


def cost_study(ssnet, reference, run: Path, n: int, seed: int, em_steps: list[int], ema: bool) -> list[dict]:
    settings = [("euler_maruyama", {"method": "euler_maruyama", "steps": s, "ema": ema}) for s in em_steps]
    settings.append(("ode (dopri5)", {"method": "ode", "ode_method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "ema": ema}))
    rows = []
    for name, sampler in settings:
        row = score_generated(ssnet, reference, run, n, seed, sampler=sampler)
        row["sampler"] = name if sampler["method"] == "ode" else f"{name} {sampler['steps']}"
        print(
            f"{row['sampler']}: fid {row['candidate']['fid']:.3g}, nfe {row['nfe']}, "
            f"{row['seconds_per_image']:.3f} s/image",
            flush=True,
        )
        rows.append(row)
    return rows


def conditioning_study(ssnet, test: CropSet, run: Path, n: int, seed: int, sampler: dict | None) -> dict:
    """Muon vs electron requests against real crops of those species; muon track length
    against requested momentum against real muon crops binned by momentum."""
    out: dict = {"species": {}}
    for name in ("muon", "electron"):
        pid = PARTICLES[name]
        real = score_images(ssnet, test.images[test.pid == pid][:n])
        fake = score_images(
            ssnet, generate(run, n, seed=seed, particle=name, sampler=sampler, progress=False).crops.images
        )
        out["species"][name] = {"real": class_dominance(real), "generated": class_dominance(fake)}
    muons = test.pid == PARTICLES["muon"]
    real = score_images(ssnet, test.images[muons])
    out["muon_length_real"] = track_length_by_momentum(real, test.momentum[muons], MOMENTA)
    centres = 0.5 * (MOMENTA[:-1] + MOMENTA[1:])
    per = max(8, n // len(centres))
    lengths, asked = [], []
    for k, p in enumerate(centres):
        crops = generate(
            run, per, seed=seed + k, particle="muon", momentum=float(p), sampler=sampler, progress=False
        ).crops
        lengths.append(score_images(ssnet, crops.images).observables()["track_length"])
        asked.append(np.full(per, p))
    out["muon_length_generated"] = binned_mean(np.concatenate(lengths), np.concatenate(asked), MOMENTA)
    return out


# ---------------------------------------------------------------- plots and report
def plot_progress(progress: dict[str, list[dict]], path: Path) -> None:
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, ("fid", "kl_shower_count", "kl_track_count")):
        for (name, rows), colour in zip(progress.items(), ("tab:blue", "tab:red")):
            if rows:
                ax.plot(
                    [r["epoch"] for r in rows], [r["candidate"][metric] for r in rows], "o-", color=colour, label=name
                )
                ax.axhline(rows[0]["floor"][metric], color=colour, ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_title(f"{metric} (dotted: real-vs-real floor)", fontsize=9)
        ax.set_yscale("log")
    axes[0].legend()
    fig.savefig(path, dpi=100)


def plot_cost(cost: list[dict], path: Path) -> None:
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in (
        (axes[0], "nfe", "network evaluations per image"),
        (axes[1], "seconds_per_image", "seconds per image (2 CPU cores)"),
    ):
        ax.plot([r[key] for r in cost], [r["candidate"]["fid"] for r in cost], "o")
        for r in cost:
            ax.annotate(r["sampler"], (r[key], r["candidate"]["fid"]), fontsize=7)
        ax.axhline(cost[0]["floor"]["fid"], color="grey", ls=":", label="floor")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("SSNet-FID")
    axes[0].legend()
    fig.savefig(path, dpi=100)


def plot_conditioning(cond: dict[str, dict], path: Path) -> None:
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_rate, ax_len = fig.subplots(1, 2)
    width = 0.8 / (1 + len(cond))
    colours = dict(zip(["real", *cond], ["black", "tab:blue", "tab:red", "tab:green"]))
    for j, (name, c) in enumerate([("real", next(iter(cond.values())))] + list(cond.items())):
        key = "real" if name == "real" else "generated"
        rates = [c["species"][s][key]["track_dominated"] for s in ("muon", "electron")]
        ax_rate.bar(np.arange(2) + j * width, rates, width, label=name, color=colours[name])
    ax_rate.set_xticks(np.arange(2) + width * len(cond) / 2, ["muon requests", "electron requests"])
    ax_rate.set_ylabel("fraction track-dominated (SSNet)")
    ax_rate.legend(fontsize=8)
    first = next(iter(cond.values()))
    r = first["muon_length_real"]
    ax_len.errorbar(r["centre"], r["mean"], r["sem"], fmt="o-", color=colours["real"], label="real muon crops")
    for name, c in cond.items():
        g = c["muon_length_generated"]
        ax_len.errorbar(g["centre"], g["mean"], g["sem"], fmt="o--", color=colours[name], label=name)
    ax_len.set_xlabel("muon momentum (MeV/c; requested for samples)")
    ax_len.set_ylabel("SSNet track length (pixels)")
    ax_len.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def _row(label: str, r: dict) -> str:
    return f"| {label} | " + " | ".join(f"{r['candidate'][m]:.3g}" for m in METRICS) + f" | {r['track_share']:.3f} |"


def write_report(out: Path, results: dict) -> None:
    head = "| | " + " | ".join(METRICS) + " | track share |\n|---|" + "---|" * (len(METRICS) + 1)
    lines = [
        f"# 2D generators on voxgen's data\n\n{results['command']}\n",
        f"{results['n']} generated crops against {results['n']} held-out real crops per row; the floor row is "
        f"real vs real (two disjoint halves of the reference). `track share`: SSNet track pixels over labelled "
        f"pixels (real: {results['real_track_share']:.3f}).\n",
    ]
    for name, rows in results["progress"].items():
        if rows:
            lines += [
                f"## {name}: quality against training progress\n",
                head,
                "| floor | "
                + " | ".join(f"{rows[0]['floor'][m]:.3g}" for m in METRICS)
                + f" | {results['real_track_share']:.3f} |",
            ]
            lines += [_row(f"epoch {r['epoch']}", r) for r in rows] + [""]
    lines += ["![progress](progress.png)\n"]
    if results["cost"]:
        lines += [
            "## VP-SDE: quality against sampling cost\n",
            "| sampler | network evaluations / image | s / image | SSNet-FID | kl_shower_count | kl_track_count |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['sampler']} | {r['nfe']} | {r['seconds_per_image']:.3f} | {r['candidate']['fid']:.3g} | "
            f"{r['candidate']['kl_shower_count']:.3g} | {r['candidate']['kl_track_count']:.3g} |"
            for r in results["cost"]
        ]
        lines += [f"\nFloor: SSNet-FID {results['cost'][0]['floor']['fid']:.3g}.\n", "![cost](cost.png)\n"]
    lines += [
        "## Conditioning\n",
        "| model | request | track-dominated (generated) | track-dominated (real) "
        "| track share (generated) | track share (real) |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in results["conditioning"].items():
        for s, v in c["species"].items():
            lines.append(
                f"| {name} | {s} | {v['generated']['track_dominated']:.3f} | {v['real']['track_dominated']:.3f} | "
                f"{v['generated']['track_share']:.3f} | {v['real']['track_share']:.3f} |"
            )
    lines += [
        "\nMuon track length (SSNet track pixels, first PCA axis) against momentum:\n",
        "| momentum (MeV/c) | real | " + " | ".join(results["conditioning"]) + " |",
        "|---|---|" + "---|" * len(results["conditioning"]),
    ]
    first = next(iter(results["conditioning"].values()))
    for k, centre in enumerate(first["muon_length_real"]["centre"]):
        cells = [
            f"{c['muon_length_generated']['mean'][k]:.1f} ± {c['muon_length_generated']['sem'][k]:.1f}"
            for c in results["conditioning"].values()
        ]
        r = first["muon_length_real"]
        lines.append(
            f"| {centre:.0f} | {r['mean'][k]:.1f} ± {r['sem'][k]:.1f} (n={r['n'][k]}) | " + " | ".join(cells) + " |"
        )
    lines += ["\n![conditioning](conditioning.png)\n", "## Samples\n"]
    lines += [f"![{name}]({name}_samples.png)" for name in results["grids"]]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ssnet", type=Path, default=Path("runs/ssnet2d"))
    ap.add_argument("--reference", type=Path, default=None, help="real crops (default: <ssnet>/data/test_crops.npz)")
    ap.add_argument("--vpsde", type=Path, default=None)
    ap.add_argument("--pixelcnn", type=Path, default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--progress-steps", type=int, default=100, help="Euler-Maruyama steps for the progress study")
    ap.add_argument("--em-steps", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--raw-weights", action="store_true", help="sample the VP-SDE's raw weights, not its EMA")
    ap.add_argument(
        "--guidance", type=float, default=0.0, help="classifier-free guidance weight of the conditioning study"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/generators2d"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ssnet, _ = load_model(args.ssnet, "ssnet2d")
    test = CropSet.load(args.reference or args.ssnet / "data" / "test_crops.npz")
    r1, _ = reference_halves(ssnet, test.images, args.n, args.seed)
    results = {
        "command": "Made by `python tools/study_generators2d.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v not in (None, False)
        ).replace(" True", "")
        + "`.",
        "n": args.n,
        "real_track_share": class_dominance(r1)["track_share"],
        "progress": {},
        "cost": [],
        "conditioning": {},
        "grids": [],
    }
    em = {"method": "euler_maruyama", "steps": args.progress_steps, "ema": not args.raw_weights}
    runs = {"vpsde2d": (args.vpsde, em), "pixelcnn2d": (args.pixelcnn, None)}
    for name, (run, sampler) in runs.items():
        if run is None:
            continue
        results["progress"][name] = progress_study(ssnet, test.images, run, args.n, args.seed, sampler)
        guided = {**(sampler or {}), "guidance": args.guidance} if args.guidance else sampler
        results["conditioning"][name] = conditioning_study(ssnet, test, run, args.n, args.seed, guided)
        last = results["progress"][name][-1]
        crop_grid(last.pop("images"), out_png=args.out / f"{name}_samples.png")
        results["grids"].append(name)
        for row in results["progress"][name]:
            row.pop("images", None)
    if args.vpsde is not None:
        results["cost"] = cost_study(
            ssnet, test.images, args.vpsde, args.n, args.seed, args.em_steps, not args.raw_weights
        )
        for row in results["cost"]:
            row.pop("images")
    crop_grid(test.images[:16], out_png=args.out / "real_samples.png")
    results["grids"].append("real")
    plot_progress(results["progress"], args.out / "progress.png")
    if results["cost"]:
        plot_cost(results["cost"], args.out / "cost.png")
    plot_conditioning(results["conditioning"], args.out / "conditioning.png")
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    write_report(args.out, results)
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
