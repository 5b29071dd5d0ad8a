"""Print the simulator's physics figures next to their expectations (what the tests assert).

python tools/check_sim_physics.py
"""

from __future__ import annotations

import numpy as np

from voxgen.sim import argon, validation


def main() -> None:
    print("CSDA range (Bethe-Bloch integration) vs reference:")
    for species, p, ref in [("mu-", 300, 82), ("mu-", 800, 310), ("p", 800, 50)]:
        r = validation.csda_range(species, p)
        print(f"  {species:<4} {p:4d} MeV/c: {r:6.1f} cm  (reference {ref} cm, {100 * (r / ref - 1):+.1f}%)")
    print("contained track length (vertex to farthest track voxel, mean of 10) vs CSDA:")
    for species, p in [("mu-", 300), ("p", 800), ("p", 400)]:
        measured, csda = validation.track_length(species, p)
        print(
            f"  {species:<4} {p:4d} MeV/c: {measured:6.1f} cm vs {csda:6.1f} cm ({100 * (measured / csda - 1):+.1f}%)"
        )
    dedx = validation.mip_dedx()
    print(f"MIP muon mean dE/dx (400 MeV/c, first 40 cm): {dedx:.3f} MeV/cm (2.1, {100 * (dedx / 2.1 - 1):+.1f}%)")
    print(f"Bragg peak: proton dE/dx last 1 cm / first 10 cm >= {validation.bragg_ratio():.1f}")
    for energy in (500.0, 1000.0):
        peak, expected, deposited = validation.shower_profile_peak(energy)
        print(
            f"e- {energy:.0f} MeV shower: profile peak {peak:.2f} X0 (ln(E/Ec)-0.5 = {expected:.2f}), "
            f"deposited {deposited:.0f} MeV"
        )
    d = validation.photon_conversion_distances()
    print(
        f"photon conversion distance: mean {d.mean():.1f} +- {d.std() / np.sqrt(len(d)):.1f} cm "
        f"(9/7 X0 = {argon.PAIR_MFP_CM:.1f})"
    )
    fraction, energies = validation.michel_fraction()
    print(
        f"stopped mu-: Michel fraction {fraction:.3f} (0.25), Michel deposit mean {energies.mean():.1f} MeV, "
        f"max {energies.max():.1f} MeV (<= 52.8)"
    )


if __name__ == "__main__":
    main()
