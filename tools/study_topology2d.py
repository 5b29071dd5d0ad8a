"""The 2D topology yardstick under controlled degradations of real crops, beside its floor band.

    python tools/study_topology2d.py --events 400 --out docs/evaluation

Simulates ``--events`` single-particle events of every species (or takes ``--reference``, a crop
set .npz), cuts 8 crops of 64x64 from each, splits them into two disjoint random halves R1, R2
and scores every degradation of ``voxgen.evaluate.degrade`` applied to R2 against R1: the KL of
each topology observable (``voxgen.evaluate.topology2d``). The floor is the same KL between the
halves of ``--splits`` random splits (its band: lowest to highest). Writes ``topology2d.md``,
``topology2d.json``, ``topology2d.png`` (curves) and ``topology2d_examples.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from voxgen.data.crops import CropSet, make_crop_set
from voxgen.evaluate.degrade import DEGRADATIONS, STRENGTHS
from voxgen.evaluate.distances import observable_scores
from voxgen.evaluate.topology2d import TOPOLOGY_OBSERVABLES, topology_observables
from voxgen.io.atomic import write_text_atomic
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event

CROPS_PER_EVENT = 8

EXPLANATION = """\
Per 64x64 crop of charge (MeV per pixel; a pixel is charged when above 0), computed by
`voxgen.evaluate.topology2d.topology_observables` and scored by `voxgen evaluate` as `chi2_*` and
`kl_*` next to their real-vs-real floors:

- `n_clusters`: 8-connected components of the charged pixels (`scipy.ndimage.label`; pixels
  touching by an edge or a corner belong together);
- `n_clusters_3plus`: the components of at least 3 pixels;
- `largest_share`: the share of the crop's charge in its highest-charge component (NaN for an
  empty crop, which `n_clusters` = 0 shows);
- `track_gaps`: the charged pixels are projected on the crop's charge-weighted first principal
  axis; the projections between their 2nd and 98th percentile are binned in 1-pixel steps; a gap
  is a run of at least 2 consecutive empty bins. A continuous line has 0 gaps whatever its
  direction (its pixels step at most sqrt(2) pixels along the axis, so at most one bin in a row
  is empty), a line cut into k pieces by cuts of 2 pixels or more has k - 1, and fragments
  spread along the axis leave empty stretches between them.

The degradations that target topology (`voxgen.evaluate.degrade`): `cut_tracks` sets to 0 the
charge in bands 3 pixels wide across the crop's principal axis, their number Poisson with mean
`strength` per 10 pixels of the crop's charged span along the axis (strength 1: ~25% of a track's
pixels removed, a 55-pixel line in 4.4 pieces on average); `scatter_fragments` cuts the crop across its
principal axis into pieces 8 pixels long and moves each, whole, by `strength` x 8 pixels in a
random direction. `pixel_dropout` removes each charged pixel with probability `strength`. The
others change topology on the way: blur and thickening merge nearby clusters, noise adds isolated
hits; a global charge scale (`rescale_charge`) leaves every figure at its floor, by construction."""


def simulated_crops(n_events: int, seed: int) -> np.ndarray:
    """(N, 64, 64) crops of ``n_events`` simulated single-particle events of every species."""
    rng = np.random.default_rng(seed)
    events = [simulate_event(SimConfig(), rng) for _ in range(n_events)]
    return make_crop_set(events, CROPS_PER_EVENT, seed=seed, progress=False).images


def halves(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(images))
    n = len(images) // 2
    return images[order[:n]], images[order[n : 2 * n]]


def topology_kls(ref: dict[str, np.ndarray], images: np.ndarray) -> dict[str, float]:
    cand = topology_observables(images)
    return {name: observable_scores(ref[name], cand[name])[1] for name in TOPOLOGY_OBSERVABLES}


def study(images: np.ndarray, n_splits: int, seed: int) -> dict:
    """Floor band over ``n_splits`` splits; every degradation's curve on split ``seed``."""
    band = [topology_kls(topology_observables(a), b) for a, b in (halves(images, seed + k) for k in range(n_splits))]
    ref, heldout = halves(images, seed)
    ref_obs = topology_observables(ref)
    curves = {}
    for name, levels in STRENGTHS.items():
        rows = [topology_kls(ref_obs, DEGRADATIONS[name](heldout, s, np.random.default_rng(seed + 1))) for s in levels]
        curves[name] = {"strength": list(levels), **{m: [row[m] for row in rows] for m in TOPOLOGY_OBSERVABLES}}
    return {
        "n": len(ref),
        "floor": band[0],
        "floor_band": {m: [min(b[m] for b in band), max(b[m] for b in band)] for m in TOPOLOGY_OBSERVABLES},
        "curves": curves,
    }


