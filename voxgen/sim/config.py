"""Configuration of the built-in simulator (the Hydra group ``sim``, ``conf/sim/default.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxgen.errors import ConfigError

SPECIES = ("e-", "gamma", "mu-", "pi+", "p")


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
        if not self.species:
            raise ConfigError("sim.species: empty list")
        for s in self.species:
            if s not in SPECIES:
                raise ConfigError(f"sim.species: unknown species '{s}' (choose from {', '.join(SPECIES)})")
            lo_hi = self.momentum_mev.get(s)
            if lo_hi is None or len(lo_hi) != 2:
                raise ConfigError(f"sim.momentum_mev.{s}: need [low, high] in MeV/c")
            if not 0 < lo_hi[0] <= lo_hi[1]:
                raise ConfigError(f"sim.momentum_mev.{s}: need 0 < low <= high, got {list(lo_hi)}")
        if len(self.n_primaries) != 2 or not 1 <= self.n_primaries[0] <= self.n_primaries[1]:
            raise ConfigError(f"sim.n_primaries: need [min, max] with 1 <= min <= max, got {list(self.n_primaries)}")
        for name in ("voxel_mm", "step_mm", "delta_threshold_mev", "brems_cut_mev", "efield_kv_cm", "box_beta"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"sim.{name}: must be positive, got {getattr(self, name)}")
        if self.grid < 16:
            raise ConfigError(f"sim.grid: must be >= 16, got {self.grid}")
        if not 0.0 <= self.muon_capture_fraction <= 1.0:
            raise ConfigError(f"sim.muon_capture_fraction: {self.muon_capture_fraction} not in [0, 1]")
