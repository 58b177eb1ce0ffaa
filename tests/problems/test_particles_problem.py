"""Specification of the ``particles`` problem (MLS-MPM trajectories in the GNS layout): shapes and
fields, per-sample determinism, solve as a pure function of the stored inputs, the GNS statistics
and metadata, the dataset round trip through ``sciops generate``, ParaView export, bad input."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import meshio
import numpy as np
import pytest

from sciops import problems
from sciops.cli import main
from sciops.datasets import open_dataset, open_xarray
from sciops.datasets.particles import export_dataset_trajectory, export_paraview, gns_metadata
from sciops.solvers import mpm

SMALL = dict(n_particles=120, frames=4, stride=3, grid=16)


def small(**kw):
    return problems.get("particles", **{**SMALL, **kw})


@pytest.mark.parametrize("dim", [2, 3])
def test_shapes_fields_and_gns_statistics(dim):
    p = small(dim=dim, material="mixed", scene="colliding_spheres")
    x, y, seconds = p.generate(2, seed=5)
    assert x["position0"].shape == (2, 120, dim) and x["particle_type"].shape == (2, 120)
    assert y["position"].shape == (2, 4, 120, dim) and y["position"].dtype == np.float32
    np.testing.assert_array_equal(y["position"][:, 0], x["position0"])  # frame 0 is the input state
    assert set(np.unique(x["particle_type"])) <= {0.0, 1.0, 2.0, 3.0} and seconds > 0
    assert (y["position"] >= 0).all() and (y["position"] <= 1).all()
    # statistics are the per-frame differences of the stored frames (GNS convention)
    v = np.diff(y["position"].astype(np.float64), axis=1)
    a = np.diff(v, axis=1)
    np.testing.assert_allclose(y["velocity_mean"], v.mean((1, 2)), rtol=1e-12)
    np.testing.assert_allclose(y["acceleration_std"], a.std((1, 2)), rtol=1e-12)
    assert p.grid["t"].tolist() == pytest.approx([k * 3 * p.dt for k in range(4)])
    info = p.solver_info
    assert info["bounds"] == [[0.0, 1.0]] * dim and info["frame_dt"] == pytest.approx(3 * p.dt)
    assert info["default_connectivity_radius"] == pytest.approx(1 / 16)


def test_samples_depend_only_on_seed_and_index_and_solve_is_pure():
    p = small(scene="falling_blocks", material="sand")
    x_all, y_all, _ = p.generate(3, seed=7)
    x_one, y_one, _ = p.generate(1, seed=7, start=2)
    for k in x_all:
        np.testing.assert_array_equal(x_all[k][2], x_one[k][0])
    np.testing.assert_array_equal(y_all["position"][2], y_one["position"][0])
    # solve(stored float32 inputs) reproduces the stored trajectory, one sample without batch axis too
    np.testing.assert_array_equal(p.solve(x_all), y_all["position"])
    np.testing.assert_array_equal(p.solve({k: v[1] for k, v in x_all.items()}), y_all["position"][1])
    # different seeds give different scenes
    assert not np.allclose(p.sample_inputs(1, 8)["position0"], x_all["position0"][0])


def test_a_column_of_sand_collapses_and_falling_blocks_fall():
    p = small(scene="column_collapse", material="sand", frames=5, stride=40, n_particles=200)
    pos = p.generate(1, seed=0)[1]["position"][0]
    assert pos[-1][:, 0].max() > pos[0][:, 0].max()  # spreads along the floor
    assert pos[-1][:, 1].max() < pos[0][:, 1].max()  # and gets lower
    q = small(scene="falling_blocks", frames=3, stride=20)
    x, y, _ = q.generate(1, seed=1)
    t = q.grid["t"][-1]
    drop = y["position"][0, 0, :, 1].mean() - y["position"][0, -1, :, 1].mean()
    # under gravity with little time to hit anything: close to the drop of the free-fall parabola
    vy = x["velocity0"][0, :, 1].mean()
    assert drop == pytest.approx(-vy * t + 0.5 * 9.81 * t ** 2, rel=0.1)


def test_dataset_round_trip_gns_metadata_and_paraview_export(tmp_path):
    out = tmp_path / "p.h5"
    assert main(["generate", "particles", "-n", "3", "-o", str(out), "--seed", "2", "--param", "n_particles=64",
                 "--param", "frames=4", "--param", "stride=2", "--param", "grid=16",
                 "--param", "scene=dam_break", "--param", "material=fluid"]) == 0
    ds = open_xarray(out)
    assert ds["position"].dims == ("sample", "t", "particle", "channel")
    assert ds["position"].shape == (3, 4, 64, 2)
    assert ds["velocity_mean"].dims == ("sample", "channel") and ds["velocity_mean"].attrs["role"] == "diagnostic"
    p = problems.get("particles", **json.loads(ds.attrs["problem_params"]))
    x = {k: ds[k].values for k in p.input_fields}
    np.testing.assert_array_equal(p.solve(x), ds["position"].values)  # the stored data are the solver's
    assert p.params["backend"] == mpm.backends.default() == json.loads(ds.attrs["problem_params"])["backend"]
    torch_ds = open_dataset(out)
    xb, yb = torch_ds[0]
    assert tuple(xb.shape) == (2 + 2 + 1 + 0 + 1, 64) and tuple(yb.shape) == (2, 4, 64)
    meta = gns_metadata(out)
    assert meta["bounds"] == [[0.0, 1.0], [0.0, 1.0]] and meta["sequence_length"] == 4 and meta["dim"] == 2
    v = np.diff(ds["position"].values.astype(np.float64), axis=1)
    a = np.diff(v, axis=1)
    np.testing.assert_allclose(meta["vel_mean"], v.mean((0, 1, 2)), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(meta["vel_std"], v.std((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(meta["acc_std"], a.std((0, 1, 2)), rtol=1e-5)
    assert meta["dt"] == pytest.approx(2 * p.dt)
    json.dumps(meta)
    index = export_dataset_trajectory(out, 1, tmp_path / "vtk")
    files = ET.parse(index).getroot().findall("./Collection/DataSet")
    assert len(files) == 4
    assert [float(f.get("timestep")) for f in files] == pytest.approx(ds["t"].values.tolist())
    last = meshio.read(index.parent / files[-1].get("file"))
    np.testing.assert_allclose(last.points[:, :2], ds["position"].values[1, -1], rtol=1e-6)
    assert np.all(last.points[:, 2] == 0) and (last.point_data["particle_type"] == 1).all()


def test_mesh_scene(tmp_path):
    pts = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    path = tmp_path / "square.vtk"
    meshio.write(path, meshio.Mesh(pts, [("triangle", np.array([[0, 1, 2], [0, 2, 3]]))]))
    p = small(scene="mesh", mesh=str(path), material="plasticine")
    x, y, _ = p.generate(1, seed=0)
    assert y["position"].shape == (1, 4, 120, 2) and np.isfinite(y["position"]).all()
    assert np.ptp(x["position0"][0], axis=0).max() == pytest.approx(0.4, rel=0.1)  # scaled to 0.4 m


def test_export_paraview_3d_and_bad_shapes(tmp_path):
    positions = np.random.default_rng(0).random((3, 10, 3))
    index = export_paraview(positions, tmp_path, times=[0.0, 0.5, 1.0], point_data={"speed": np.arange(10.0)},
                            name="run")
    assert index.name == "run.pvd" and sorted(f.name for f in tmp_path.glob("run_*.vtu")) == \
        ["run_0000.vtu", "run_0001.vtu", "run_0002.vtu"]
    np.testing.assert_allclose(meshio.read(tmp_path / "run_0002.vtu").points, positions[2])
    with pytest.raises(ValueError, match="expected \\(T, P, dim\\)"):
        export_paraview(np.zeros((3, 10)), tmp_path)
    with pytest.raises(ValueError, match="point data 'speed'"):
        export_paraview(positions, tmp_path, point_data={"speed": np.arange(9.0)})


@pytest.mark.parametrize("params, words", [
    (dict(dt=1.0), ["dt=1", "stability limit", "expected dt <="]),
    (dict(scene="mesh"), ["mesh=None", "scene=mesh"]),
    (dict(mesh="x.vtu"), ["scene=mesh"]),
    (dict(material="honey"), ["material", "elastic, fluid, sand, plasticine, mixed"]),
    (dict(frames=1), ["frames", "out of range"]),
])
def test_bad_parameters(params, words):
    with pytest.raises(ValueError) as err:
        small(**params)
    assert "\n" not in str(err.value)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_unreadable_mesh_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0\nf 1 2 3 4 5\n<<garbage>>\n")
    with pytest.raises(ValueError, match="cannot read mesh|non-empty|no points"):
        small(scene="mesh", mesh=str(bad), dim=3)


def test_bad_inputs_to_solve():
    p = small()
    x = p.sample_inputs(1, 0)
    outside = {k: v.copy() for k, v in x.items()}
    outside["position0"][0, 5] = [1.5, 0.5]
    with pytest.raises(ValueError, match="sample 0: .*outside the bounds"):
        p.solve(outside)
    wrong = dict(x, particle_type=np.full_like(x["particle_type"], 2.0))  # sand in an elastic problem
    with pytest.raises(ValueError, match="particle_type"):
        p.solve(wrong)
    with pytest.raises(ValueError, match="volume"):
        p.solve({k: v for k, v in x.items() if k != "volume"})


NO_WARP = pytest.mark.skipif("warp" not in mpm.backends.installed(),
                             reason="warp-lang is not installed: the compiled backend is not tested")


@NO_WARP
def test_backend_parameter_is_recorded_and_the_backends_agree():
    runs = {}
    for backend in ("torch", "warp"):
        p = small(scene="colliding_spheres", material="mixed", backend=backend)
        assert p.params["backend"] == backend and p.solver_info["backend"] == backend
        x, y, _ = p.generate(2, seed=3)
        np.testing.assert_array_equal(p.solve(x), y["position"])  # the same backend reproduces its data
        runs[backend] = y["position"]
    np.testing.assert_allclose(runs["warp"], runs["torch"], atol=1e-6, rtol=0)  # float32 storage of float64 runs
    assert "backend" not in small().operator_params  # data from either backend train the same operator


def test_backend_refusals(monkeypatch):
    with pytest.raises(ValueError, match="backend") as err:
        small(backend="numba")
    assert "warp, torch" in str(err.value)
    monkeypatch.setattr(mpm.backends, "_warp", lambda: None)  # as without warp-lang
    assert small().params["backend"] == "torch"
    with pytest.raises(ValueError) as err:
        small(backend="warp")
    assert str(err.value) == "particles: backend='warp' is not installed (pip install warp-lang); expected one of torch"


def test_statistics_of_uniform_motion():
    t = np.arange(5)[None, :, None, None] * np.array([0.1, -0.2])
    stats = mpm.gns_statistics(np.broadcast_to(t, (1, 5, 3, 2)))
    np.testing.assert_allclose(stats["velocity_mean"], [[0.1, -0.2]])
    np.testing.assert_allclose(stats["velocity_std"], 0, atol=1e-15)
    np.testing.assert_allclose(stats["acceleration_mean"], 0, atol=1e-15)
    pooled = mpm.gns_statistics(np.stack([t[0], 2 * t[0]]) + np.zeros((2, 5, 3, 2)), pooled=True)
    np.testing.assert_allclose(pooled["velocity_mean"], [0.15, -0.3])  # two trajectories pooled
    np.testing.assert_allclose(pooled["velocity_std"], [0.05, 0.1])
    with pytest.raises(ValueError, match="T >= 3"):
        mpm.gns_statistics(np.zeros((4, 2, 3, 2)))


def test_scene_families_are_all_problems():
    assert set(mpm.FAMILIES) | {"mesh"} == set(problems.get("particles").PARAMS[1].choices)