def table(result: dict) -> str:
    """Markdown: one row per degradation and strength, each cell KL (KL / top of the floor band)."""
    head = "| degradation | strength | " + " | ".join(f"kl_{m}" for m in TOPOLOGY_OBSERVABLES) + " |"
    lines = [head, "|---|---|" + "---|" * len(TOPOLOGY_OBSERVABLES)]
    band = " | ".join(f"{lo:.3g}-{hi:.3g}" for lo, hi in result["floor_band"].values())
    lines.append(f"| floor band (real vs real) | | {band} |")
    for name, curve in result["curves"].items():
        for k, strength in enumerate(curve["strength"]):
            cells = [
                f"{curve[m][k]:.3g} ({curve[m][k] / result['floor_band'][m][1]:.2g}x)" for m in TOPOLOGY_OBSERVABLES
            ]
            lines.append(f"| {name if k == 0 else ''} | {strength:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(result: dict, path: Path) -> None:
    names = list(result["curves"])
    fig = Figure(figsize=(2.6 * len(names), 2.1 * len(TOPOLOGY_OBSERVABLES)), layout="constrained")
    axes = fig.subplots(len(TOPOLOGY_OBSERVABLES), len(names), squeeze=False)
    for j, name in enumerate(names):
        curve = result["curves"][name]
        for i, metric in enumerate(TOPOLOGY_OBSERVABLES):
            ax = axes[i, j]
            ax.axhspan(*result["floor_band"][metric], color="grey", alpha=0.3, linewidth=0)
            ax.plot(curve["strength"], curve[metric], marker="o", color="tab:blue")
            ax.set_yscale("log")
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(name.replace("_", " "), fontsize=9)
            if i == len(TOPOLOGY_OBSERVABLES) - 1:
                ax.set_xlabel("strength", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"kl_{metric}", fontsize=8)
    fig.savefig(path, dpi=90)


def plot_examples(images: np.ndarray, path: Path, seed: int) -> None:
    """Rows: a few real crops; columns: undamaged and each degradation at its strongest."""
    names = ["cut_tracks", "scatter_fragments", "pixel_dropout", "gaussian_blur"]
    fig = Figure(figsize=(2.0 * (len(names) + 1), 2.0 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), len(names) + 1, squeeze=False)
    columns = [("real", images)] + [
        (f"{n} {STRENGTHS[n][-1]:g}", DEGRADATIONS[n](images, STRENGTHS[n][-1], np.random.default_rng(seed)))
        for n in names
    ]
    for j, (title, column) in enumerate(columns):
        for i, image in enumerate(column):
            axes[i, j].imshow(np.log1p(image), cmap="magma", interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[0, j].set_title(title.replace("_", " "), fontsize=8)
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400, help="simulated events (8 crops each)")
    parser.add_argument("--reference", type=Path, help="a crop set .npz to use instead of simulating")
    parser.add_argument("--splits", type=int, default=5, help="random real-vs-real splits for the floor band")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation"))
    args = parser.parse_args()
    images = CropSet.load(args.reference).images if args.reference else simulated_crops(args.events, args.seed)
    result = study(images, args.splits, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "topology2d.json", json.dumps(result, indent=2) + "\n")
    plot_curves(result, args.out / "topology2d.png")
    charged = (images > 0).sum(axis=(1, 2))
    examples = np.argsort(charged)[[len(images) // 2, -len(images) // 10, -len(images) // 50]]
    plot_examples(images[examples], args.out / "topology2d_examples.png", args.seed)
    source = f"`{args.reference}`" if args.reference else f"{args.events} simulated events (every species)"
    command = "python tools/study_topology2d.py " + " ".join(
        [f"--reference {args.reference}" if args.reference else f"--events {args.events}"]
        + [f"--splits {args.splits}", f"--seed {args.seed}", f"--out {args.out}"]
    )
    report = [
        "# The 2D topology yardstick",
        "",
        EXPLANATION,
        "",
        "## Proof on controlled degradations of real crops",
        "",
        f"{result['n']} crops per half, from {source}; `{command}`. Each cell: the KL of real (R1) vs",
        "degraded held-out real crops (R2), and its ratio to the top of the floor band (the KL between",
        f"the halves of {args.splits} random real-vs-real splits). Strength 0 is the floor of the first split.",
        "",
        table(result),
        "",
        "![KL against strength; grey: the floor band](topology2d.png)",
        "",
        "Real crops (the median, the 90th and the 98th percentile of charged pixels) and their degradations",
        "at the strongest strength:",
        "",
        "![examples](topology2d_examples.png)",
        "",
    ]
    write_text_atomic(args.out / "topology2d.md", "\n".join(report))
    print(table(result))


if __name__ == "__main__":
    main()
