"""Configuration of the built-in simulator (the Hydra group ``sim``, ``conf/sim/default.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from voxgen.errors import ConfigError

SPECIES = ("e-", "gamma", "mu-", "pi+", "p")
POSITIVE = (
    "voxel_mm",
    "step_mm",
    "delta_threshold_mev",
    "brems_cut_mev",
    "tracking_cut_mev",  # photons lose energy in steps: at 0 they would never stop
    "efield_kv_cm",
    "box_beta",
)
MAX_MOMENTUM_MEV = 1.0e5  # the CSDA range tables (argon.RangeTable) end at 100 GeV
MIN_GRID, MAX_GRID = 16, 16384  # voxels a side; keeps the int64 (cluster, x, y, z) voxel index far from overflow


def _default_momenta() -> dict[str, list[float]]:
    # uniform momentum ranges in MeV/c of the single-particle set of Lutkus et al.
    # (arXiv:2204.02496, A.3)
    return {
        "e-": [35.5, 800.0],
        "gamma": [35.0, 800.0],
        "mu-": [90.0, 800.0],
        "pi+": [105.0, 800.0],
        "p": [105.0, 800.0],
    }


# Bumped whenever the simulator's output for the same settings and seed changes (2: recombination
# bounded at low dE/dx, point deposits at their stopping dE/dx), so cached datasets are remade.
PHYSICS_VERSION = 2


@dataclass
class SimConfig:
    """Simulator settings. Units: MeV, MeV/c, mm, kV/cm."""

    mode: str = "single"  # single | multi
    species: list[str] = field(default_factory=lambda: list(SPECIES))
    momentum_mev: dict[str, list[float]] = field(default_factory=_default_momenta)
    n_primaries: list[int] = field(default_factory=lambda: [2, 5])  # multi mode, inclusive
    grid: int = 768  # voxels a side
    voxel_mm: float = 3.0
    step_mm: float = 3.0  # tracking step of tracks and sub-critical electrons
    delta_threshold_mev: float = 2.0  # knock-on electrons above this are tracked (delta rays)
    muon_capture_fraction: float = 0.75  # stopped mu- captured without a Michel electron
    brems_cut_mev: float = 1.0  # bremsstrahlung photons below this are not produced
    lowe_threshold_mev: float = 1.0  # Compton/photo electrons below this are low-energy deposits
    tracking_cut_mev: float = 0.05  # photons below this are dropped
    efield_kv_cm: float = 0.5
    box_alpha: float = 0.93  # modified Box recombination (ArgoNeuT)
    box_beta: float = 0.212  # (kV/cm)(g/cm^2)/MeV
    min_voxels: int = 10  # events with fewer voxels are drawn again

    def __post_init__(self) -> None:
        if self.mode not in ("single", "multi"):
            raise ConfigError(f"sim.mode: '{self.mode}' is not single or multi")
        self._check_species()
        lo, hi = (_whole("sim.n_primaries", n) for n in _pair("sim.n_primaries", self.n_primaries))
        if not 1 <= lo <= hi:
            raise ConfigError(f"sim.n_primaries: need [min, max] with 1 <= min <= max, got {[lo, hi]}")
        for name in POSITIVE:
            if _number(f"sim.{name}", getattr(self, name)) <= 0:
                raise ConfigError(f"sim.{name}: must be positive, got {getattr(self, name)}")
        if _number("sim.lowe_threshold_mev", self.lowe_threshold_mev) < 0:
            raise ConfigError(f"sim.lowe_threshold_mev: must be >= 0, got {self.lowe_threshold_mev}")
        if not 0.0 <= _number("sim.muon_capture_fraction", self.muon_capture_fraction) <= 1.0:
            raise ConfigError(f"sim.muon_capture_fraction: {self.muon_capture_fraction} not in [0, 1]")
        if not 0.0 < _number("sim.box_alpha", self.box_alpha) <= 1.0:
            raise ConfigError(f"sim.box_alpha: {self.box_alpha} not in (0, 1] (modified Box model)")
        if not MIN_GRID <= _whole("sim.grid", self.grid) <= MAX_GRID:
            raise ConfigError(f"sim.grid: must be in [{MIN_GRID}, {MAX_GRID}] voxels, got {self.grid}")
        if _whole("sim.min_voxels", self.min_voxels) < 1:
            raise ConfigError(f"sim.min_voxels: must be >= 1, got {self.min_voxels}")

    def _check_species(self) -> None:
        if not isinstance(self.species, (list, tuple)) or not self.species:
            raise ConfigError(f"sim.species: need a non-empty list (from {', '.join(SPECIES)}), got {self.species!r}")
        if not isinstance(self.momentum_mev, dict):
            raise ConfigError(f"sim.momentum_mev: need species: [low, high] in MeV/c, got {self.momentum_mev!r}")
        for s in self.species:
            if s not in SPECIES:
                raise ConfigError(f"sim.species: unknown species '{s}' (choose from {', '.join(SPECIES)})")
            key = f"sim.momentum_mev.{s}"
            lo, hi = (_number(key, p) for p in _pair(key, self.momentum_mev.get(s)))
            if not 0 < lo <= hi <= MAX_MOMENTUM_MEV:
                raise ConfigError(f"{key}: need 0 < low <= high <= {MAX_MOMENTUM_MEV:g} MeV/c, got {[lo, hi]}")


def _pair(key: str, value: object) -> list:
    """``value`` if it is a two-element list, else a ConfigError naming ``key``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{key}: need [low, high], got {value!r}")
    return list(value)


def _number(key: str, value: object) -> float:
    """``value`` if it is a finite int or float, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: need a finite number, got {value!r}")
    return value


def _whole(key: str, value: object) -> int:
    """``value`` if it is an int, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: need a whole number, got {value!r}")
    return value
