"""Sharded generation on a Dask LocalCluster: equality with serial generation, readers, resume, merge, errors.

One LocalCluster of 2 single-threaded worker processes (as ``--workers 2`` starts) is shared by the
module; the kill test runs ``sciops generate --workers 1`` in its own process group and kills it all.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sciops.cli import main
from sciops.datasets import describe, generate, open_dataset, open_xarray, partial_path, sharded
from sciops.datasets.sharded import SINGLE_THREAD_ENV, generate_sharded, merge, shard_dir
from sciops.problems import get, sample_seed

N, SEED, SHARD = 23, 5, 5  # 5 shards: 4 of 5 samples and one of 3
VOLATILE = {"created", "solve_seconds", "wall_seconds", "sciops_version", "shards"}


@pytest.fixture(scope="module")
def client():
    """The LocalCluster that `--workers 2` starts (2 single-threaded worker processes)."""
    c, cluster = sharded._connect(2, None)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def problem():
    return get("darcy", resolution=16)


@pytest.fixture(scope="module")
def serial(tmp_path_factory, problem):
    return generate(problem, N, tmp_path_factory.mktemp("serial") / "serial.h5", seed=SEED, batch_size=4,
                    progress=False)


@pytest.fixture(scope="module")
def index(tmp_path_factory, problem, client):
    """A sharded dataset made by the 2-worker cluster; tests that change it work on a copy."""
    assert len(client.scheduler_info()["workers"]) == 2
    return generate_sharded(problem, N, tmp_path_factory.mktemp("sharded") / "darcy.h5", seed=SEED, client=client,
                            shard_size=SHARD, progress=False)


def _copy(index, dest):
    shutil.copy2(index, dest / index.name)
    shutil.copytree(shard_dir(index), shard_dir(dest / index.name))
    return dest / index.name


def _attrs(h5):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in h5.attrs.items() if k not in VOLATILE}


def assert_same_dataset(path, reference):
    with h5py.File(path, "r") as got, h5py.File(reference, "r") as ref:
        assert _attrs(got) == _attrs(ref)
        assert sorted(got["fields"]) == sorted(ref["fields"]) == ["a", "u"]
        for name in ref["fields"]:
            np.testing.assert_array_equal(got["fields"][name][:], ref["fields"][name][:])
            assert dict(got["fields"][name].attrs) == dict(ref["fields"][name].attrs)
        for name in ("seed", "index"):
            np.testing.assert_array_equal(got["samples"][name][:], ref["samples"][name][:])
        for name in ref["grid"]:
            np.testing.assert_array_equal(got["grid"][name][:], ref["grid"][name][:])
            assert dict(got["grid"][name].attrs) == dict(ref["grid"][name].attrs)


def _wait_group_dead(pgid, timeout=20.0):
    """Wait until every process of the group has exited (zombies count as gone: their locks are free)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for stat in os.listdir("/proc"):
            if stat.isdigit():
                try:
                    fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == pgid and fields[0] != "Z":
                    alive.append(stat)
        if not alive:
            return
        time.sleep(0.01)
    raise AssertionError(f"processes {alive} of group {pgid} survived SIGKILL")


def _mtimes(folder):
    return {f.name: f.stat().st_mtime_ns for f in sorted(folder.iterdir())}


def test_two_workers_equal_serial_field_by_field(index, serial):
    assert_same_dataset(index, serial)
    with h5py.File(index, "r") as h5:
        assert h5["fields/a"].is_virtual and h5["fields/u"].is_virtual and h5["samples/seed"].is_virtual
        np.testing.assert_array_equal(h5["samples/seed"][:], [sample_seed(SEED, i) for i in range(N)])
        assert h5.attrs["n_samples"] == h5.attrs["n_written"] == N and h5.attrs["complete"]
    files = sorted(p.name for p in shard_dir(index).iterdir())
    assert files == [f"shard-{i:05d}.h5" for i in range(5)]  # no .partial left behind
    with h5py.File(shard_dir(index) / "shard-00004.h5", "r") as h5:
        assert h5.attrs["sample_start"] == 20 and h5.attrs["n_samples"] == 3


