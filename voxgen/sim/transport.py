"""Particle transport in liquid argon: heavy tracks, electrons and photons (EM cascades).

Every charged step is recorded as a straight segment (start, end in cm; energy in MeV; time
in ns) owned by a *cluster key* ``(group, semantic, pid)``; ``voxelize`` turns them into voxels.

Models (all in LAr, ``argon`` constants):
- mu, pi, p: CSDA residual-range stepping from Bethe-Bloch with the density effect (so ranges
  are the CSDA ranges), steps shortening near the end (Bragg peak resolved); per-step
  restricted energy-loss fluctuations as a Gamma variate with the Bohr variance
  xi * T_cut * (1 - beta^2/2); knock-on electrons above ``delta_threshold_mev`` sampled from
  the 1/T^2 spectrum (their energy taken from the step's deposit) and tracked as electrons
  labelled delta; Highland multiple scattering per step.
- mu- at rest: captured with probability ``muon_capture_fraction`` (no visible daughter: the
  nuclear de-excitation products are neutrons and sub-MeV gammas, neglected), else decays to a
  Michel electron with the Michel spectrum x^2 (3 - 2x), E_max 52.8 MeV, isotropic, after an
  exponential delay (2.197 us). mu+ always decays.
- pi+: in flight, a hadronic interaction after an exponential distance with the LAr nuclear
  interaction length (61.4 cm) ends the track and emits 0-3 protons with exponential kinetic
  energies (mean 40 MeV) isotropically (the rest goes to invisible neutrons / binding); at rest,
  pi+ -> mu+ (4.1 MeV) -> Michel positron.
- electrons/positrons: ionisation (Bethe with m_e), bremsstrahlung photons above
  ``brems_cut_mev`` sampled from the complete-screening spectrum (4/3 - 4/3 y + y^2)/y per
  step of length ds (expected number ds/X0 times its integral), Highland scattering; steps of
  0.1 X0 above the critical energy, 3 mm below; below ``point_deposit_mev`` the remaining
  energy is deposited at one point (range < ~4 mm). Positron annihilation photons are neglected.
- photons: exponential flight with ``argon.photon_mfp`` (9/7 X0 = 18 cm above 10 MeV);
  above 10 MeV pair conversion sharing k - 2 m_e uniformly; below, Compton scattering sampled
  from Klein-Nishina (Geant4's Butcher-Messel method); below 0.1 MeV photo-absorption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from voxgen.sim import argon

ELECTRON, PHOTON, HEAVY = 0, 1, 2
SEM_SHOWER, SEM_TRACK, SEM_MICHEL, SEM_DELTA, SEM_LOWE = 0, 1, 2, 3, 4
PID_OF = {"gamma": 0, "e-": 1, "e+": 1, "mu-": 2, "mu+": 2, "pi+": 3, "p": 4}


@dataclass
class TransportParams:
    step_cm: float = 0.3
    delta_threshold_mev: float = 2.0
    muon_capture_fraction: float = 0.75
    brems_cut_mev: float = 1.0
    point_deposit_mev: float = 1.0
    lowe_threshold_mev: float = 1.0
    tracking_cut_mev: float = 0.05
    pion_proton_mean_mev: float = 40.0


def _perpendicular_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def rotate(d: np.ndarray, cos_theta: float, phi: float) -> np.ndarray:
    """Direction at polar angle acos(cos_theta), azimuth phi about ``d`` (unit vectors)."""
    u, v = _perpendicular_basis(d)
    sin_theta = math.sqrt(max(0.0, 1.0 - cos_theta * cos_theta))
    out = cos_theta * d + sin_theta * (math.cos(phi) * u + math.sin(phi) * v)
    return out / np.linalg.norm(out)


def isotropic(rng: np.random.Generator) -> np.ndarray:
    cos_t = rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    s = math.sqrt(1.0 - cos_t * cos_t)
    return np.array([s * math.cos(phi), s * math.sin(phi), cos_t])


def sample_michel_energy(rng: np.random.Generator) -> float:
    """Michel electron energy (MeV) from x^2 (3 - 2x), x = E / 52.8 MeV (max density 1 at x=1)."""
    while True:
        x = rng.random()
        if rng.random() <= x * x * (3.0 - 2.0 * x):
            return x * argon.MICHEL_MAX_MEV


class Transport:
    """Transports particles of one event and records their charged segments."""

    def __init__(self, rng: np.random.Generator, params: TransportParams) -> None:
        self.rng, self.p = rng, params
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        self.energy: list[float] = []
        self.time: list[float] = []
        self.key: list[int] = []
        self.keys: dict[tuple[int, int, int], int] = {}
        self.key_info: list[tuple[float, np.ndarray]] = []  # (momentum, vertex) per key
        self.particles: list[tuple[int, float, np.ndarray, np.ndarray, int]] = []
        self.n_groups = 0
        self.stack: list[tuple] = []

    # ---- bookkeeping --------------------------------------------------------------------
    def new_group(self) -> int:
        self.n_groups += 1
        return self.n_groups - 1

    def cluster_key(self, group: int, semantic: int, pid: int, momentum: float, vertex: np.ndarray) -> int:
        k = (group, semantic, pid)
        if k not in self.keys:
            self.keys[k] = len(self.keys)
            self.key_info.append((momentum, vertex.copy()))
        return self.keys[k]

    def deposit(self, start: np.ndarray, end: np.ndarray, energy: float, time: float, key: int) -> None:
        if energy > 0.0:
            self.starts.append(start)
            self.ends.append(end)
            self.energy.append(energy)
            self.time.append(time)
            self.key.append(key)

    def lowe_key(self, vertex: np.ndarray) -> int:
        return self.cluster_key(-1, SEM_LOWE, -1, 0.0, vertex)

    # ---- entry point --------------------------------------------------------------------
    def add_primary(
        self,
        species: str,
        momentum: float,
        pos: np.ndarray,
        direction: np.ndarray,
        time: float = 0.0,
        semantic: int | None = None,
        record: bool = True,
    ) -> None:
        """Queue a particle; ``record`` adds it to the event's truth particles."""
        group = self.new_group()
        mass = argon.MASS[species]
        pid = PID_OF[species]
        if record:
            self.particles.append((pid, momentum, pos.copy(), direction.copy(), group))
        kinetic = argon.kinetic_from_momentum(momentum, mass)
        if species == "gamma":
            sem = SEM_SHOWER if semantic is None else semantic
            self.stack.append(
                (PHOTON, pos.copy(), direction.copy(), momentum, time, group, sem, pid, momentum, pos.copy())
            )
        elif species in ("e-", "e+"):
            sem = SEM_SHOWER if semantic is None else semantic
            self.stack.append(
                (ELECTRON, pos.copy(), direction.copy(), kinetic, time, group, sem, pid, momentum, pos.copy())
            )
        else:
            self.stack.append(
                (HEAVY, pos.copy(), direction.copy(), kinetic, time, group, species, pid, momentum, pos.copy())
            )

    def run(self) -> None:
        while self.stack:
            kind, pos, d, energy, t, group, sem, pid, p0, v0 = self.stack.pop()
            if kind == HEAVY:
                self.track_heavy(sem, pos, d, energy, t, group, p0)
            elif kind == ELECTRON:
                self.track_electron(pos, d, energy, t, group, sem, pid, p0, v0)
            else:
                self.track_photon(pos, d, energy, t, group, sem, pid, p0, v0)

    # ---- heavy charged particles --------------------------------------------------------
    def _step_schedule(self, r0: float) -> np.ndarray:
        """Residual ranges (cm) at step boundaries: fixed steps, then geometric near the end."""
        step = self.p.step_cm
        tail = min(r0, 3.0)
        fixed = np.arange(r0, tail, -step) if r0 > tail else np.zeros(0)
        n_geo = max(2, int(math.ceil(math.log(0.02 / tail) / math.log(0.8))) if tail > 0.02 else 2)
        geo = tail * 0.8 ** np.arange(n_geo)
        return np.concatenate([fixed, geo, [0.0]])

    def track_heavy(self, species: str, pos, d, kinetic, t0, group, p0) -> None:
        rng, prm = self.rng, self.p
        mass = argon.MASS[species]
        pid = PID_OF[species]
        table = argon.range_table(mass)
        r0 = float(table.range_of(kinetic))
        interaction_at = rng.exponential(argon.NUCLEAR_INTERACTION_CM) if species == "pi+" else math.inf
        ranges = self._step_schedule(r0)
        path = r0 - ranges
        interacts = interaction_at < r0
        if interacts:
            keep = path < interaction_at
            ranges = np.concatenate([ranges[keep], [r0 - interaction_at]])
            path = r0 - ranges
        kinetic_at = table.kinetic_of(ranges)
        kinetic_at[0] = kinetic
        ds = np.diff(path)
        de_mean = -np.diff(kinetic_at)
        t_mid = 0.5 * (kinetic_at[1:] + kinetic_at[:-1])
        gamma = 1.0 + t_mid / mass
        beta2 = 1.0 - 1.0 / gamma**2
        beta = np.sqrt(beta2)
        p_mid = argon.momentum_from_kinetic(t_mid, mass)
        theta0 = argon.highland_theta0(p_mid, beta, ds)
        # knock-on electrons above threshold: N ~ Poisson(xi_per_cm ds (1/Tc - 1/Tmax))
        xi = 0.5 * argon.K_BETHE * argon.Z_OVER_A * argon.DENSITY / beta2 * ds  # MeV
        tmax = argon.max_knock_on(t_mid, mass)
        tcut = prm.delta_threshold_mev
        n_delta = rng.poisson(np.where(tmax > tcut, xi * (1.0 / tcut - 1.0 / np.maximum(tmax, tcut)), 0.0))
        mean_delta = np.where(tmax > tcut, xi * np.log(np.maximum(tmax, tcut) / tcut), 0.0)
        restricted = np.maximum(de_mean - mean_delta, 0.0)
        # Gamma fluctuations with the Bohr variance of restricted losses
        var = xi * np.minimum(tcut, tmax) * (1.0 - beta2 / 2.0)
        shape = np.where(var > 0, restricted**2 / np.maximum(var, 1e-12), 1e6)
        deposit = np.where(
            restricted > 0, rng.gamma(np.maximum(shape, 1e-3), 1.0) * restricted / np.maximum(shape, 1e-3), 0.0
        )
        key = self.cluster_key(group, SEM_TRACK, pid, p0, pos)
        # transport (sequential direction updates)
        gauss = rng.standard_normal((len(ds), 2))
        x = pos.astype(np.float64).copy()
        direction = d.astype(np.float64).copy()
        t = t0
        for i in range(len(ds)):
            end = x + ds[i] * direction
            t_step = ds[i] / (beta[i] * 29.9792458)  # ns (c = 29.98 cm/ns)
            for _ in range(n_delta[i]):  # their mean energy is already out of ``restricted``
                u = rng.random()
                t_delta = 1.0 / (1.0 / tcut - u * (1.0 / tcut - 1.0 / tmax[i]))
                p_delta = math.sqrt(t_delta * (t_delta + 2.0 * argon.ELECTRON_MASS))
                e_parent = t_mid[i] + mass
                cos_t = min(1.0, t_delta / p_delta * (e_parent + argon.ELECTRON_MASS) / p_mid[i])
                start = x + rng.random() * ds[i] * direction
                dg = self.new_group()
                self.stack.append(
                    (
                        ELECTRON,
                        start,
                        rotate(direction, cos_t, rng.uniform(0, 2 * math.pi)),
                        t_delta,
                        t,
                        dg,
                        SEM_DELTA,
                        1,
                        p_delta,
                        start,
                    )
                )
            self.deposit(x.copy(), end, deposit[i], t, key)
            x = end
            t += t_step
            # multiple scattering: small-angle kicks in the two transverse directions
            th = theta0[i] * math.hypot(gauss[i, 0], gauss[i, 1])
            direction = rotate(direction, math.cos(th), math.atan2(gauss[i, 1], gauss[i, 0]))
        self._end_of_track(species, x, t, interacts, kinetic_at[-1])

    def _end_of_track(self, species: str, x: np.ndarray, t: float, interacted: bool, kinetic_left: float) -> None:
        rng = self.rng
        if species == "pi+" and interacted:
            for _ in range(rng.integers(0, 4)):
                tp = min(rng.exponential(self.p.pion_proton_mean_mev), kinetic_left)
                if tp > 1.0:
                    self.add_primary(
                        "p", argon.momentum_from_kinetic(tp, argon.PROTON_MASS), x, isotropic(rng), t, record=False
                    )
        elif species == "pi+":  # pi+ -> mu+ nu at rest: 4.1 MeV mu+
            self.add_primary(
                "mu+",
                argon.momentum_from_kinetic(4.12, argon.MUON_MASS),
                x,
                isotropic(rng),
                t + rng.exponential(26.0),
                record=False,
            )
        elif species in ("mu-", "mu+"):
            if species == "mu-" and rng.random() < self.p.muon_capture_fraction:
                return
            energy = sample_michel_energy(rng)
            momentum = math.sqrt(max(energy**2 - argon.ELECTRON_MASS**2, 0.0))
            self.add_primary(
                "e-" if species == "mu-" else "e+",
                momentum,
                x,
                isotropic(rng),
                t + rng.exponential(argon.MUON_LIFETIME_NS),
                semantic=SEM_MICHEL,
            )

    # ---- electrons and positrons --------------------------------------------------------
    def track_electron(self, pos, d, kinetic, t, group, sem, pid, p0, v0) -> None:
        rng, prm = self.rng, self.p
        me = argon.ELECTRON_MASS
        key = self.cluster_key(group, sem, pid, p0, v0)
        if kinetic < prm.point_deposit_mev:
            self.deposit(pos.copy(), pos.copy(), kinetic, t, key)
            return
        x = pos.astype(np.float64).copy()
        direction = d.astype(np.float64).copy()
        kcut = prm.brems_cut_mev
        while kinetic > prm.point_deposit_mev:
            ds = 0.1 * argon.X0_CM if kinetic > argon.CRITICAL_ENERGY else prm.step_cm
            dedx = float(argon.bethe_dedx(kinetic, me))
            e_ion = dedx * ds
            if e_ion >= kinetic:
                ds = kinetic / dedx
                e_ion = kinetic
            # bremsstrahlung with the complete-screening spectrum
            if kinetic > 2.0 * kcut:
                ycut = kcut / kinetic
                integral = 4.0 / 3.0 * math.log(1.0 / ycut) - 4.0 / 3.0 * (1.0 - ycut) + 0.5 * (1.0 - ycut**2)
                for _ in range(rng.poisson(ds / argon.X0_CM * integral)):
                    while True:  # y from 1/y on [ycut, 1], accepted with (4/3 - 4/3 y + y^2) / (4/3)
                        y = ycut ** rng.random()
                        if rng.random() * 4.0 / 3.0 <= 4.0 / 3.0 - 4.0 / 3.0 * y + y * y:
                            break
                    k = y * kinetic
                    if k >= kinetic - e_ion:
                        continue
                    kinetic -= k
                    gamma_e = 1.0 + kinetic / me
                    emit = x + rng.random() * ds * direction
                    self.stack.append(
                        (
                            PHOTON,
                            emit,
                            rotate(direction, math.cos(1.0 / gamma_e), rng.uniform(0, 2 * math.pi)),
                            k,
                            t,
                            group,
                            sem,
                            pid,
                            p0,
                            v0,
                        )
                    )
            end = x + ds * direction
            self.deposit(x.copy(), end, min(e_ion, kinetic), t, key)
            kinetic -= min(e_ion, kinetic)
            x = end
            t += ds / 29.9792458
            if kinetic <= 0:
                return
            p = math.sqrt(kinetic * (kinetic + 2.0 * me))
            beta = p / (kinetic + me)
            th = float(argon.highland_theta0(p, beta, ds)) * math.hypot(*rng.standard_normal(2))
            direction = rotate(direction, math.cos(th), rng.uniform(0, 2 * math.pi))
        if kinetic > 0:
            self.deposit(x.copy(), x.copy(), kinetic, t, key)

    # ---- photons ------------------------------------------------------------------------
    def track_photon(self, pos, d, k, t, group, sem, pid, p0, v0) -> None:
        rng, me = self.rng, argon.ELECTRON_MASS
        x = pos.astype(np.float64).copy()
        direction = d.astype(np.float64).copy()
        while k > self.p.tracking_cut_mev:
            flight = rng.exponential(argon.photon_mfp(k))
            x = x + flight * direction
            t += flight / 29.9792458
            if k < 0.1:  # photo-absorption
                self._compton_electron(x, direction, k, t, group, sem, pid, p0, v0)
                return
            if k >= argon.PAIR_THRESHOLD_MEV:
                share = rng.random()
                avail = k - 2.0 * me
                for kin in (share * avail, (1.0 - share) * avail):
                    angle = me / max(kin, me)
                    self.stack.append(
                        (
                            ELECTRON,
                            x.copy(),
                            rotate(direction, math.cos(angle), rng.uniform(0, 2 * math.pi)),
                            kin,
                            t,
                            group,
                            sem,
                            pid,
                            p0,
                            v0,
                        )
                    )
                return
            kappa = k / me
            eps0 = 1.0 / (1.0 + 2.0 * kappa)
            a1, a2 = -math.log(eps0), 0.5 * (1.0 - eps0 * eps0)
            while True:  # Butcher-Messel sampling of Klein-Nishina
                if rng.random() * (a1 + a2) < a1:
                    eps = math.exp(-a1 * rng.random())
                else:
                    eps = math.sqrt(eps0 * eps0 + (1.0 - eps0 * eps0) * rng.random())
                one_minus_cos = (1.0 - eps) / (eps * kappa)
                sin2 = one_minus_cos * (2.0 - one_minus_cos)
                if rng.random() <= 1.0 - eps * sin2 / (1.0 + eps * eps):
                    break
            kinetic = k * (1.0 - eps)
            phi = rng.uniform(0, 2 * math.pi)
            theta = math.acos(max(-1.0, 1.0 - one_minus_cos))
            electron_angle = math.atan2(1.0, (1.0 + kappa) * math.tan(theta / 2.0)) if theta > 0 else math.pi / 2
            self._compton_electron(
                x, rotate(direction, math.cos(electron_angle), phi + math.pi), kinetic, t, group, sem, pid, p0, v0
            )
            k *= eps
            direction = rotate(direction, 1.0 - one_minus_cos, phi)

    def _compton_electron(self, x, direction, kinetic, t, group, sem, pid, p0, v0) -> None:
        if kinetic < self.p.lowe_threshold_mev:
            self.deposit(x.copy(), x.copy(), kinetic, t, self.lowe_key(x))
        else:
            self.stack.append((ELECTRON, x.copy(), direction, kinetic, t, group, sem, pid, p0, v0))
