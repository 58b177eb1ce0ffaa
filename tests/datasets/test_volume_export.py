"""Volume export for ParaView: netCDF with CF coordinates, complex split into magnitude/real/imag."""
import numpy as np
import pytest
import xarray as xr

from sciops.datasets.volume_export import write_volume


def test_write_volume_round_trip(tmp_path):
    axes = {"z": np.linspace(0.35, 0.65, 4), "y": np.linspace(-0.1, 0.1, 3), "x": np.linspace(-0.1, 0.1, 2)}
    g = np.random.default_rng(0)
    c = (g.standard_normal((4, 3, 2)) + 1j * g.standard_normal((4, 3, 2))).astype(np.complex64)
    r = g.random((4, 3, 2))
    path = write_volume(tmp_path / "recon.nc", {"kirchhoff": c, "truth": r}, axes, attrs={"problem": "radar"})
    with xr.open_dataset(path) as ds:
        assert set(ds.data_vars) == {"kirchhoff_magnitude", "kirchhoff_real", "kirchhoff_imag", "truth"}
        np.testing.assert_allclose(ds["kirchhoff_magnitude"].values, np.abs(c), rtol=1e-6)
        np.testing.assert_allclose(ds["kirchhoff_real"].values + 1j * ds["kirchhoff_imag"].values, c)
        np.testing.assert_allclose(ds["truth"].values, r.astype(np.float32))
        assert ds["truth"].dims == ("z", "y", "x") and ds["z"].attrs["units"] == "m" and ds["x"].attrs["axis"] == "X"
        np.testing.assert_array_equal(ds["z"].values, axes["z"])
        assert ds.attrs["problem"] == "radar"
    with pytest.raises(ValueError, match=r"volume 'truth' has shape \(3, 3, 2\); the axes give"):
        write_volume(tmp_path / "bad.nc", {"truth": r[:3]}, axes)
    assert not (tmp_path / "bad.nc").exists()
