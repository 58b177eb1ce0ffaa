"""generate(): file layout, round trip, batching, existing files, resume, errors, progress output."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import sciops
from sciops.datasets import DatasetExistsError, generate, partial_path
from sciops.datasets.h5io import WriterLock
from sciops.problems import get, sample_seed


def read_all(path):
    """Fields, sample seeds and root attributes of a file, as numpy / Python values."""
    with h5py.File(path, "r") as h5:
        fields = {k: v[()] for k, v in h5["fields"].items()}
        seeds = h5["samples/seed"][()]
        attrs = dict(h5.attrs)
    return fields, seeds, attrs


def assert_same_data(path_a, path_b):
    fa, sa, _ = read_all(path_a)
    fb, sb, _ = read_all(path_b)
    assert list(fa) == list(fb)
    for name in fa:
        assert fa[name].dtype == fb[name].dtype == np.float32
        assert np.array_equal(fa[name].view(np.uint32), fb[name].view(np.uint32)), name  # bitwise
    assert np.array_equal(sa, sb)


def test_round_trip_fields_and_attrs(darcy_file, darcy16):
    inputs, outputs, _ = darcy16.generate(12, seed=3)
    fields, seeds, attrs = read_all(darcy_file)
    np.testing.assert_array_equal(fields["a"], inputs)
    np.testing.assert_array_equal(fields["u"], outputs)
    assert seeds.dtype == np.uint64
    assert seeds.tolist() == [sample_seed(3, i) for i in range(12)]
    assert attrs["sciops_schema"] == 1
    assert attrs["problem"] == "darcy"
    assert json.loads(attrs["problem_params"]) == darcy16.params
    assert attrs["sciops_version"] == sciops.__version__
    assert attrs["seed"] == 3 and attrs["n_samples"] == 12 and attrs["n_written"] == 12
    assert bool(attrs["complete"]) is True
    assert json.loads(attrs["solver"]) == darcy16.solver_info
    assert json.loads(attrs["input_fields"]) == ["a"] and json.loads(attrs["output_fields"]) == ["u"]
    assert attrs["solve_seconds"] > 0 and attrs["wall_seconds"] >= attrs["solve_seconds"]
    assert isinstance(attrs["created"], str) and attrs["created"].startswith("20")
    assert get(attrs["problem"], **json.loads(attrs["problem_params"])).params == darcy16.params
    assert not partial_path(darcy_file).exists()


def test_layout_chunks_compression_and_field_attrs(darcy_file, darcy16):
    with h5py.File(darcy_file, "r") as h5:
        for name in ("y", "x"):
            np.testing.assert_array_equal(h5["grid"][name][()], darcy16.grid[name])
            assert h5["grid"][name].attrs["units"] == darcy16.grid_units[name]
        for name, role in (("a", "input"), ("u", "output")):
            ds = h5["fields"][name]
            assert ds.dtype == np.float32 and ds.shape == (12, 16, 16)
            # one sample per chunk: writing or reading a sample touches one chunk, so memory is
            # bounded by the batch, not by n
            assert ds.chunks == (1, 16, 16)
            assert ds.compression is not None
            assert json.loads(ds.attrs["dims"]) == ["sample", "y", "x"]
            assert ds.attrs["role"] == role
            assert ds.attrs["units"] == darcy16.fields[name].units
            assert ds.attrs["description"] == darcy16.fields[name].description
        assert h5["samples/index"][()].tolist() == list(range(12))


def test_channel_field_layout(toy_file, toy_cls):
    with h5py.File(toy_file, "r") as h5:
        assert list(h5["fields"]) == ["k", "f", "v"]  # the problem's order, not alphabetical
        v = h5["fields/v"]
        assert v.shape == (9, 6, 7, 2) and v.chunks == (1, 6, 7, 2)
        assert json.loads(v.attrs["dims"]) == ["sample", "y", "x", "channel"]
        assert h5["grid/x"].attrs["units"] == "m"
    inputs, outputs, _ = toy_cls(resolution=6).generate(9, seed=1)
    fields, _, _ = read_all(toy_file)
    np.testing.assert_array_equal(fields["v"], outputs["v"])
    np.testing.assert_array_equal(fields["f"], inputs["f"])


def test_batch_size_does_not_change_the_data(tmp_path, darcy16):
    a = generate(darcy16, 10, tmp_path / "b3.h5", seed=7, batch_size=3, progress=False)
    b = generate(darcy16, 10, tmp_path / "b7.h5", seed=7, batch_size=7, progress=False)
    assert_same_data(a, b)


def test_sharded_generation_equals_serial(darcy16):
    a_all, u_all, _ = darcy16.generate(7, seed=2)
    parts = [darcy16.generate(k, seed=2, start=s) for s, k in ((0, 3), (3, 1), (4, 3))]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), a_all)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), u_all)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n_is_refused_before_any_file_is_created(tmp_path, darcy16, n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        generate(darcy16, n, tmp_path / "out.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_seed_and_batch_size_are_refused(tmp_path, darcy16):
    with pytest.raises(ValueError, match="seed"):
        generate(darcy16, 2, tmp_path / "out.h5", seed=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        generate(darcy16, 2, tmp_path / "out.h5", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="must not end in '.partial'"):
        generate(darcy16, 2, tmp_path / "out.h5.partial", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output(tmp_path, darcy16):
    path = generate(darcy16, 4, tmp_path / "d.h5", seed=1, progress=False)
    with pytest.raises(DatasetExistsError, match="exists; pass overwrite=True"):
        generate(darcy16, 4, path, seed=1, progress=False)
    with pytest.raises(ValueError, match="--overwrite"):  # a ValueError as well
        generate(darcy16, 4, path, seed=1, progress=False)
    mtime = path.stat().st_mtime_ns
    assert generate(darcy16, 4, path, seed=1, resume=True, progress=False) == path  # nothing to do
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match=r"seed=1 \(requested 2\)"):
        generate(darcy16, 4, path, seed=2, resume=True, progress=False)
    generate(darcy16, 5, path, seed=2, overwrite=True, progress=False)
    _, seeds, attrs = read_all(path)
    assert attrs["seed"] == 2 and attrs["n_samples"] == 5 and seeds[0] == sample_seed(2, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_resume_after_solver_error_equals_uninterrupted(tmp_path, toy_cls):
    path = tmp_path / "toy.h5"
    with pytest.raises(RuntimeError, match="toy solver failed"):
        generate(toy_cls(resolution=5, fail_at=7), 11, path, seed=4, batch_size=3, progress=False)
    partial = partial_path(path)
    assert partial.exists() and not path.exists()
    with h5py.File(partial, "r") as h5:  # closed cleanly at the last full batch
        assert h5.attrs["n_written"] == 6 and not h5.attrs["complete"]
        first_solve = h5.attrs["solve_seconds"]
    with pytest.raises(ValueError, match="pass resume=True"):
        generate(toy_cls(resolution=5), 11, path, seed=4, batch_size=3, progress=False)
    generate(toy_cls(resolution=5), 11, path, seed=4, batch_size=4, resume=True, progress=False)
    assert not partial.exists()
    ref = generate(toy_cls(resolution=5), 11, tmp_path / "ref.h5", seed=4, progress=False)
    assert_same_data(path, ref)
    _, _, attrs = read_all(path)
    assert attrs["n_written"] == 11 and attrs["complete"] and attrs["solve_seconds"] > first_solve


def test_resume_with_other_settings_is_refused(tmp_path, darcy16, toy_cls):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError):
        generate(toy_cls(resolution=4, fail_at=3), 6, path, seed=5, batch_size=2, progress=False)
    cases = [
        (dict(problem=toy_cls(resolution=4), n=6, seed=6), r"seed=5 \(requested 6\)"),
        (dict(problem=toy_cls(resolution=5), n=6, seed=5), r"parameter resolution=4 \(requested 5\)"),
        (dict(problem=toy_cls(resolution=4), n=7, seed=5), r"n=6 \(requested 7\)"),
        (dict(problem=darcy16, n=6, seed=5), r"problem 'toy' \(requested 'darcy'\)"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            generate(kwargs.pop("problem"), kwargs.pop("n"), path, resume=True, progress=False, **kwargs)
        assert "cannot resume" in str(info.value) and "overwrite=True" in str(info.value)
    # the refused attempts did not touch the file; overwrite starts again
    with h5py.File(partial_path(path), "r") as h5:
        assert h5.attrs["n_written"] == 2 and h5.attrs["seed"] == 5
    generate(toy_cls(resolution=5), 3, path, seed=9, overwrite=True, progress=False)
    _, _, attrs = read_all(path)
    assert attrs["seed"] == 9 and not partial_path(path).exists()


def test_resume_without_partial_just_generates(tmp_path, darcy16):
    path = generate(darcy16, 3, tmp_path / "d.h5", seed=0, resume=True, progress=False)
    assert read_all(path)[2]["complete"]


def test_partial_locked_by_another_writer_is_refused(tmp_path, darcy16):
    path = tmp_path / "d.h5"
    with WriterLock(partial_path(path)):
        with pytest.raises(ValueError, match=rf"being written by process {os.getpid()} now"):
            generate(darcy16, 3, path, resume=True, progress=False)
    generate(darcy16, 3, path, resume=True, progress=False)  # empty leftover from the lock: fine
    assert path.exists()


def test_nan_in_a_sample_names_it_and_stops(tmp_path, toy_cls):
    path = tmp_path / "toy.h5"
    with pytest.raises(ValueError, match=r"field 'v' of sample 5 \(sample seed \d+\) contains NaN or Inf"):
        generate(toy_cls(resolution=4, nan_at=5), 8, path, seed=0, batch_size=2, progress=False)
    with h5py.File(partial_path(path), "r") as h5:
        assert h5.attrs["n_written"] == 4


def test_progress_lines_when_not_a_terminal(tmp_path, darcy16, capsys):
    generate(darcy16, 10, tmp_path / "a.h5", batch_size=2, progress=None)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "a.h5: 0/10 samples"
    assert err[-1].startswith("a.h5: 10/10 samples (100%)") and err[-1].endswith("done")
    assert 3 <= len(err) <= 12
    generate(darcy16, 4, tmp_path / "b.h5", progress=False)
    assert capsys.readouterr().err == ""
