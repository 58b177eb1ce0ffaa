"""open_xarray and describe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sciops.datasets import describe, generate, open_xarray, partial_path


def test_open_xarray_dims_coords_attrs(darcy_file, darcy16):
    ds = open_xarray(darcy_file)
    assert ds["a"].dims == ("sample", "y", "x") and ds["u"].dims == ("sample", "y", "x")
    assert ds.sizes == {"sample": 12, "y": 16, "x": 16}
    np.testing.assert_array_equal(ds["x"].values, darcy16.grid["x"])
    assert ds["x"].attrs["units"] == darcy16.grid_units["x"]
    assert ds["sample"].values.tolist() == list(range(12))
    assert ds["seed"].dims == ("sample",) and ds["seed"].dtype == np.uint64
    assert ds["u"].attrs["role"] == "output" and ds["a"].attrs["units"] == darcy16.fields["a"].units
    assert ds.attrs["problem"] == "darcy" and json.loads(ds.attrs["problem_params"]) == darcy16.params
    assert ds.attrs["seed"] == 3 and ds.attrs["complete"] == 1 and ds.attrs["Conventions"] == "CF-1.10"
    inputs, outputs, _ = darcy16.generate(2, seed=3, start=5)
    np.testing.assert_array_equal(ds["u"].sel(sample=slice(5, 6)).values, outputs)
    # named selection works on the grid coordinates
    assert ds["u"].sel(x=0.0).shape == (12, 16)


def test_open_xarray_channel_field(toy_file):
    ds = open_xarray(toy_file)
    assert ds["v"].dims == ("sample", "y", "x", "channel")
    assert ds["v"].shape == (9, 6, 7, 2)


def test_open_xarray_incomplete(tmp_path, toy_cls):
    path = tmp_path / "toy.h5"
    with pytest.raises(RuntimeError):
        generate(toy_cls(resolution=4, fail_at=3), 6, path, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="incomplete"):
        open_xarray(partial_path(path))
    ds = open_xarray(partial_path(path), allow_incomplete=True)
    assert ds.sizes["sample"] == 2


def test_describe(darcy_file):
    text = describe(darcy_file)
    for needle in ("problem    darcy", "resolution=16", "seed       3", "12 / 12 written, complete",
                   "darcy-fd5", "solver ", "a  input", "u  output", "(12, 16, 16)", "float32",
                   "dims (sample, y, x)", "16 points in [0, 1]", "KiB"):
        assert needle in text, needle
    assert len(text.splitlines()) > 10


def test_describe_partial(tmp_path, toy_cls):
    path = tmp_path / "toy.h5"
    with pytest.raises(RuntimeError):
        generate(toy_cls(resolution=4, fail_at=3), 6, path, batch_size=2, progress=False)
    text = describe(partial_path(path))
    assert "2 / 6 written, INCOMPLETE" in text and "--resume" in text


def test_describe_refuses_what_open_refuses(tmp_path):
    with pytest.raises(FileNotFoundError):
        describe(tmp_path / "missing.h5")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ValueError, match="not a sciops dataset"):
        describe(tmp_path / "t.txt")
