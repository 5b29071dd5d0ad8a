"""Variants of the 3D cascade compared over training seeds, from the level studies of their runs
(``tools/study_cascade_levels.py``): per species and stride, the mean and spread (min-max) over
seeds of the median sites and 26-connected pieces per event, for every generated set the studies
share (teacher-forced, free-running, ...), and
the mean over seeds of the median straightness where every study has it.

    python tools/compare_cascade_levels.py --out docs/generators3d/levels/options.md \\
        preset=runs/a/levels,runs/b/levels,runs/c/levels self_condition=runs/d/levels,...

Each argument is ``NAME=DIR,DIR,...``: one variant, one level-study folder (with ``levels.json``)
per training seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from voxgen.io.atomic import write_text_atomic


def spread(values: list[float]) -> str:
    """'mean [min-max]' of ``values``."""
    return f"{np.mean(values):.1f} [{min(values):g}-{max(values):g}]"


def load_study(path: Path) -> dict:
    """The level study ``path`` (``levels.json``); exits with a one-line error if it is missing or
    not JSON."""
    if not path.is_file():
        sys.exit(f"error: {path}: no level study (run tools/study_cascade_levels.py)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        sys.exit(f"error: {path}: not a level study ({err})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=DIR,DIR,... (level-study folders, one per seed)")
    parser.add_argument("--out", type=Path, required=True, help="markdown table to write")
    args = parser.parse_args()
    studies = {}
    for item in args.variants:
        name, _, dirs = item.partition("=")
        if not dirs:
            sys.exit(f"error: {item}: expected NAME=DIR,DIR,...")
        studies[name] = [load_study(Path(d) / "levels.json") for d in dirs.split(",")]
    first = next(iter(studies.values()))[0]
    species = [k for k in first if isinstance(first[k], dict) and "real" in first[k]]
    strides = list(first[species[0]]["real"]) if species else []
    kinds = [k for k in (first[species[0]] if species else {}) if k != "real"]
    kinds = [k for k in kinds if all(k in r.get(species[0], {}) for runs in studies.values() for r in runs)]
    for name, runs in studies.items():
        for run in runs:
            if not kinds or any(list(run.get(sp, {}).get(kind, {})) != strides for sp in species for kind in kinds):
                sys.exit(f"error: {name}: its level studies differ in species or strides (or hold none)")
    straight = all(
        "straightness" in v for runs in studies.values() for r in runs for v in r[species[0]]["real"].values()
    )
    lines = [
        "# Cascade variants over training seeds",
        "",
        f"Median sites / pieces{' / straightness' if straight else ''} per event at each stride "
        f"({first['n']} held-out events per species), mean over seeds [min-max]. Level studies: "
        + "; ".join(f"{n}: {len(s)} seeds" for n, s in studies.items())
        + f". Reproduce: `python tools/compare_cascade_levels.py {' '.join(sys.argv[1:])}`.",
        "",
        "| species | variant | set | " + " | ".join(f"stride {s}" for s in strides) + " |",
        "|" + "---|" * (3 + len(strides)),
    ]
    for sp in species:
        real = first[sp]["real"]
        cells = [
            f"{real[s]['sites']:.0f} / {real[s]['pieces']:.0f}"
            + (f" / {real[s]['straightness']:.2f}" if straight else "")
            for s in strides
        ]
        lines.append(f"| {sp} | real | | " + " | ".join(cells) + " |")
        for name, runs in studies.items():
            for kind in kinds:
                cells = [
                    spread([r[sp][kind][s]["sites"] for r in runs])
                    + " / "
                    + spread([r[sp][kind][s]["pieces"] for r in runs])
                    + (f" / {np.mean([r[sp][kind][s]['straightness'] for r in runs]):.2f}" if straight else "")
                    for s in strides
                ]
                lines.append(f"| {sp} | {name} | {kind} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
