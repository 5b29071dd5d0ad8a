"""Summary of an event collection: counts, points per event, labels, PIDs, momenta."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tqdm import tqdm

from voxgen.events import PID_NAMES, SEMANTIC_NAMES, Event


def summarize(events: Iterable[Event], n_events: int | None = None, progress: bool = True) -> dict:
    """Figures describing ``events``; energies in MeV, momenta in MeV/c."""
    points, energy = [], []
    semantic = {name: 0 for name in SEMANTIC_NAMES.values()}
    cluster_pid = {name: 0 for name in PID_NAMES.values()}
    momenta: dict[str, list[float]] = {}
    for event in tqdm(events, total=n_events, desc="inspect", disable=not progress, unit="ev"):
        points.append(len(event))
        energy.append(event.total_energy)
        if event.clusters is not None:
            labels = event.semantic
            for code, name in SEMANTIC_NAMES.items():
                semantic[name] += int((labels == code).sum())
            for code, name in PID_NAMES.items():
                cluster_pid[name] += int((event.clusters.pid == code).sum())
        for p in event.particles:
            momenta.setdefault(PID_NAMES.get(p.pid, str(p.pid)), []).append(p.momentum)
    points_arr = np.asarray(points, dtype=np.int64)

    def stats(a: np.ndarray) -> dict:
        if a.size == 0:
            return {}
        return {"min": float(a.min()), "mean": float(a.mean()), "median": float(np.median(a)), "max": float(a.max())}

    return {
        "events": len(points),
        "points_per_event": stats(points_arr),
        "energy_per_event_mev": stats(np.asarray(energy)),
        "voxels_by_semantic": semantic,
        "clusters_by_pid": cluster_pid,
        "momentum_mev_by_pid": {
            k: {"n": len(v), "min": float(min(v)), "max": float(max(v))} for k, v in sorted(momenta.items())
        },
    }


def format_summary(summary: dict) -> str:
    """A plain-text table of ``summarize`` output."""
    lines = [f"events: {summary['events']}"]
    ppe = summary["points_per_event"]
    if ppe:
        lines.append("points/event: min {min:.0f}  mean {mean:.1f}  median {median:.0f}  max {max:.0f}".format(**ppe))
    epe = summary["energy_per_event_mev"]
    if epe:
        lines.append("energy/event (MeV): min {min:.2f}  mean {mean:.2f}  max {max:.2f}".format(**epe))
    lines.append("voxels by semantic: " + "  ".join(f"{k} {v}" for k, v in summary["voxels_by_semantic"].items()))
    lines.append("clusters by PID:    " + "  ".join(f"{k} {v}" for k, v in summary["clusters_by_pid"].items()))
    for pid, m in summary["momentum_mev_by_pid"].items():
        lines.append(f"momentum {pid:<8}: n {m['n']:<6} {m['min']:.1f} - {m['max']:.1f} MeV/c")
    return "\n".join(lines)
