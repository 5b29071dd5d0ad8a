"""Wire-plane projection: charge conservation per tick, gradients, batching, consistency,
dead channels, wire counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_event
from omegaconf import OmegaConf

from voxgen.detector import (
    PlaneGeometry,
    WirePlane,
    apply_dead_channels,
    consistency,
    consistency_residual,
    dead_channel_mask,
    project_to_planes,
    tick_charge,
)
from voxgen.errors import BadInput, ConfigError
from voxgen.sim.config import SimConfig
from voxgen.sim.generator import simulate_event
from voxgen.views import project_2d, wire_plane_images


def random_voxels(rng: np.random.Generator, n: int = 4000, grid: int = 768):
    coords = rng.integers(0, grid, size=(n, 3))
    return coords, torch.from_numpy(rng.uniform(0.01, 5.0, n).astype(np.float32))


def slice_charge(coords: np.ndarray, energy: torch.Tensor, geometry: PlaneGeometry) -> np.ndarray:
    """(n_ticks,) float64 3D charge of each drift slice."""
    ticks = np.floor(coords[:, 0] * geometry.voxel_mm / geometry.tick_mm).astype(np.int64)
    return np.bincount(ticks, weights=energy.double().numpy(), minlength=geometry.n_ticks)


def simulated_event():
    return simulate_event(SimConfig(), np.random.default_rng(3))


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
@pytest.mark.parametrize("tick_mm", [3.0, 0.8, 6.0])
def test_charge_per_tick_equals_drift_slice_charge(interpolation, tick_mm):
    geometry = PlaneGeometry(tick_mm=tick_mm, interpolation=interpolation)
    coords, energy = random_voxels(np.random.default_rng(0))
    images = project_to_planes(coords, energy, geometry)
    expected = slice_charge(coords, energy, geometry)
    assert geometry.n_ticks == math.floor(767 * 3.0 / tick_mm) + 1
    for name in ("U", "V", "Y"):
        per_tick = tick_charge(images[name][0]).double().numpy()
        np.testing.assert_allclose(per_tick, expected, rtol=1e-5, atol=1e-5)
        assert per_tick.sum() == pytest.approx(energy.double().sum().item(), rel=1e-6)


def test_charge_per_tick_on_labelled_and_simulated_events():
    events = [make_event(np.random.default_rng(5), n_clusters=4)]
    try:
        events.append(simulated_event())
    except pytest.skip.Exception:
        pass
    geometry = PlaneGeometry()
    for event in events:
        images = wire_plane_images(event, geometry)
        expected = slice_charge(event.coords, torch.from_numpy(event.energy), geometry)
        for name in ("U", "V", "Y"):
            np.testing.assert_allclose(images[name].sum(axis=0), expected, rtol=1e-5, atol=1e-5)


def test_simulated_event_planes_are_consistent():
    event = simulated_event()
    images = {k: torch.from_numpy(v) for k, v in wire_plane_images(event).items()}
    assert consistency_residual(images["U"], images["V"], images["Y"]).item() < 1e-5


def test_y_plane_is_the_zx_projection():
    """Vertical wires at one-voxel pitch measure z; one-voxel ticks measure x."""
    event = make_event(np.random.default_rng(1), n_clusters=3)
    for interpolation in ("nearest", "linear"):
        y_image = wire_plane_images(event, PlaneGeometry(interpolation=interpolation))["Y"]
        np.testing.assert_allclose(y_image, project_2d(event, "zx"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
def test_gradient_of_plane_sum_is_all_ones(interpolation):
    coords, energy = random_voxels(np.random.default_rng(2), n=500)
    energy.requires_grad_(True)
    images = project_to_planes(coords, energy, PlaneGeometry(interpolation=interpolation))
    for image in images.values():
        (grad,) = torch.autograd.grad(image.sum(), energy, retain_graph=True)
        np.testing.assert_allclose(grad.numpy(), np.ones(500), atol=1e-6)
    # a single pixel: the gradient is the share of each voxel's charge that lands there
    (grad,) = torch.autograd.grad(images["Y"][0, 300:400, :].sum(), energy)
    z = coords[:, 2]
    np.testing.assert_array_equal(grad.numpy(), ((z >= 300) & (z < 400)).astype(np.float32))


def test_batch_matches_per_event():
    rng = np.random.default_rng(4)
    events = [make_event(rng, n_clusters=k) for k in (1, 3, 2)]
    geometry = PlaneGeometry()
    coords = np.concatenate([e.coords for e in events])
    energy = torch.from_numpy(np.concatenate([e.energy for e in events]))
    batch = np.repeat(np.arange(3), [len(e) for e in events])
    batched = project_to_planes(coords, energy, geometry, batch=batch, n_batch=4)
    for name in ("U", "V", "Y"):
        assert batched[name].shape == (4, geometry.n_wires(name), 768)
        for b, event in enumerate(events):
            single = project_to_planes(event.coords, event.energy, geometry)[name][0]
            torch.testing.assert_close(batched[name][b], single, rtol=0, atol=1e-6)
        assert batched[name][3].abs().sum().item() == 0.0


def test_consistency_zero_for_projections_and_not_for_perturbed_planes():
    rng = np.random.default_rng(6)
    events = [make_event(rng, n_clusters=3) for _ in range(2)]
    coords = np.concatenate([e.coords for e in events])
    energy = torch.from_numpy(np.concatenate([e.energy for e in events]))
    batch = np.repeat([0, 1], [len(e) for e in events])
    images = project_to_planes(coords, energy, PlaneGeometry(), batch=batch)
    u, v, y = images["U"], images["V"], images["Y"]
    mismatch = consistency(u, v, y)
    assert mismatch.shape == (2, 768)
    assert mismatch.max().item() < 1e-5
    assert consistency_residual(u, v, y).max().item() < 1e-6

    tick = int(events[0].coords[0, 0])
    u_extra = u.clone()
    u_extra[0, 10, tick] += 1.0
    mismatch = consistency(u_extra, v, y)
    assert mismatch[0, tick].item() == pytest.approx(1.0, abs=1e-5)
    assert mismatch[1].max().item() < 1e-5  # the other event is untouched
    # one plane 10% high everywhere: residual 0.1 Q / (3.1 Q / 3)
    residual = consistency_residual(u * 1.1, v, y)
    np.testing.assert_allclose(residual.numpy(), [0.3 / 3.1] * 2, rtol=1e-5)


def test_dead_channels_blank_exactly_the_listed_wires():
    geometry = PlaneGeometry()
    coords, energy = random_voxels(np.random.default_rng(8), n=20000)
    images = {k: v[0] for k, v in project_to_planes(coords, energy, geometry).items()}
    masks = dead_channel_mask(geometry, {"U": [0, 5, 500, 1048], "Y": [767]})
    dead = apply_dead_channels(images, masks)
    assert {k: int(m.sum()) for k, m in masks.items()} == {"U": 4, "V": 0, "Y": 1}
    for name, wires in (("U", [0, 5, 500, 1048]), ("V", []), ("Y", [767])):
        alive = np.setdiff1d(np.arange(geometry.n_wires(name)), wires)
        assert dead[name][wires].abs().sum().item() == 0.0
        torch.testing.assert_close(dead[name][alive], images[name][alive], rtol=0, atol=0)
    assert images["U"][500].sum().item() > 0  # the blanked wire had charge

    assert int(dead_channel_mask(geometry, {"Y": 1})["Y"].sum()) == 768  # an int is a fraction too
    fraction = dead_channel_mask(geometry, {"V": 0.1}, rng=np.random.default_rng(0))
    assert int(fraction["V"].sum()) == round(0.1 * 1049)
    again = dead_channel_mask(geometry, {"V": 0.1}, rng=np.random.default_rng(0))
    assert torch.equal(fraction["V"], again["V"])
    with pytest.raises(ConfigError, match="plane U has wires 0..1048"):
        dead_channel_mask(geometry, {"U": [1049]})
    with pytest.raises(ConfigError, match="no wire plane 'W'"):
        dead_channel_mask(geometry, {"W": [1]})


@pytest.mark.parametrize(
    "geometry",
    [
        PlaneGeometry(),
        PlaneGeometry(
            planes=(WirePlane("A", 35.0, 4.0), WirePlane("B", -90.0, 5.0), WirePlane("C", 120.0, 2.5)),
            drift_axis="z",
            grid=100,
            tick_mm=2.0,
        ),
    ],
)
def test_wire_counts_cover_the_grid_corners(geometry):
    ends = [0, geometry.grid - 1]
    corners = torch.cartesian_prod(*(torch.tensor(ends),) * 3)
    for plane in geometry.planes:
        position = geometry.wire_position(plane, corners)
        n_wires = geometry.n_wires(plane)
        assert position.min().item() == pytest.approx(0.0, abs=1e-9)
        assert position.max().item() <= n_wires - 1
        assert n_wires == math.ceil(position.max().item()) + 1  # no spare wire
    images = project_to_planes(corners, torch.ones(8), geometry)
    for image in images.values():
        assert image.sum().item() == pytest.approx(8.0, abs=1e-6)


def test_default_wire_counts():
    geometry = PlaneGeometry()
    span = (math.sin(math.radians(60)) + math.cos(math.radians(60))) * 767  # pitch = voxel
    assert geometry.n_wires("U") == geometry.n_wires("V") == math.ceil(span) + 1 == 1049
    assert geometry.n_wires("Y") == 768


def test_from_config_and_errors():
    geometry = PlaneGeometry.from_config(
        {
            "planes": [{"name": "U", "angle_deg": 60, "pitch_mm": 3}, {"name": "Y", "angle_deg": 0}],
            "tick_voxels": 2,
            "drift_axis": "x",
            "interpolation": "nearest",
        }
    )
    assert geometry.names == ("U", "Y")
    assert geometry.tick_mm == 6.0 and geometry.n_ticks == 384
    assert PlaneGeometry.from_config({}) == PlaneGeometry()
    node = OmegaConf.create(
        {
            "planes": [
                {"name": "U", "angle_deg": 60.0},
                {"name": "V", "angle_deg": -60.0},
                {"name": "Y", "angle_deg": 0.0},
            ],
            "tick_mm": 3.0,
        }
    )
    assert PlaneGeometry.from_config(node) == PlaneGeometry()
    with pytest.raises(ConfigError, match="detector.wires"):
        PlaneGeometry.from_config({"wires": 3})
    with pytest.raises(ConfigError, match="not both"):
        PlaneGeometry.from_config({"tick_mm": 3.0, "tick_voxels": 1})
    with pytest.raises(ConfigError, match="drift_axis"):
        PlaneGeometry(drift_axis="t")
    with pytest.raises(BadInput, match="outside the grid"):
        project_to_planes(np.array([[0, 0, 768]]), torch.ones(1), PlaneGeometry())
