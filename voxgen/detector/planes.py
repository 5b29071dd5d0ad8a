"""Wire-plane readout: geometry, projection of 3D charge onto wire x tick images, dead wires,
three-plane consistency.

Frame: voxel indices (x, y, z), ``voxel_mm`` a side. The drift axis (x by default) becomes time
ticks, ``tick = floor(x * voxel_mm / tick_mm)``. The wires lie in the plane of the two other
axes, called (vertical, horizontal) in that order (y, z for drift x). A plane's wires run at
``angle_deg`` from vertical; its wire coordinate is the projection of the voxel centre onto the
unit normal ``(-sin a, cos a)`` (vertical, horizontal), in pitch units, offset so the lowest
voxel centre of the grid lands on wire 0. Every drifting charge crosses every plane, so for each
tick the summed charge of each plane equals the 3D charge of that drift slice.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from voxgen.errors import BadInput, ConfigError
from voxgen.events import GRID_SIZE, VOXEL_MM

AXES = "xyz"
INTERPOLATIONS = ("nearest", "linear")


@dataclass(frozen=True)
class WirePlane:
    """One wire plane: wires at ``angle_deg`` from vertical (degrees), ``pitch_mm`` apart."""

    name: str
    angle_deg: float
    pitch_mm: float = 3.0

    @property
    def normal(self) -> tuple[float, float]:
        """Unit vector (vertical, horizontal) across the wires: the wire-number direction."""
        a = math.radians(self.angle_deg)
        return -math.sin(a), math.cos(a)


MICROBOONE_PLANES = (WirePlane("U", 60.0), WirePlane("V", -60.0), WirePlane("Y", 0.0))


@dataclass(frozen=True)
class PlaneGeometry:
    """Wire planes reading a cubic grid of ``grid`` voxels a side.

    ``tick_mm``: drift distance per time tick (default one voxel; MicroBooNE samples about
    0.8 mm per tick before downsampling). ``interpolation``: ``"nearest"`` gives a voxel's charge
    to its nearest wire, ``"linear"`` splits it between the two wires around it; both conserve
    charge.
    """

    planes: tuple[WirePlane, ...] = MICROBOONE_PLANES
    drift_axis: str = "x"
    tick_mm: float = VOXEL_MM
    voxel_mm: float = VOXEL_MM
    grid: int = GRID_SIZE
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "planes", tuple(self.planes))
        names = [p.name for p in self.planes]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"detector.planes: need at least one plane and unique names, got {names}")
        if self.drift_axis not in AXES:
            raise ConfigError(f"detector.drift_axis: '{self.drift_axis}' is not one of x, y, z")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"detector.interpolation: '{self.interpolation}' is not one of {INTERPOLATIONS}")
        for key in ("tick_mm", "voxel_mm", "grid"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"detector.{key}: must be > 0, got {getattr(self, key)}")
        for p in self.planes:
            if not p.pitch_mm > 0:
                raise ConfigError(f"detector.planes.{p.name}.pitch_mm: must be > 0, got {p.pitch_mm}")

    @classmethod
    def from_config(cls, cfg: Mapping) -> PlaneGeometry:
        """Geometry from a config mapping (dict or OmegaConf node).

        Keys (all optional): ``planes`` (list of {name, angle_deg, pitch_mm}), ``drift_axis``,
        ``tick_mm`` or ``tick_voxels`` (not both), ``voxel_mm``, ``grid``, ``interpolation``.
        """
        known = {"planes", "drift_axis", "tick_mm", "tick_voxels", "voxel_mm", "grid", "interpolation"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown config key 'detector.{unknown[0]}'")
        if "tick_mm" in cfg and "tick_voxels" in cfg:
            raise ConfigError("detector: give tick_mm or tick_voxels, not both")
        kwargs = {}
        if "planes" in cfg:
            kwargs["planes"] = tuple(
                WirePlane(str(p["name"]), float(p["angle_deg"]), float(p.get("pitch_mm", 3.0))) for p in cfg["planes"]
            )
        for key, cast in (("drift_axis", str), ("voxel_mm", float), ("grid", int), ("interpolation", str)):
            if key in cfg:
                kwargs[key] = cast(cfg[key])
        voxel_mm = kwargs.get("voxel_mm", VOXEL_MM)
        if "tick_mm" in cfg:
            kwargs["tick_mm"] = float(cfg["tick_mm"])
        elif "tick_voxels" in cfg:
            kwargs["tick_mm"] = float(cfg["tick_voxels"]) * voxel_mm
        return cls(**kwargs)

    # ---- geometry --------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.planes)

    def plane(self, name: str) -> WirePlane:
        for p in self.planes:
            if p.name == name:
                return p
        raise ConfigError(f"detector: no wire plane '{name}' (planes: {', '.join(self.names)})")

    @property
    def wire_axes(self) -> tuple[int, int]:
        """(vertical, horizontal) axis indices of the wire plane: the two non-drift axes."""
        drift = AXES.index(self.drift_axis)
        vertical, horizontal = (a for a in range(3) if a != drift)
        return vertical, horizontal

    @property
    def n_ticks(self) -> int:
        """Ticks covering the drift axis: ``floor((grid - 1) * voxel_mm / tick_mm) + 1``."""
        return int(math.floor((self.grid - 1) * self.voxel_mm / self.tick_mm)) + 1

    def ticks(self, coords: torch.Tensor) -> torch.Tensor:
        """(N,) int64 tick of each voxel of ``coords`` (N, 3) int."""
        drift = coords[:, AXES.index(self.drift_axis)].to(torch.float64)
        return torch.floor(drift * (self.voxel_mm / self.tick_mm)).to(torch.int64)

    def _wire_mm(self, plane: WirePlane, coords: torch.Tensor) -> torch.Tensor:
        vertical, horizontal = self.wire_axes
        centre = (coords.to(torch.float64) + 0.5) * self.voxel_mm
        nv, nh = plane.normal
        return nv * centre[:, vertical] + nh * centre[:, horizontal]

    def _grid_corners(self) -> torch.Tensor:
        """(8, 3) int64: the extreme voxels of the grid."""
        ends = torch.tensor([0, self.grid - 1])
        return torch.cartesian_prod(ends, ends, ends)

    def wire_position(self, plane: WirePlane | str, coords: torch.Tensor) -> torch.Tensor:
        """(N,) float64 wire coordinate of voxel centres, in pitch units, >= 0 on the grid."""
        plane = self.plane(plane) if isinstance(plane, str) else plane
        offset = self._wire_mm(plane, self._grid_corners()).min()
        return (self._wire_mm(plane, coords) - offset) / plane.pitch_mm

    def n_wires(self, plane: WirePlane | str) -> int:
        """Wires needed so every voxel centre of the grid lies between wire 0 and the last wire."""
        span = self.wire_position(plane, self._grid_corners()).max().item()
        return int(math.ceil(span)) + 1


def project_to_planes(
    coords: torch.Tensor | np.ndarray,
    energy: torch.Tensor | np.ndarray,
    geometry: PlaneGeometry,
    batch: torch.Tensor | np.ndarray | None = None,
    n_batch: int | None = None,
) -> dict[str, torch.Tensor]:
    """Wire-plane images of 3D charge: {plane name: (B, n_wires, n_ticks)} in MeV.

    ``coords`` (N, 3) int voxel indices in [0, geometry.grid); ``energy`` (N,) MeV (a tensor
    that requires grad stays differentiable: the images are ``index_add`` sums of it);
    ``batch`` (N,) int event index of each voxel (all 0 when None); ``n_batch`` number of
    events B (default ``batch.max() + 1``). Images take ``energy``'s dtype and device.
    """
    energy = torch.as_tensor(energy)
    if not energy.is_floating_point():
        energy = energy.to(torch.float32)
    device = energy.device
    coords = torch.as_tensor(coords, device=device).to(torch.int64).reshape(-1, 3)
    n = len(energy)
    if coords.shape[0] != n:
        raise BadInput(f"project_to_planes: {coords.shape[0]} coordinates for {n} energies")
    if n and (coords.min() < 0 or coords.max() >= geometry.grid):
        raise BadInput(
            f"project_to_planes: coordinates outside the grid [0, {geometry.grid}): "
            f"min {int(coords.min())}, max {int(coords.max())}"
        )
    if batch is None:
        batch = torch.zeros(n, dtype=torch.int64, device=device)
    else:
        batch = torch.as_tensor(batch, device=device).to(torch.int64).reshape(-1)
    if n_batch is None:
        n_batch = int(batch.max()) + 1 if n else 1
    n_ticks = geometry.n_ticks
    tick = geometry.ticks(coords)
    images = {}
    for plane in geometry.planes:
        n_wires = geometry.n_wires(plane)
        # n_wires covers every voxel centre; the clamp only absorbs float round-off at the edges.
        position = geometry.wire_position(plane, coords).clamp(0, n_wires - 1)
        if geometry.interpolation == "nearest":
            wires = torch.round(position).to(torch.int64)[None]
            charge = energy[None]
        else:
            lower = torch.floor(position)
            upper_share = (position - lower).to(energy.dtype)
            lower = lower.to(torch.int64)
            wires = torch.stack([lower, (lower + 1).clamp(max=n_wires - 1)])
            upper_charge = energy * upper_share
            charge = torch.stack([energy - upper_charge, upper_charge])
        flat = (batch * n_wires + wires) * n_ticks + tick
        image = torch.zeros(n_batch * n_wires * n_ticks, dtype=energy.dtype, device=device)
        images[plane.name] = image.index_add(0, flat.reshape(-1), charge.reshape(-1)).reshape(n_batch, n_wires, n_ticks)
    return images


def tick_charge(image: torch.Tensor) -> torch.Tensor:
    """(..., n_ticks) charge per tick of a plane image (..., n_wires, n_ticks)."""
    return image.sum(dim=-2)


def consistency(u: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., n_ticks) three-plane mismatch: per tick, the largest pairwise |charge difference|.

    Images are (..., n_wires, n_ticks) with the same ticks; the result is in the images' charge
    units (MeV), unnormalised, and zero (to float precision) for any projection of a 3D event.
    """
    charge = torch.stack([tick_charge(u), tick_charge(v), tick_charge(y)])
    return charge.amax(dim=0) - charge.amin(dim=0)