def test_readers_see_one_dataset(index, serial, tmp_path):
    ds, ref = open_dataset(index), open_dataset(serial)
    assert len(ds) == N
    for a, b in zip(ds.get_batch(range(N)), ref.get_batch(range(N))):
        assert a.equal(b)
    lazy = open_dataset(index, in_memory=False)
    assert lazy[17][1].equal(ref[17][1])
    xr_got, xr_ref = open_xarray(index), open_xarray(serial)
    assert xr_got["u"].dims == ("sample", "y", "x")
    np.testing.assert_array_equal(xr_got["u"].values, xr_ref["u"].values)
    np.testing.assert_array_equal(xr_got["seed"].values, xr_ref["seed"].values)
    shard = open_xarray(sorted(shard_dir(index).glob("shard-*.h5"))[1])  # one shard alone: its own samples
    chosen = xr_ref.sel(sample=shard["sample"].values)
    np.testing.assert_array_equal(shard["seed"].values, chosen["seed"].values)
    np.testing.assert_array_equal(shard["u"].values, chosen["u"].values)
    assert shard["sample"].values[0] > 0
    text = describe(index)
    assert f"{N} / {N} written, complete" in text and "virtual index over 5 shards in darcy.h5.shards/" in text
    # index and shard folder move together: the virtual sources are relative paths
    moved = _copy(index, tmp_path)
    assert open_dataset(moved).get_batch([0, 22])[1].equal(ref.get_batch([0, 22])[1])
    shutil.rmtree(shard_dir(moved))
    with pytest.raises(ValueError, match="shard darcy.h5.shards/shard-00000.h5 is missing"):
        open_dataset(moved)


def test_resume_redoes_only_missing_and_partial_shards(index, serial, problem, client, tmp_path):
    path = _copy(index, tmp_path)
    folder = shard_dir(path)
    path.unlink()  # as if the driver died before writing the index
    (folder / "shard-00002.h5").unlink()  # never finished
    (folder / "shard-00003.h5").unlink()

    class Failing(type(problem)):  # dies after its first batch, like a worker killed mid-shard
        def generate(self, n, seed, start=0):
            if start >= 17:
                raise RuntimeError("killed")
            return super().generate(n, seed, start)

    with pytest.raises(RuntimeError, match="killed"):
        generate(Failing(resolution=16), 5, folder / "shard-00003.h5", seed=SEED, start=15, batch_size=2,
                 progress=False)
    with h5py.File(folder / "shard-00003.h5.partial", "r", locking=False) as h5:
        assert h5.attrs["n_written"] == 2 and not h5.attrs["complete"]
    time.sleep(0.01)
    before = _mtimes(folder)

    with pytest.raises(ValueError, match=r"holds 4 shard file\(s\) from an earlier run; pass resume=True"):
        generate_sharded(problem, N, path, seed=SEED, client=client, shard_size=SHARD, progress=False)
    assert _mtimes(folder) == before and not path.exists()

    generate_sharded(problem, N, path, seed=SEED, client=client, shard_size=SHARD, resume=True, progress=False)
    after = _mtimes(folder)
    assert sorted(after) == [f"shard-{i:05d}.h5" for i in range(5)]
    for name in ("shard-00000.h5", "shard-00001.h5", "shard-00004.h5"):
        assert after[name] == before[name], f"{name} was rewritten"
    assert_same_dataset(path, serial)

    # resume on a finished dataset does no work and rewrites nothing but the index
    generate_sharded(problem, N, path, seed=SEED, client=client, shard_size=SHARD, resume=True, progress=False)
    assert _mtimes(folder) == after
    # a shard lost after the index was written: readers refuse the index, resume regenerates that shard only
    (folder / "shard-00001.h5").unlink()
    with pytest.raises(ValueError, match="shard darcy.h5.shards/shard-00001.h5 is missing"):
        open_dataset(path)
    generate_sharded(problem, N, path, seed=SEED, client=client, shard_size=SHARD, resume=True, progress=False)
    again = _mtimes(folder)
    assert {k for k in after if again[k] != after[k]} == {"shard-00001.h5"}
    assert_same_dataset(path, serial)


