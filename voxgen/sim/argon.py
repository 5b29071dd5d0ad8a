"""Liquid argon: constants, Bethe-Bloch mean energy loss, CSDA ranges, scattering, recombination.

Units: cm, MeV, MeV/c, g/cm^3. Values from the PDG (see ``reference.md``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import lambertw

DENSITY = 1.396  # g/cm^3
Z_OVER_A = 18.0 / 39.948
MEAN_EXCITATION = 188.0e-6  # MeV
K_BETHE = 0.307075  # MeV cm^2 / mol
X0_CM = 14.0  # radiation length
CRITICAL_ENERGY = 32.8  # MeV (electrons)
PAIR_MFP_CM = 9.0 / 7.0 * X0_CM  # 18 cm
NUCLEAR_INTERACTION_CM = 85.7 / DENSITY  # 61.4 cm (PDG nuclear interaction length)
W_ION = 23.6e-6  # MeV per electron-ion pair
STERNHEIMER = dict(cbar=5.2146, x0=0.2, x1=3.0, a=0.19559, k=3.0)

ELECTRON_MASS = 0.51099895
MUON_MASS = 105.6583755
PION_MASS = 139.57039
PROTON_MASS = 938.27208816
MASS = {
    "e-": ELECTRON_MASS,
    "e+": ELECTRON_MASS,
    "gamma": 0.0,
    "mu-": MUON_MASS,
    "mu+": MUON_MASS,
    "pi+": PION_MASS,
    "p": PROTON_MASS,
}
MUON_LIFETIME_NS = 2197.0
MICHEL_MAX_MEV = 52.8


def kinetic_from_momentum(p: float, mass: float) -> float:
    return float(np.hypot(p, mass) - mass)


def momentum_from_kinetic(t, mass):
    return np.sqrt(t * (t + 2.0 * mass))


def density_effect(beta_gamma: np.ndarray) -> np.ndarray:
    """Sternheimer density-effect correction delta(beta*gamma) for LAr (insulator: delta0 = 0)."""
    s = STERNHEIMER
    x = np.log10(np.maximum(beta_gamma, 1e-12))
    delta = 2.0 * np.log(10.0) * x - s["cbar"]
    mid = (x >= s["x0"]) & (x < s["x1"])
    delta = np.where(mid, delta + s["a"] * (s["x1"] - x) ** s["k"], delta)
    return np.where(x < s["x0"], 0.0, delta)


def bethe_dedx(kinetic, mass: float) -> np.ndarray:
    """Mean energy loss -dE/dx (MeV/cm) of a singly charged particle, PDG Bethe formula.

    For electrons the same formula with M = m_e is used (within ~10% of Berger-Seltzer
    collision losses above 1 MeV, which is what the shower code needs).
    """
    t = np.asarray(kinetic, dtype=np.float64)
    gamma = 1.0 + t / mass
    beta2 = 1.0 - 1.0 / gamma**2
    bg2 = beta2 * gamma**2
    ratio = ELECTRON_MASS / mass
    tmax = 2.0 * ELECTRON_MASS * bg2 / (1.0 + 2.0 * gamma * ratio + ratio**2)
    log_term = 0.5 * np.log(2.0 * ELECTRON_MASS * bg2 * tmax / MEAN_EXCITATION**2)
    bracket = log_term - beta2 - density_effect(np.sqrt(bg2)) / 2.0
    dedx = K_BETHE * Z_OVER_A / beta2 * bracket * DENSITY
    # Below ~0.5 MeV/nucleon the formula fails; keep it positive and rising (Bragg peak end).
    return np.maximum(dedx, K_BETHE * Z_OVER_A * DENSITY / np.maximum(beta2, 1e-6) * 0.5)


def max_knock_on(kinetic, mass: float):
    """Largest kinetic energy (MeV) transferable to a free electron."""
    gamma = 1.0 + np.asarray(kinetic) / mass
    bg2 = gamma**2 - 1.0
    ratio = ELECTRON_MASS / mass
    return 2.0 * ELECTRON_MASS * bg2 / (1.0 + 2.0 * gamma * ratio + ratio**2)


class RangeTable:
    """CSDA range R(T) (cm) by integrating 1/(dE/dx) from T_LOW, and its inverse T(R)."""

    T_LOW = 0.01  # MeV; below this the residual range (< 1 um) is neglected

    def __init__(self, mass: float, t_max: float = 1.0e5, n: int = 4000) -> None:
        self.mass = mass
        self.kinetic = np.geomspace(self.T_LOW, t_max, n)
        inv = 1.0 / bethe_dedx(self.kinetic, mass)
        steps = 0.5 * (inv[1:] + inv[:-1]) * np.diff(self.kinetic)
        self.range_cm = np.concatenate([[0.0], np.cumsum(steps)])

    def range_of(self, kinetic):
        return np.interp(kinetic, self.kinetic, self.range_cm)

    def kinetic_of(self, range_cm):
        return np.interp(range_cm, self.range_cm, self.kinetic, left=0.0)


@cache
def range_table(mass: float) -> RangeTable:
    return RangeTable(mass)


def highland_theta0(p, beta, step_cm):
    """Highland multiple-scattering width (rad) for a step of ``step_cm`` in LAr."""
    x = np.maximum(np.asarray(step_cm) / X0_CM, 1e-9)
    return 13.6 / (beta * p) * np.sqrt(x) * np.maximum(1.0 + 0.038 * np.log(x / beta**2), 0.1)


def mean_stopping_dedx(kinetic, mass: float) -> np.ndarray:
    """Mean dE/dx (MeV/cm) over the whole path of a particle that stops: T / R_CSDA(T).

    ``kinetic`` (MeV, any shape). Below ``RangeTable.T_LOW`` the loss rate is taken as
    constant at dE/dx(T_LOW), which also closes the range the table leaves out there.
    """
    t = np.asarray(kinetic, dtype=np.float64)
    table = range_table(mass)
    floor = float(bethe_dedx(table.T_LOW, mass))
    return np.where(t > table.T_LOW, t / (table.range_of(t) + table.T_LOW / floor), floor)


def box_recombination(dedx, efield_kv_cm: float, alpha: float, beta: float) -> np.ndarray:
    """Fraction R of ionisation electrons escaping recombination, for dE/dx (MeV/cm, any shape).

    Modified Box model (ArgoNeuT, Acciarri et al., JINST 8 (2013) P08005, fitted on stopping
    protons and deuterons): R = ln(alpha + xi) / xi with xi = beta dE/dx / (rho E).
    The formula is made for densely ionising tracks: with alpha < 1 it peaks at xi* and falls
    below it, to R < 0 once alpha + xi < 1. Below xi* (1.54 MeV/cm at 0.5 kV/cm with the
    ArgoNeuT alpha = 0.93, beta = 0.212) R is held at its peak value. This is the dE/dx floor
    LArSoft applies before the modified Box (1 MeV/cm there, ISCalcSeparate), placed at the
    peak so that R is continuous, non-increasing in dE/dx and in (0, 1] for any field and
    0 < alpha <= 1. With u* = alpha + xi* the root of u ln u = u - alpha,
    u* = exp(1 + W0(-alpha / e)) (Lambert W) and the peak value is R(xi*) = 1 / u*.
    """
    # alpha = 1 (the original Box model) has no peak: R rises to 1 as xi -> 0
    xi_floor = float(np.exp(1.0 + lambertw(-alpha / np.e).real)) - alpha if alpha < 1.0 else 1e-6
    xi = np.maximum(beta * np.asarray(dedx, dtype=np.float64) / (DENSITY * efield_kv_cm), xi_floor)
    return np.log(alpha + xi) / xi


# Photon total attenuation below the pair regime: approximate NIST XCOM values for argon
# (cm^2/g) at 0.1, 0.3, 1, 3 MeV, joined log-log to the 9/7 X0 pair mean free path at 10 MeV.
_PHOTON_K = np.log([0.1, 0.3, 1.0, 3.0, 10.0])
_PHOTON_MFP = np.log(
    [1.0 / (0.163 * DENSITY), 1.0 / (0.0953 * DENSITY), 1.0 / (0.0615 * DENSITY), 1.0 / (0.0368 * DENSITY), PAIR_MFP_CM]
)
PAIR_THRESHOLD_MEV = 10.0


def photon_mfp(k: float) -> float:
    """Photon mean free path (cm): 18 cm (9/7 X0) above 10 MeV, Compton-dominated table below."""
    if k >= PAIR_THRESHOLD_MEV:
        return PAIR_MFP_CM
    return float(np.exp(np.interp(np.log(max(k, 0.1)), _PHOTON_K, _PHOTON_MFP)))
