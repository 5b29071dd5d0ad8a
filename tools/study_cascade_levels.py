"""Where the 3D cascade breaks tracks: sites and connected pieces at every level, for real events,
for the cascade run level by level on the real coarser level (teacher-forced) and for the cascade
run freely from the top, per requested species.

    python tools/study_cascade_levels.py --run runs/flowmatch3d --n 30 --out docs/generators3d/levels

For each species, ``--n`` held-out events and their requests. At each level l (children of stride
2^l): the median number of sites (occupied blocks of 2^l voxels) per event and the median number
of 26-connected pieces they form. Real: the events' own blocks. Teacher-forced: level l generated
from the real parents of stride 2^(l+1) (one level's own error). Free-running: the cascade's samples
coarsened to stride 2^l (the errors of every level above, compounded). Free below the real top:
the cascade run freely from the events' own sites of stride 2^(L-1) (every level's error but the
top level's). Straightness: the share of the sites' spread along their principal axis (1 for a
line). A level that breaks tracks shows teacher-forced pieces above real; a cascade that compounds
shows free-running pieces growing level by level. Writes ``levels.md`` and ``levels.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from voxgen.data.event_crops import event_conditions, event_crops
from voxgen.evaluate.topology import component_labels
from voxgen.events import PID_NAMES, collate_sparse
from voxgen.io.atomic import write_text_atomic
from voxgen.models.cascade3d import BRIDGES, SparseCascade3D
from voxgen.runs import load_model
from voxgen.sample import sample_events

SPECIES = ("muon", "proton", "electron")


def sites_and_pieces(coords: np.ndarray) -> tuple[int, int, float]:
    """(sites, 26-connected pieces, straightness) of integer coordinates (K, 3); straightness is
    the share of the sites' spread along their principal axis (1 for a line, 1/3 for a ball)."""
    if len(coords) < 2:
        return len(coords), len(coords), 1.0
    spread = np.linalg.eigvalsh(np.cov(coords.T.astype(float)))
    return len(coords), len(np.unique(component_labels(coords))), float(spread[-1] / max(spread.sum(), 1e-12))


def teacher_forced(model: SparseCascade3D, events: list, pid, momentum, sampler, seed: int) -> dict[int, list]:
    """Per level: (sites, pieces) per event of the children generated from the real parents."""
    coords, feats = (torch.from_numpy(a) for a in collate_sparse(events))
    energy = feats[:, 0]
    gen = torch.Generator().manual_seed(seed)
    found = {}
    with torch.no_grad():
        for level in reversed(range(model.levels)):
            batch = model.level_targets(coords, energy, len(events), level)
            x, _ = model.solve_level(batch, torch.from_numpy(pid), torch.from_numpy(momentum), sampler, gen)
            children, _ = model.expand(batch.coords, x, len(events), top=level == model.levels - 1)
            children = children.numpy()
            found[level] = [sites_and_pieces(children[children[:, 0] == i, 1:]) for i in range(len(events))]
    return found


def free_below_top(model: SparseCascade3D, events: list, pid, momentum, sampler, seed: int) -> dict[int, list]:
    """Per level below the top: (sites, pieces, straightness) per event of the cascade run freely
    from the real sites of stride 2^(L-1) (the top level's children, taken from the events)."""
    coords, feats = (torch.from_numpy(a) for a in collate_sparse(events))
    top = model.level_targets(coords, feats[:, 0], len(events), model.levels - 2)
    gen = torch.Generator().manual_seed(seed)
    found = {}
    with torch.no_grad():
        for level, children, _, _ in model.descend(
            top.coords,
            top.parent_energy,
            model.levels - 2,
            torch.from_numpy(pid),
            torch.from_numpy(momentum),
            sampler,
            gen,
        ):
            children = children.numpy()
            found[level] = [sites_and_pieces(children[children[:, 0] == i, 1:]) for i in range(len(events))]
    return found


def coarsened(events: list, levels: int) -> dict[int, list]:
    """Per level: (sites, pieces, straightness) per event of the events' own blocks of 2^level voxels."""
    return {
        level: [sites_and_pieces(np.unique(e.coords // 2**level, axis=0)) for e in events] for level in range(levels)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--n", type=int, default=30, help="held-out events per species")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/generators3d/levels"))
    parser.add_argument("--bridge", choices=BRIDGES, help="sample with this model.bridge instead of the run's")
    args = parser.parse_args()

    cfg = OmegaConf.load(args.run / "config.yaml")
    model, _ = load_model(args.run, cfg.model.name, "cpu")
    if args.bridge is not None:
        model.bridge = args.bridge
    sampler = model.process.sampler_settings(OmegaConf.to_container(cfg.sampler))
    reference = event_crops(cfg.data, "test", model.grid, progress=False)
    pid, momentum = event_conditions(reference)
    results = {}
    for name in SPECIES:
        code = next(k for k, v in PID_NAMES.items() if v == name)
        chosen = np.flatnonzero(pid == code)[: args.n]
        events = [reference[i] for i in chosen]
        generated = sample_events(model, pid[chosen], momentum[chosen], sampler, args.seed, progress=False).events
        real = coarsened(events, model.levels)
        below = free_below_top(model, events, pid[chosen], momentum[chosen], sampler, args.seed)
        sets = {
            "real": real,
            "teacher-forced": teacher_forced(model, events, pid[chosen], momentum[chosen], sampler, args.seed),
            "free-running": coarsened(generated, model.levels),
            "free below the real top": {model.levels - 1: real[model.levels - 1], **below},
        }
        results[name] = {
            kind: {
                str(2**level): {
                    "sites": float(np.median([s for s, _, _ in rows])),
                    "pieces": float(np.median([p for _, p, _ in rows])),
                    "straightness": float(np.median([q for _, _, q in rows])),
                }
                for level, rows in sorted(per_level.items(), reverse=True)
            }
            for kind, per_level in sets.items()
        }
        print(name, json.dumps(results[name]), flush=True)
    command = "python tools/study_cascade_levels.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "levels.json", json.dumps({"command": command, "n": args.n, **results}, indent=2))
    write_text_atomic(args.out / "levels.md", markdown(results, command, args.n, cfg))
    print(f"wrote {args.out / 'levels.md'}")


def markdown(results: dict, command: str, n: int, cfg) -> str:
    strides = list(next(iter(next(iter(results.values())).values())))
    lines = [
        "# The cascade level by level",
        "",
        "Median sites / 26-connected pieces / straightness per event at each stride (voxels a block side), "
        f"{n} held-out events per species and their requests; sampler {OmegaConf.to_container(cfg.sampler)}. "
        f"Reproduce: `{command}`.",
        "",
        "| species | set | " + " | ".join(f"stride {s}" for s in strides) + " |",
        "|" + "---|" * (2 + len(strides)),
    ]
    for name, sets in results.items():
        for kind, per_stride in sets.items():
            cells = [f"{v['sites']:.0f} / {v['pieces']:.0f} / {v['straightness']:.2f}" for v in per_stride.values()]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
