"""open_dataset / SciopsDataset: values, batching, in-memory vs lazy, workers, refusals."""
from __future__ import annotations

import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sciops.datasets import IncompleteDatasetError, SciopsDataset, generate, open_dataset, partial_path


@pytest.mark.parametrize("in_memory", [True, False])
def test_items_are_channel_first_float32(darcy_file, darcy16, in_memory):
    inputs, outputs, _ = darcy16.generate(12, seed=3)
    with open_dataset(darcy_file, in_memory=in_memory) as ds:
        assert isinstance(ds, SciopsDataset) and ds.in_memory is in_memory
        assert len(ds) == ds.n_samples == 12
        x, y = ds[4]
        assert x.dtype == y.dtype == torch.float32
        assert x.shape == (1, 16, 16) and y.shape == (1, 16, 16)
        np.testing.assert_array_equal(x[0].numpy(), inputs[4])
        np.testing.assert_array_equal(y[0].numpy(), outputs[4])
        np.testing.assert_array_equal(ds[-1][1][0].numpy(), outputs[11])
        with pytest.raises(IndexError):
            ds[12]
        assert ds.input_fields == ["a"] and ds.output_fields == ["u"]
        assert ds.in_channels == 1 and ds.out_channels == 1 and ds.spatial_shape == (16, 16)


def test_metadata(darcy_file, darcy16):
    ds = open_dataset(darcy_file)
    assert ds.path == darcy_file
    assert ds.attrs["problem"] == "darcy" and ds.attrs["problem_params"] == darcy16.params
    assert ds.attrs["complete"] is True and ds.attrs["n_written"] == 12
    assert ds.attrs["solver"]["name"] == darcy16.solver_info["name"]
    assert ds.problem.name == "darcy" and ds.problem.params == darcy16.params
    assert ds.seeds.dtype == np.uint64 and len(ds.seeds) == 12
    assert ds.fields["u"].units == darcy16.fields["u"].units and ds.fields["u"].role == "output"


@pytest.mark.parametrize("in_memory", [True, False])
def test_get_batch_equals_stacked_items(darcy_file, toy_file, in_memory):
    for path in (darcy_file, toy_file):
        ds = open_dataset(path, in_memory=in_memory)
        for idx in ([3, 0, 3, 7], [2, 3, 4], [5], np.array([-1, 1]), torch.tensor([8, 0])):
            X, Y = ds.get_batch(idx)
            expect = [ds[int(i)] for i in idx]
            assert X.shape == (len(expect),) + tuple(expect[0][0].shape)
            assert torch.equal(X, torch.stack([e[0] for e in expect]))
            assert torch.equal(Y, torch.stack([e[1] for e in expect]))
            assert torch.equal(ds.get_inputs(idx), X)
        assert ds.get_inputs([]).shape == ds.get_batch([])[0].shape == (0, ds.in_channels) + ds.spatial_shape
        X, Y = ds.get_batch(slice(2, 5))
        assert torch.equal(X, torch.stack([ds[i][0] for i in range(2, 5)]))
        with pytest.raises(IndexError):
            ds.get_batch([0, 99])
        ds.close()


def test_in_memory_equals_lazy(darcy_file, toy_file):
    for path in (darcy_file, toy_file):
        mem, lazy = open_dataset(path, in_memory=True), open_dataset(path, in_memory=False)
        everything = list(range(len(mem)))
        for a, b in zip(mem.get_batch(everything), lazy.get_batch(everything)):
            assert torch.equal(a, b)
        lazy.close()


def test_auto_loads_small_files(darcy_file):
    assert open_dataset(darcy_file).in_memory is True
    with pytest.raises(ValueError, match="in_memory"):
        open_dataset(darcy_file, in_memory="yes")


