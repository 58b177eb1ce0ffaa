"""Import of other projects' files (``sciops.datasets.import_file``) and of arrays (``from_arrays``).

Every source file is written here, small, with the library that writes that layout (scipy.io.savemat,
h5py, torch.save, numpy.savez); nothing is downloaded.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from sciops.datasets import (
    describe,
    from_arrays,
    import_file,
    importing,
    open_dataset,
    open_xarray,
    parse_grid,
    partial_path,
)
from sciops.datasets.importers import FORMATS, detect
from sciops.problems import get

N, S = 6, 9


def _arrays(seed=0, n=N, s=S):
    rng = np.random.default_rng(seed)
    return rng.random((n, s, s)), rng.random((n, s, s))


def _fields(path):
    ds = open_xarray(path)
    return {name: ds[name].values for name in ds.data_vars}, ds


def _write_v73(path, arrays: dict[str, np.ndarray]):
    """A MATLAB 7.3 file as MATLAB writes it: HDF5 after a 512-byte header, every array column-major
    (h5py sees its axes reversed)."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for key, arr in arrays.items():
            ds = h5.create_dataset(key, data=np.asarray(arr).T)
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02IM")


# --- formats -----------------------------------------------------------------------------------------
def test_mat_v5_darcy_imports_as_external(tmp_path):
    a, u = _arrays()
    src = tmp_path / "darcy.mat"
    scipy.io.savemat(src, {"coeff": a, "sol": u})
    assert detect(src) == "mat"
    result = import_file(src, tmp_path / "d.h5", progress=False)
    assert result.problem == "external" and result.n == N
    got, ds = _fields(result.path)
    np.testing.assert_array_equal(got["coeff"], a.astype(np.float32))
    np.testing.assert_array_equal(got["sol"], u.astype(np.float32))
    assert ds["coeff"].dims == ("sample", "y", "x")
    np.testing.assert_array_equal(ds["x"].values, np.linspace(0, 1, S))
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["format"] == "mat" and len(provenance["sha256"]) == 64
    assert provenance["keys"] == {"coeff": "coeff", "sol": "sol"}
    assert any("float64 converted to float32" in t for t in provenance["transformations"])
    data = open_dataset(result.path)
    assert data[0][0].shape == (1, S, S) and data.problem.name == "external"
    assert get("external", **data.attrs["problem_params"]).geometry == "bounded"
    with pytest.raises(ValueError, match="no solver for imported data.*--as"):
        data.problem.solve(a[:1])
    with pytest.raises(ValueError, match="no solver"):
        data.problem.sample_inputs(2, seed=0)
    text = describe(result.path)
    for needle in ("problem    external", "source     ", "(mat, sha256", "changed    ", "6 / 6 written, complete"):
        assert needle in text, needle


def test_mat_v73_reads_matlab_axes_and_moves_time(tmp_path):
    rng = np.random.default_rng(1)
    a, u, t = rng.random((N, 8, 8)), rng.random((N, 8, 8, 5)), np.arange(1, 6) * 0.5
    v5, v73 = tmp_path / "ns5.mat", tmp_path / "ns73.mat"
    scipy.io.savemat(v5, {"a": a, "u": u, "t": t})
    _write_v73(v73, {"a": a, "u": u, "t": t[None]})
    assert detect(v73) == "mat"
    got5, ds5 = _fields(import_file(v5, tmp_path / "a.h5", progress=False).path)
    got73, ds73 = _fields(import_file(v73, tmp_path / "b.h5", progress=False, batch=4).path)
    for key in ("a", "u"):
        np.testing.assert_array_equal(got5[key], got73[key])
    np.testing.assert_array_equal(got73["a"], a.astype(np.float32))
    np.testing.assert_array_equal(got73["u"], np.moveaxis(u, -1, 1).astype(np.float32))
    assert ds73["u"].dims == ("sample", "t", "y", "x")
    np.testing.assert_array_equal(ds73["t"].values, t)
    assert json.loads(ds73.attrs["problem_params"])["geometry"] == "periodic"
    np.testing.assert_array_equal(ds73["x"].values, np.arange(8) / 8)


