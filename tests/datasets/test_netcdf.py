"""netCDF: ``open_xarray(...).to_netcdf``, ``export_netcdf`` (CF attributes, atomic, round trip) and
``describe`` on a .nc file."""
from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import xarray as xr

from sciops.datasets import describe, export_netcdf, from_arrays, import_file, open_dataset, open_xarray
from sciops.datasets.resources import WriteError
from sciops.datasets.schema import DatasetExistsError

ENGINES = [e for e in ("netcdf4", "h5netcdf") if e in xr.backends.list_engines()]


@pytest.mark.parametrize("engine", ENGINES)
def test_open_xarray_to_netcdf_round_trips(tmp_path, darcy_file, toy_file, engine):
    for source in (darcy_file, toy_file):
        ds = open_xarray(source)
        out = tmp_path / f"{source.stem}-{engine}.nc"
        ds.to_netcdf(out, engine=engine)
        with xr.open_dataset(out, engine=engine) as back:
            assert back.load().identical(ds)


def test_export_netcdf_cf_attributes_and_round_trip(tmp_path, darcy_file, darcy16):
    nc = export_netcdf(darcy_file, tmp_path / "d.nc")
    with xr.open_dataset(nc) as back:
        back.load()
        assert back.identical(open_xarray(darcy_file))
        assert back.attrs["Conventions"] == "CF-1.10" and back.attrs["problem"] == "darcy"
        assert json.loads(back.attrs["problem_params"]) == darcy16.params and back.attrs["complete"] == 1
        assert back["x"].attrs["axis"] == "X" and back["y"].attrs["axis"] == "Y"
        assert back["x"].attrs["units"] == "1" and back["x"].attrs["long_name"] == "x"
        assert back["u"].attrs["long_name"] == darcy16.fields["u"].description and back["u"].attrs["units"] == "1"
        assert back["seed"].dtype == np.uint64
    text = describe(nc)
    for needle in ("an export of a sciops dataset", "CF-1.10", "problem    darcy", "samples    12",
                   "u  output", "16 points in [0, 1]"):
        assert needle in text, needle
    with pytest.raises(ValueError, match="is a netCDF export of a sciops dataset, not a sciops dataset"):
        open_dataset(nc)
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        export_netcdf(darcy_file, nc)
    assert export_netcdf(darcy_file, nc, overwrite=True) == nc


def test_imported_file_exports_and_describes(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", a=rng.random((4, 8, 8)), u=rng.random((4, 8, 8)))
    h5 = import_file(tmp_path / "d.npz", tmp_path / "d.h5", progress=False).path
    nc = export_netcdf(h5, tmp_path / "d.nc")
    with xr.open_dataset(nc) as back:
        assert back.load().identical(open_xarray(h5))
        assert json.loads(back.attrs["provenance"])["format"] == "npz"
    assert "source     " in describe(nc) and "params     geometry=bounded" in describe(nc)


def test_export_failure_leaves_nothing(tmp_path, darcy_file, monkeypatch):
    def full_disk(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 231)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    with pytest.raises(WriteError, match="cannot write .*d.nc: no space left on device; nothing written"):
        export_netcdf(darcy_file, tmp_path / "d.nc")
    assert list(tmp_path.iterdir()) == []


def test_describe_names_other_netcdf_files(tmp_path):
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"temperature": (("x",), np.arange(3.0))}).to_netcdf(foreign)
    with pytest.raises(ValueError, match="is a netCDF file, not a sciops dataset .*temperature"):
        describe(foreign)
    with pytest.raises(ValueError, match="netCDF"):
        import_file(foreign, tmp_path / "o.h5", progress=False)


def test_from_arrays_file_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    h5 = from_arrays(rng.random((3, 5, 6)), rng.random((3, 4, 5, 6)), path=tmp_path / "f.h5",
                     grid={"t": [0.1, 0.2, 0.3, 0.4], "y": (0, 1), "x": (0, 2)}, geometry="periodic")
    ds = open_xarray(h5)
    assert ds["output"].dims == ("sample", "t", "y", "x") and ds["t"].attrs["axis"] == "T"
    np.testing.assert_allclose(ds["x"].values, np.arange(6) / 3)
    nc = export_netcdf(h5, tmp_path / "f.nc")
    with xr.open_dataset(nc) as back:
        assert back.load().identical(ds)