def test_multi_field_and_channel_stacking(toy_file, toy_cls):
    inputs, outputs, _ = toy_cls(resolution=6).generate(9, seed=1)
    for in_memory in (True, False):
        ds = open_dataset(toy_file, in_memory=in_memory)
        assert ds.input_fields == ["k", "f"] and ds.output_fields == ["v"]
        assert ds.in_channels == 2 and ds.out_channels == 2
        x, y = ds[2]
        assert x.shape == (2, 6, 7) and y.shape == (2, 6, 7)
        np.testing.assert_array_equal(x[0].numpy(), inputs["k"][2])
        np.testing.assert_array_equal(x[1].numpy(), inputs["f"][2])
        np.testing.assert_array_equal(y.numpy(), np.moveaxis(outputs["v"][2], -1, 0))
        # split_fields undoes the stacking: each field back in its stored layout
        x, y = ds.get_batch([4, 1])
        for stacked, names, fields in ((x, ds.input_fields, inputs), (y, ds.output_fields, outputs)):
            split = ds.split_fields(stacked, names)
            assert list(split) == names
            for name in names:
                np.testing.assert_array_equal(split[name], fields[name][[4, 1]])


def test_lazy_dataset_with_dataloader_workers(darcy_file):
    lazy = open_dataset(darcy_file, in_memory=False)
    lazy[0]  # the parent has a handle open before the workers start
    mem = open_dataset(darcy_file, in_memory=True)
    loader = DataLoader(lazy, batch_size=5, shuffle=False, num_workers=2)
    xs, ys = zip(*loader)
    assert torch.equal(torch.cat(xs), mem.get_batch(range(12))[0])
    assert torch.equal(torch.cat(ys), mem.get_batch(range(12))[1])
    clone = pickle.loads(pickle.dumps(lazy))  # what spawned workers receive
    assert torch.equal(clone[3][1], mem[3][1])
    lazy.close()
    clone.close()


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        open_dataset(missing)


def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("hello, not HDF5\n")
    with pytest.raises(ValueError, match=r"notes.h5 is not a sciops dataset \(not an HDF5 file\)"):
        open_dataset(path)


def test_foreign_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["data"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"other.h5 is not a sciops dataset \(.*'sciops_schema'"):
        open_dataset(path)


def test_unsupported_schema_is_refused(tmp_path, darcy16):
    path = generate(darcy16, 2, tmp_path / "d.h5", progress=False)
    with h5py.File(path, "r+") as h5:
        h5.attrs["sciops_schema"] = 99
    with pytest.raises(ValueError, match=r"sciops_schema=99; this sciops reads schema version 1; upgrade"):
        open_dataset(path)


def test_incomplete_files_are_refused(tmp_path, toy_cls):
    path = tmp_path / "toy.h5"
    with pytest.raises(RuntimeError):
        generate(toy_cls(resolution=4, fail_at=5), 8, path, seed=2, batch_size=2, progress=False)
    partial = partial_path(path)
    with pytest.raises(IncompleteDatasetError) as info:
        open_dataset(partial)
    message = str(info.value)
    assert "incomplete" in message and "4/8 samples written" in message
    assert "sciops generate toy -n 8" in message and "--seed 2" in message and message.endswith("--resume`")
    # the same file renamed: complete is still false
    renamed = tmp_path / "renamed.h5"
    partial.rename(renamed)
    with pytest.raises(ValueError, match=r"incomplete sciops dataset \(4/8 samples written\).*--resume"):
        open_dataset(renamed)


def test_truncated_file_is_refused_at_once(tmp_path, darcy16):
    # HDF5's SWMR open (the fallback for files being written) retried a truncated file without end
    path = generate(darcy16, 2, tmp_path / "d.h5", progress=False)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    code = f"from sciops.datasets import open_dataset\nopen_dataset({str(cut)!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "cut.h5 is truncated" in run.stderr.strip().splitlines()[-1], run.stderr


def test_corrupt_data_is_an_error_naming_the_file_and_field(tmp_path, darcy16):
    path = generate(darcy16, 2, tmp_path / "d.h5", progress=False)
    with h5py.File(path, "r") as h5:
        chunk = h5["fields"]["u"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset:chunk.byte_offset + chunk.size] = bytes(chunk.size)  # zeros: not what the filters wrote
    path.write_bytes(bytes(data))
    for in_memory in (True, False):
        with pytest.raises(ValueError, match=r"d.h5: field 'u' cannot be read .*the file is corrupt"):
            open_dataset(path, in_memory=in_memory).get_batch([0, 1])
