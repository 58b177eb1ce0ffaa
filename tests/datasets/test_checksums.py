"""Per-sample checksums: written with every sample, checked before the rename, on resume and by readers."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from sciops.datasets import describe, generate, open_dataset, partial_path
from sciops.datasets.checksums import CorruptDatasetError, sample_checksums
from sciops.datasets.h5io import commit
from sciops.problems import get


@pytest.fixture(scope="module")
def problem():
    return get("darcy", resolution=12)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, problem):
    return generate(problem, 20, tmp_path_factory.mktemp("c") / "d.h5", seed=2, batch_size=6, progress=False)


def test_every_field_has_one_checksum_per_sample(dataset):
    with h5py.File(dataset, "r") as h5:
        assert sorted(h5["checksums"]) == sorted(h5["fields"])
        for name, ds in h5["fields"].items():
            assert h5["checksums"][name].dtype == np.uint32
            assert np.array_equal(h5["checksums"][name][()], sample_checksums(ds[()]))
    assert "verified   20 samples match their checksums" in describe(dataset)


def test_a_file_from_before_checksums_is_read_as_before(tmp_path, dataset):
    old = tmp_path / "old.h5"
    shutil.copy2(dataset, old)
    with h5py.File(old, "r+") as h5:
        del h5["checksums"]
    with open_dataset(old) as ds, open_dataset(dataset) as new:
        assert np.array_equal(ds.get_batch(range(20))[1].numpy(), new.get_batch(range(20))[1].numpy())
    assert "verified   no: written before sciops stored checksums" in describe(old)


def test_commit_refuses_a_partial_whose_sample_reads_back_wrong(tmp_path, dataset):
    partial = partial_path(tmp_path / "d.h5")
    shutil.copy2(dataset, partial)
    with h5py.File(partial, "r+") as h5:
        h5["fields/u"][4] = 0.0  # a sample lost on the way to the disk
    with pytest.raises(CorruptDatasetError, match="sample 4 read back differs"):
        commit(partial, tmp_path / "d.h5")
    assert partial.exists() and not (tmp_path / "d.h5").exists()


def test_resume_writes_again_the_recorded_samples_that_do_not_verify(tmp_path, problem, dataset):
    output = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        _interrupted(problem, output, after_batches=2)
    partial = partial_path(output)
    with h5py.File(partial, "r+", locking=False) as h5:
        assert int(h5.attrs["n_written"]) == 12
        h5["fields/a"][7] = h5["fields/a"][6]  # damaged inside the recorded part
    with pytest.warns(UserWarning, match=r"samples 7\.\.11 did not read back intact"):
        generate(problem, 20, output, seed=2, batch_size=6, resume=True, progress=False)
    with h5py.File(output, "r") as got, h5py.File(dataset, "r") as want:
        for name in ("a", "u"):
            assert np.array_equal(got["fields"][name][()], want["fields"][name][()])


def _interrupted(problem, output, after_batches):
    """generate, stopped by a KeyboardInterrupt after some batches (a clean, resumable stop)."""
    import sciops.datasets.writer as writer

    real, calls = writer._write_batch, [0]

    def write_then_stop(*args, **kwargs):
        if calls[0] == after_batches:
            raise KeyboardInterrupt
        calls[0] += 1
        real(*args, **kwargs)

    writer._write_batch = write_then_stop
    try:
        generate(problem, 20, output, seed=2, batch_size=6, progress=False)
    finally:
        writer._write_batch = real


def test_resume_onto_a_corrupt_complete_file_says_so(tmp_path, problem, dataset):
    """--resume used to say "wrote" and do nothing over a complete file with damaged samples."""
    from sciops.datasets import DatasetExistsError

    damaged = tmp_path / "d.h5"
    shutil.copy2(dataset, damaged)
    with h5py.File(damaged, "r+") as h5:
        h5["fields/u"][3] = 0.0
    with pytest.raises(DatasetExistsError, match="sample 3 does not match its checksum.*--overwrite"):
        generate(problem, 20, damaged, seed=2, batch_size=6, resume=True, progress=False)
