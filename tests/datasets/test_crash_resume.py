"""Crash safety: a generation killed with SIGKILL and then resumed equals an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sciops.datasets import IncompleteDatasetError, describe, generate, open_dataset, partial_path
from sciops.datasets.h5io import clear_write_flags, is_hdf5, lookup3, write_flags
from sciops.problems import get, sample_seed

N, RESOLUTION, BATCH, SEED, KILL_AT = 240, 64, 8, 11, 48

CHILD = """
import sys
from sciops.datasets import generate
from sciops.problems import get
generate(get("darcy", resolution={res}), {n}, sys.argv[1], seed={seed}, batch_size={batch}, progress=False)
"""


def _n_written(partial) -> int:
    """n_written of a file another process is writing (SWMR read, no lock); -1 if not readable yet."""
    try:
        with h5py.File(partial, "r", swmr=True, locking=False) as h5:
            return int(h5.attrs["n_written"])
    except (OSError, KeyError):
        return -1


def test_lookup3_matches_hdf5_superblock_checksum(darcy_file):
    with open(darcy_file, "rb") as fh:
        block = fh.read(48)
    assert block[8] >= 2 and block[9] == 8  # superblock v2+, 8-byte offsets
    assert lookup3(block[:44]) == int.from_bytes(block[44:48], "little")
    assert write_flags(darcy_file) == 0 and clear_write_flags(darcy_file) is False
    assert is_hdf5(darcy_file)


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    path = tmp_path / "darcy.h5"
    partial = partial_path(path)
    script = CHILD.format(res=RESOLUTION, n=N, seed=SEED, batch=BATCH)
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _n_written(partial) < KILL_AT:
            assert child.poll() is None, f"generation ended before it was killed: {child.stderr.read().decode()}"
            assert time.monotonic() < deadline, "generation made no progress"
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert partial.exists() and not path.exists()

    killed_at = _n_written(partial)
    assert KILL_AT <= killed_at < N and killed_at % BATCH == 0
    assert write_flags(partial) != 0  # left "open for writing" by the killed SWMR writer
    # readers see a consistent, incomplete file
    with pytest.raises(IncompleteDatasetError, match=rf"{killed_at}/{N} samples written.*--resume"):
        open_dataset(partial)
    assert f"{killed_at} / {N} written, INCOMPLETE" in describe(partial)
    with pytest.raises(ValueError, match="pass resume=True"):
        generate(get("darcy", resolution=RESOLUTION), N, path, seed=SEED, progress=False)

    problem = get("darcy", resolution=RESOLUTION)
    generate(problem, N, path, seed=SEED, batch_size=BATCH, resume=True, progress=False)
    assert path.exists() and not partial.exists()
    reference = generate(problem, N, tmp_path / "reference.h5", seed=SEED, batch_size=BATCH, progress=False)

    with h5py.File(path, "r") as got, h5py.File(reference, "r") as ref:
        assert got.attrs["complete"] and got.attrs["n_written"] == N
        for name in ("a", "u"):
            a, b = got["fields"][name][()], ref["fields"][name][()]
            assert not np.isnan(a).any()
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
        assert np.array_equal(got["samples/seed"][()], ref["samples/seed"][()])
        assert got["samples/seed"][N - 1] == sample_seed(SEED, N - 1)
        assert np.array_equal(got["samples/index"][()], np.arange(N))
    with open_dataset(path) as ds:
        assert len(ds) == N
    assert os.path.getsize(path) < 2 * os.path.getsize(reference)


def _set_flags(path, flags):
    """Mark a file's superblock as a killed writer would leave it (flags, re-checksummed)."""
    with open(path, "r+b") as fh:
        block = bytearray(fh.read(48))
        block[11] = flags
        block[44:48] = lookup3(bytes(block[:44])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(block)


@pytest.mark.parametrize("fail_at", [0, 6])
def test_resume_after_a_simulated_swmr_crash(tmp_path, toy_cls, fail_at):
    path = tmp_path / "toy.h5"
    with pytest.raises(RuntimeError):
        generate(toy_cls(resolution=4, fail_at=fail_at), 10, path, seed=8, batch_size=3, progress=False)
    partial = partial_path(path)
    _set_flags(partial, 0x05)  # open for writing, SWMR
    with pytest.raises(OSError, match="h5clear"):
        h5py.File(partial, "r+")
    assert "INCOMPLETE" in describe(partial)  # readable in SWMR-read mode
    generate(toy_cls(resolution=4), 10, path, seed=8, batch_size=4, resume=True, progress=False)
    reference = generate(toy_cls(resolution=4), 10, tmp_path / "ref.h5", seed=8, progress=False)
    with h5py.File(path, "r") as got, h5py.File(reference, "r") as ref:
        for name in ("k", "f", "v"):
            assert np.array_equal(got["fields"][name][()], ref["fields"][name][()])


def test_partial_killed_before_its_first_sample_starts_afresh(tmp_path, darcy16):
    path = tmp_path / "d.h5"
    partial = partial_path(path)
    partial.write_bytes(b"\x89HDF\r\n\x1a\n")  # killed while HDF5 was creating it
    with pytest.raises(ValueError, match="pass resume=True"):
        generate(darcy16, 3, path, progress=False)
    generate(darcy16, 3, path, resume=True, progress=False)
    assert path.exists() and not partial.exists()

    path2 = tmp_path / "e.h5"
    with pytest.raises(RuntimeError, match="solver failed"):  # a file with attributes, no sample yet
        _fail_first_batch(darcy16, path2)
    _set_flags(partial_path(path2), 0x01)  # open for writing, not SWMR: metadata may be torn
    generate(darcy16, 3, path2, seed=0, resume=True, progress=False)
    with h5py.File(path2, "r") as h5:
        assert h5.attrs["complete"] and h5.attrs["n_written"] == 3


def _fail_first_batch(problem, path):
    class Failing(type(problem)):
        def generate(self, n, seed, start=0):
            raise RuntimeError("solver failed")

    generate(Failing(**problem.params), 3, path, progress=False)