@pytest.mark.slow
def test_killed_run_keeps_finished_shards(problem, client, tmp_path):
    """SIGKILL to `sciops generate --workers 1` and its worker processes mid-run, then --resume."""
    n, shard = 40, 4
    path = tmp_path / "killed.h5"
    folder = shard_dir(path)
    cmd = [sys.executable, "-m", "sciops", "generate", "darcy", "-n", str(n), "-o", str(path), "--seed", "2",
           "--param", "resolution=48", "--workers", "1", "--shard-size", str(shard), "-q"]
    child = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, env={**os.environ, **SINGLE_THREAD_ENV})
    try:
        deadline = time.monotonic() + 120
        while not (folder / "shard-00002.h5").exists():
            assert child.poll() is None, f"generation ended before it was killed: {child.stderr.read().decode()}"
            assert time.monotonic() < deadline, "generation made no progress"
            time.sleep(0.005)
        os.killpg(child.pid, signal.SIGKILL)  # the driver, its nanny and its worker process
    finally:
        child.wait()
        child.stderr.close()
    _wait_group_dead(child.pid)  # the worker process is a grandchild; its flock goes when it is gone
    assert not path.exists()
    finished = {f.name: f.stat().st_mtime_ns for f in folder.iterdir() if f.name.endswith(".h5")}
    assert {"shard-00000.h5", "shard-00001.h5", "shard-00002.h5"} <= set(finished) and len(finished) < n // shard

    big = get("darcy", resolution=48)
    generate_sharded(big, n, path, seed=2, client=client, shard_size=shard, resume=True, progress=False)
    for name, mtime in finished.items():
        assert (folder / name).stat().st_mtime_ns == mtime, f"{name} was rewritten"
    reference = generate(big, n, tmp_path / "reference.h5", seed=2, progress=False)
    assert_same_dataset(path, reference)


def test_merge_equals_serial(index, serial, tmp_path):
    out = merge(index, tmp_path / "merged.h5", progress=False)
    assert_same_dataset(out, serial)
    with h5py.File(out, "r") as got, h5py.File(serial, "r") as ref:
        assert "shards" not in got.attrs
        for name in ("a", "u"):
            ds = got["fields"][name]
            assert not ds.is_virtual and ds.chunks == ref["fields"][name].chunks == (1, 16, 16)
            assert ds.compression == ref["fields"][name].compression == "gzip"
    assert not (tmp_path / "merged.h5.partial").exists()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        merge(index, out, progress=False)
    assert main(["merge", str(index), "-o", str(tmp_path / "cli.h5"), "-q"]) == 0
    assert_same_dataset(tmp_path / "cli.h5", serial)


@pytest.mark.parametrize("change, message", [
    (dict(seed=SEED + 1), r"shard-00000.h5 belongs to another dataset \(seed=5 \(requested 6\)\)"),
    (dict(params=dict(resolution=16, coefficient="lognormal")), r"belongs to another dataset \(parameter coefficient"),
    (dict(shard_size=SHARD + 1), r"holds samples 0..4 but this layout expects samples 0..5"),
    (dict(n=N + 30), r"shard-00004.h5 holds samples 20..22 but this layout expects samples 20..24"),
])
def test_foreign_shards_refused_before_any_work(index, tmp_path, change, message):
    path = _copy(index, tmp_path)
    path.unlink()
    folder = shard_dir(path)
    before = _mtimes(folder)
    problem = get("darcy", **change.get("params", dict(resolution=16)))
    # an unreachable scheduler: the shard check must come first, before any connection is tried
    with pytest.raises(ValueError, match=message):
        generate_sharded(problem, change.get("n", N), path, seed=change.get("seed", SEED),
                         scheduler="tcp://127.0.0.1:9", shard_size=change.get("shard_size", SHARD), resume=True,
                         progress=False)
    assert _mtimes(folder) == before and not path.exists()