def test_neuraloperator_pt_dict(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.random((N, 16, 16)) > 0.5, rng.random((N, 16, 16)).astype(np.float32)
    src = tmp_path / "darcy_train_16.pt"
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, src)
    assert detect(src) == "pt"
    got, ds = _fields(import_file(src, tmp_path / "p.h5", progress=False).path)
    np.testing.assert_array_equal(got["input"], x.astype(np.float32))  # 'x' and 'y' are coordinate names
    np.testing.assert_array_equal(got["output"], y)
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["keys"] == {"input": "x", "output": "y"}
    assert any("bool converted" in t for t in provenance["transformations"])


def test_pdebench_darcy_with_coordinates(tmp_path):
    rng = np.random.default_rng(3)
    nu, sol = rng.random((N, 12, 12)), rng.random((N, 1, 12, 12))
    xc = (np.arange(12) + 0.5) / 12
    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(src, "w") as h5:
        h5["nu"], h5["tensor"] = nu.astype(np.float32), sol.astype(np.float32)
        h5["x-coordinate"], h5["y-coordinate"] = xc.astype(np.float32), xc.astype(np.float32)
        h5["t-coordinate"] = np.arange(11, dtype=np.float32)
    assert detect(src) == "pdebench"
    got, ds = _fields(import_file(src, tmp_path / "p.h5", progress=False, batch=4).path)
    np.testing.assert_array_equal(got["nu"], nu.astype(np.float32))
    np.testing.assert_array_equal(got["tensor"], sol[:, 0].astype(np.float32))
    assert ds["nu"].dims == ("sample", "x", "y")
    np.testing.assert_allclose(ds["x"].values, xc, rtol=1e-6)