def consistency_residual(u: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(...,) relative residual per image set: summed per-tick mismatch over the mean total charge.

    0 for consistent planes; 0 also for empty images.
    """
    total = (tick_charge(u) + tick_charge(v) + tick_charge(y)).sum(dim=-1) / 3
    return consistency(u, v, y).sum(dim=-1) / total.abs().clamp_min(torch.finfo(total.dtype).tiny)


def dead_channel_mask(
    geometry: PlaneGeometry, dead: Mapping[str, Sequence[int] | float], rng: np.random.Generator | None = None
) -> dict[str, torch.Tensor]:
    """{plane name: (n_wires,) bool, True on dead wires} for every plane of ``geometry``.

    ``dead[name]`` is a list of wire indices, or a number: the fraction in [0, 1] of the
    plane's wires drawn without replacement with ``rng``. Planes absent from ``dead`` are fully alive.
    """
    rng = np.random.default_rng() if rng is None else rng
    unknown = sorted(set(dead) - set(geometry.names))
    if unknown:
        raise ConfigError(f"dead channels: no wire plane '{unknown[0]}' (planes: {', '.join(geometry.names)})")
    masks = {}
    for plane in geometry.planes:
        n_wires = geometry.n_wires(plane)
        mask = np.zeros(n_wires, dtype=bool)
        spec = dead.get(plane.name, [])
        if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
            if not 0.0 <= spec <= 1.0:
                raise ConfigError(f"dead channels: fraction for plane {plane.name} must be in [0, 1], got {spec}")
            mask[rng.choice(n_wires, size=round(spec * n_wires), replace=False)] = True
        else:
            wires = np.asarray(list(spec), dtype=np.int64)
            if wires.size and (wires.min() < 0 or wires.max() >= n_wires):
                raise ConfigError(
                    f"dead channels: plane {plane.name} has wires 0..{n_wires - 1}, got {wires.min()}..{wires.max()}"
                )
            mask[wires] = True
        masks[plane.name] = torch.from_numpy(mask)
    return masks


def apply_dead_channels(
    images: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Images (..., n_wires, n_ticks) with the dead wire columns of ``masks`` set to zero."""
    return {
        name: image.masked_fill(masks[name].to(image.device)[:, None], 0.0) if name in masks else image
        for name, image in images.items()
    }