def _cli_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sharded, "CONNECT_TIMEOUT", 1.0)
    out = tmp_path / "d.h5"
    base = ["generate", "darcy", "-n", "10", "-o", str(out), "--param", "resolution=16"]
    t0 = time.monotonic()
    err = _cli_error(capsys, base + ["--scheduler", "tcp://127.0.0.1:9"])
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s" in err
    assert time.monotonic() - t0 < 30
    assert "not a Dask scheduler address" in _cli_error(capsys, base + ["--scheduler", "nonsense"])
    assert "workers (--workers) must be an integer >= 1, got 0" in _cli_error(capsys, base + ["--workers", "0"])
    assert "shard size (--shard-size) must be an integer >= 1, got 0" in \
        _cli_error(capsys, base + ["--workers", "1", "--shard-size", "0"])
    assert "--shard-size needs --workers" in _cli_error(capsys, base + ["--shard-size", "4"])
    assert main(base + ["--workers", "1", "--scheduler", "x:1"]) == 2  # a usage error (argparse)
    assert "not allowed with argument --workers" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written
    # a serial run's .partial of the same output: resume it serially, not regenerate beside it
    partial_path(out).write_bytes(b"\x89HDF")
    assert "d.h5.partial is an interrupted serial run of this output; resume it without --workers" in \
        _cli_error(capsys, base + ["--workers", "1", "--resume"])


def test_default_shard_size_depends_only_on_n(problem):
    assert sharded.default_shard_size(problem, 10) == 10
    assert sharded.default_shard_size(problem, 1000) == 32
    assert sharded.default_shard_size(problem, 100_000) == 391
    assert sharded.shard_ranges(23, 5) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]


def _thread_settings():
    import torch

    from sciops.solvers.darcy import default_workers

    return (os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), default_workers(),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"))


def test_workers_use_one_thread_each(index, client, monkeypatch):
    """No oversubscription: BLAS/OpenMP, torch and the Darcy solver's pool are 1 thread per worker;
    and no MALLOC_TRIM_THRESHOLD_ (Dask's default, which slows FFT solvers several-fold)."""
    assert set(client.run(_thread_settings).values()) == {("1", 1, 1, None)}
    monkeypatch.setenv("SCIOPS_SOLVER_THREADS", "zero")
    from sciops.solvers.darcy import default_workers

    with pytest.raises(ValueError, match="SCIOPS_SOLVER_THREADS='zero' must be an integer >= 1"):
        default_workers()


def test_cli_on_an_existing_scheduler(client, serial, tmp_path, capsys):
    """`--scheduler ADDRESS` connects to a running cluster (here the module's) and gives the same data."""
    out = tmp_path / "remote.h5"
    argv = ["generate", "darcy", "-n", str(N), "-o", str(out), "--seed", str(SEED), "--param", "resolution=16",
            "--scheduler", client.scheduler.address, "--shard-size", "7", "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    assert_same_dataset(out, serial)
    assert len(list(shard_dir(out).iterdir())) == 4
    assert main(argv) == 2 and "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    # --overwrite replaces index and shards, even those of another seed and shard size
    assert main(argv[:-3] + ["--seed", "6", "--shard-size", "10", "--overwrite", "-q"]) == 0
    assert sorted(f.name for f in shard_dir(out).iterdir()) == [f"shard-{i:05d}.h5" for i in range(3)]
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["samples/seed"][:], [sample_seed(6, i) for i in range(N)])


def test_info_on_a_partial_shard_names_the_sharded_resume(index, problem, tmp_path):
    path = _copy(index, tmp_path)
    shard = shard_dir(path) / "shard-00002.h5"
    shard.rename(shard.with_name(shard.name + ".partial"))  # a complete-looking file under the .partial name
    text = describe(shard.with_name(shard.name + ".partial"))
    assert f"sciops generate darcy -n N -o {path} --seed {SEED} --param resolution=16 --workers W --resume" in text
    assert "shard      samples 10..14 of a sharded dataset" in text