def test_pdebench_incompressible_navier_stokes(tmp_path):
    rng = np.random.default_rng(4)
    velocity, force = rng.random((3, 4, 8, 8, 2)), rng.random((3, 8, 8, 2))
    src = tmp_path / "ns_incom_inhom_2d_512-0.h5"
    with h5py.File(src, "w") as h5:
        h5["velocity"], h5["force"] = velocity.astype(np.float32), force.astype(np.float32)
        h5["particles"] = rng.random((3, 4, 8, 8, 1)).astype(np.float32)
        h5["t"] = np.tile(np.linspace(0, 1.5, 4, dtype=np.float32), (3, 1))
    got, ds = _fields(import_file(src, tmp_path / "ns.h5", progress=False).path)
    np.testing.assert_array_equal(got["velocity_0"], velocity[:, 0].astype(np.float32))
    np.testing.assert_array_equal(got["velocity"], velocity[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(got["force"], force.astype(np.float32))
    assert ds["velocity"].dims == ("sample", "t", "x", "y", "channel")
    np.testing.assert_allclose(ds["t"].values, [0.5, 1.0, 1.5])
    x, y = open_dataset(tmp_path / "ns.h5")[0]
    assert x.shape == (4, 8, 8) and y.shape == (2, 3, 8, 8)


def test_pdebench_shallow_water_per_sample_groups(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.random((3, 5, 8, 8, 1)).astype(np.float32)
    src = tmp_path / "2D_rdb_NA_NA.h5"
    with h5py.File(src, "w") as h5:
        for i in range(3):
            g = h5.create_group(f"{i:04d}")
            g["data"] = data[i]
            g["grid/x"] = g["grid/y"] = np.linspace(-2.5, 2.5, 8, dtype=np.float32)
            g["grid/t"] = np.linspace(0, 1, 5, dtype=np.float32)
    got, ds = _fields(import_file(src, tmp_path / "sw.h5", progress=False, batch=2).path)
    np.testing.assert_array_equal(got["data_0"], data[:, 0, ..., 0])
    np.testing.assert_array_equal(got["data"], data[:, 1:, ..., 0])
    np.testing.assert_allclose(ds["x"].values, np.linspace(-2.5, 2.5, 8), rtol=1e-6)
    np.testing.assert_allclose(ds["t"].values, [0.25, 0.5, 0.75, 1.0])


def test_the_well_layout(tmp_path):
    rng = np.random.default_rng(6)
    n, T, nx, ny = 3, 4, 8, 6
    density, velocity = rng.random((n, T, nx, ny)), rng.random((n, T, nx, ny, 2))
    stress, mask = rng.random((n, T, nx, ny, 2, 2)), rng.random((nx, ny))
    src = tmp_path / "shear_flow.hdf5"
    with h5py.File(src, "w") as h5:
        h5.attrs["dataset_name"] = "shear_flow"
        dims = h5.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        dims["time"] = np.linspace(0, 3, T)
        dims["x"], dims["y"] = np.arange(nx) / nx, np.arange(ny) / ny
        for name in ("time", "x", "y"):
            dims[name].attrs["sample_varying"] = False
        for dim in ("x", "y"):
            bc = h5.create_group(f"boundary_conditions/{dim}_periodic")
            bc.attrs["bc_type"], bc.attrs["associated_dims"] = "PERIODIC", [dim]
        for group, name, arr, timed, samples in (("t0_fields", "density", density, True, True),
                                                 ("t0_fields", "mask", mask, False, False),
                                                 ("t1_fields", "velocity", velocity, True, True),
                                                 ("t2_fields", "stress", stress, True, True)):
            ds = h5.create_dataset(f"{group}/{name}", data=arr)
            ds.attrs["time_varying"], ds.attrs["sample_varying"] = timed, samples
    assert detect(src) == "the-well"
    result = import_file(src, tmp_path / "w.h5", progress=False, batch=2)
    got, ds = _fields(result.path)
    np.testing.assert_array_equal(got["density_0"], density[:, 0].astype(np.float32))
    np.testing.assert_array_equal(got["density"], density[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(got["velocity"], velocity[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(got["stress"], stress[:, 1:].reshape(n, T - 1, nx, ny, 4).astype(np.float32))
    np.testing.assert_array_equal(got["mask"], np.broadcast_to(mask, (n, nx, ny)).astype(np.float32))
    assert ds["velocity"].dims == ("sample", "t", "x", "y", "channel")
    assert ds["stress"].dims == ("sample", "t", "x", "y", "stress_channel")
    assert result.provenance["boundary_conditions"] == {"x": "PERIODIC", "y": "PERIODIC"}
    assert json.loads(ds.attrs["problem_params"])["geometry"] == "periodic"
    data = open_dataset(result.path)
    assert data.in_channels == 1 + 1 + 2 + 4 and data.out_channels == 1 + 2 + 4


def test_npz_subsample_and_grid(tmp_path):
    a, u = _arrays(7)
    src = tmp_path / "data.npz"
    np.savez(src, a=a, u=u)
    assert detect(src) == "npz"
    result = import_file(src, tmp_path / "n.h5", subsample=2, grid=parse_grid("x=0:2,y=-1:1"), progress=False)
    got, ds = _fields(result.path)
    np.testing.assert_array_equal(got["a"], a[:, ::2, ::2].astype(np.float32))
    np.testing.assert_array_equal(ds["x"].values, np.linspace(0, 2, 5))
    np.testing.assert_array_equal(ds["y"].values, np.linspace(-1, 1, 5))
    assert any(t.startswith("subsample 2") for t in result.provenance["transformations"])
    assert parse_grid("0:1") == (0.0, 1.0)


# --- from_arrays and the solver check --------------------------------------------------------------------
def test_from_arrays_names_grid_units(tmp_path):
    a, u = _arrays(8)
    path = from_arrays({"k": a}, {"p": np.stack([u, -u], axis=-1)}, path=tmp_path / "f.h5",
                       grid={"y": np.linspace(0, 3, S), "x": (0.0, 1.0)}, units={"k": "m2", "p": "Pa", "x": "m"})
    got, ds = _fields(path)
    assert ds["p"].dims == ("sample", "y", "x", "channel") and ds["p"].attrs["units"] == "Pa"
    np.testing.assert_array_equal(ds["y"].values, np.linspace(0, 3, S))
    assert ds["x"].attrs["units"] == "m"
    assert json.loads(ds.attrs["provenance"])["format"] == "arrays"
    with pytest.raises(ValueError, match="do not pair"):
        from_arrays(a, u[:3], path=tmp_path / "g.h5")
    assert not (tmp_path / "g.h5").exists()


def _darcy_mat(tmp_path, scale=1.0):
    p = get("darcy", resolution=16)
    a = p.sample_inputs(3, seed=1)
    src = tmp_path / f"darcy{scale}.mat"
    scipy.io.savemat(src, {"coeff": a, "sol": scale * p.solve(a)})
    return src


def test_as_darcy_checks_the_solver(tmp_path):
    src = _darcy_mat(tmp_path)
    result = import_file(src, tmp_path / "d.h5", as_problem="darcy", params={"resolution": 16}, progress=False)
    assert result.problem == "darcy" and result.discrepancy["max_relative_l2"] < 1e-5
    data = open_dataset(result.path)
    assert data.problem.name == "darcy" and data.attrs["provenance"]["check"]["problem"] == "darcy"
    assert "checked    darcy's solver on 3 samples" in describe(result.path)


def test_as_darcy_refuses_data_that_disagree(tmp_path):
    src = _darcy_mat(tmp_path, scale=2.0)
    out = tmp_path / "d.h5"
    with pytest.raises(ValueError, match=r"--as darcy: the sciops solver disagrees with the data: relative L2 0\.5"):
        import_file(src, out, as_problem="darcy", params={"resolution": 16}, progress=False)
    assert not out.exists() and not partial_path(out).exists()
    with pytest.raises(ValueError, match=r"shape \(16, 16\).*takes 'a' of shape \(32, 32\)"):
        import_file(src, out, as_problem="darcy", params={"resolution": 32}, progress=False)
    result = import_file(src, out, as_problem="darcy", params={"resolution": 16}, force=True, progress=False)
    assert result.discrepancy["forced"] and "(forced)" in result.message


# --- bad input -----------------------------------------------------------------------------------------
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path):
    a, u = _arrays(9)
    out = tmp_path / "o.h5"
    np.savez(tmp_path / "counts.npz", a=a, u=u[:4])
    np.savez(tmp_path / "grids.npz", a=a, u=u[:, :5, :5])
    np.savez(tmp_path / "keys.npz", coefficient=a, solution=u)
    (tmp_path / "notes.txt").write_text("not data\n")
    cases = [(tmp_path / "counts.npz", {}, "do not pair: 'a' holds 6 samples, 'u' 4"),
             (tmp_path / "grids.npz", {}, "do not pair"),
             (tmp_path / "keys.npz", {}, "the keys there are 'coefficient', 'solution'"),
             (tmp_path / "keys.npz", {"input_key": "coefficient", "output_key": "sol"},
              "no key 'sol'; the keys there are 'coefficient', 'solution'"),
             (tmp_path / "notes.txt", {}, "unknown format.*" + ", ".join(FORMATS)),
             (tmp_path / "keys.npz", {"format": "hdf4"}, "unknown format 'hdf4'; expected one of mat, pt")]
    for src, kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            import_file(src, out, progress=False, **kwargs)
        assert "\n" not in str(err.value)
        assert not out.exists() and not partial_path(out).exists()


def test_nan_found_while_streaming_removes_the_partial(tmp_path):
    a, u = _arrays(10)
    u[5, 2, 3] = np.nan
    scipy.io.savemat(tmp_path / "nan.mat", {"coeff": a, "sol": u})
    out = tmp_path / "o.h5"
    with pytest.raises(ValueError, match="'sol' sample 5 contains NaN or Inf; nothing written"):
        import_file(tmp_path / "nan.mat", out, batch=2, progress=False)
    assert not out.exists() and not partial_path(out).exists()


# --- resume ---------------------------------------------------------------------------------------------
def test_interrupted_import_resumes_to_the_same_file(tmp_path, monkeypatch):
    a, u = _arrays(11, n=7)
    src = tmp_path / "big.mat"
    scipy.io.savemat(src, {"coeff": a, "sol": u})
    whole = import_file(src, tmp_path / "whole.h5", batch=2, progress=False).path
    out = tmp_path / "resumed.h5"
    read = importing._finite

    def interrupted(source, name, lo, hi):
        if lo >= 4:
            raise KeyboardInterrupt
        return read(source, name, lo, hi)
    monkeypatch.setattr(importing, "_finite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_file(src, out, batch=2, progress=False)
    monkeypatch.setattr(importing, "_finite", read)
    assert partial_path(out).exists() and not out.exists()
    assert "sciops import" in describe(partial_path(out)) and "--resume" in describe(partial_path(out))
    with pytest.raises(ValueError, match="resume=True"):
        import_file(src, out, batch=2, progress=False)
    original = src.read_bytes()
    scipy.io.savemat(src, {"coeff": a + 1, "sol": u})  # the source changed since: not mixed in
    with pytest.raises(ValueError, match="cannot resume .* provenance.sha256="):
        import_file(src, out, batch=2, resume=True, progress=False)
    src.write_bytes(original)
    import_file(src, out, batch=3, resume=True, progress=False)
    with h5py.File(whole) as h_whole, h5py.File(out) as h_out:
        for group in ("fields", "checksums"):
            for name in h_whole[group]:
                np.testing.assert_array_equal(h_whole[group][name][()], h_out[group][name][()])
