"""Fault injection for every dataset writer: full disks, kills, damaged files and concurrent writers.

One invariant throughout: no file that a sciops reader accepts as complete holds data that differ
from an uninterrupted run's, and every unfinished file that is kept resumes to exactly that run.

Full disks are real: small tmpfs mounts (Linux, as root, which CI is), sized so that the disk runs
out at every stage of the writer (creating the file, the first batch, mid-run, the last batch, the
verification before the rename). Where mounting is not allowed the tests are skipped with the reason.
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

from sciops.datasets import generate, open_dataset, open_xarray, partial_path
from sciops.datasets.checksums import CorruptDatasetError
from sciops.datasets.info import describe
from sciops.datasets.resources import WriteError
from sciops.datasets.sharded import generate_sharded, merge
from sciops.problems import get

N, SEED, RESOLUTION = 200, 7, 32
# disk sizes in KiB: the reserve alone does not fit below ~400; the whole file fits from ~1000
DISK_KIB = (40, 300, 400, 420, 440, 470, 500, 540, 580, 640, 700, 760, 820, 900, 1000, 1400)


@pytest.fixture(scope="module")
def problem():
    return get("darcy", resolution=RESOLUTION)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, problem):
    """The uninterrupted run every faulty one is compared with."""
    return generate(problem, N, tmp_path_factory.mktemp("ref") / "ref.h5", seed=SEED, progress=False)


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kib)``: a fresh tmpfs of that size; unmounted afterwards."""
    mounts = []

    def mount(kib: int):
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("a full disk is simulated with a tmpfs mount, which needs root on Linux")
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fields(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as h5:
        return {name: ds[()] for name, ds in h5["fields"].items()}


def _same_data(path, reference) -> None:
    got, want = _fields(path), _fields(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        assert np.array_equal(got[name].view(np.uint32), want[name].view(np.uint32)), name


def _check_invariant(folder, output, reference, problem, roomy) -> str:
    """What the faulty run left in ``folder``: a complete file equal to the reference, a .partial
    that resumes to it, or nothing; never anything else. Returns which."""
    partial = partial_path(output)
    left = sorted(p.name for p in folder.iterdir())
    assert set(left) <= {output.name, partial.name}, f"unexpected files left: {left}"
    if output.exists():
        assert not partial.exists()
        with open_dataset(output) as ds:  # the readers accept it: it must be the reference
            assert len(ds) == N
        _same_data(output, reference)
        return "complete"
    if partial.exists():
        copy = roomy / output.name
        shutil.copy2(partial, partial_path(copy))
        generate(problem, N, copy, seed=SEED, resume=True, progress=False)
        _same_data(copy, reference)
        return "resumed"
    return "nothing"


@pytest.mark.slow
@pytest.mark.parametrize("kib", DISK_KIB)
def test_full_disk_during_generate(kib, small_disk, tmp_path, problem, reference):
    disk = small_disk(kib)
    output = disk / "g.h5"
    try:
        generate(problem, N, output, seed=SEED, progress=False, force=True)
        assert kib >= 900, "a run that cannot fit reported success"
    except WriteError as exc:
        assert "no space left on device" in str(exc) and "\n" not in str(exc)
        assert ("kept g.h5.partial" in str(exc)) == partial_path(output).exists()
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    _check_invariant(disk, output, reference, problem, roomy)


def test_full_disk_outcomes_span_every_stage(small_disk, tmp_path, problem, reference):
    """Across the sizes the run fails before writing, keeps a resumable part, or completes."""
    seen = set()
    for kib in (300, 600, 1400):
        disk = small_disk(kib)
        try:
            generate(problem, N, disk / "g.h5", seed=SEED, progress=False, force=True)
        except WriteError:
            pass
        roomy = tmp_path / f"roomy{kib}"
        roomy.mkdir()
        seen.add(_check_invariant(disk, disk / "g.h5", reference, problem, roomy))
    assert seen == {"nothing", "resumed", "complete"}


def test_full_disk_on_the_command_line_is_one_line_and_exit_1(small_disk):
    disk = small_disk(600)
    done = subprocess.run([sys.executable, "-m", "sciops", "generate", "darcy", "-n", str(N), "-o", "g.h5",
                           "--param", f"resolution={RESOLUTION}", "--force", "-q"],
                          cwd=disk, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sciops: error: cannot write g.h5.partial: no space left")
    assert "--resume" in lines[0]


def test_the_disk_estimate_refuses_up_front(small_disk):
    disk = small_disk(300)
    done = subprocess.run([sys.executable, "-m", "sciops", "generate", "darcy", "-n", str(N), "-o", "g.h5",
                           "--param", f"resolution={RESOLUTION}", "-q"], cwd=disk, capture_output=True, text=True)
    assert done.returncode == 2
    assert "writes up to" in done.stderr and "--force" in done.stderr and "samples fit" in done.stderr
    assert not any(disk.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("kib", (300, 420, 520, 700))
def test_full_disk_during_sharded_generate(kib, small_disk, tmp_path, problem, reference):
    from sciops.datasets import sharded

    disk = small_disk(kib)
    output = disk / "g.h5"
    client, cluster = sharded._connect(1, None)
    try:
        with pytest.raises(WriteError, match="no space left on device"):
            generate_sharded(problem, N, output, seed=SEED, client=client, shard_size=50, progress=False, force=True)
    finally:
        client.close()
        cluster.close()
    assert not output.exists()
    folder = disk / "g.h5.shards"
    for shard in folder.iterdir():
        assert shard.name.endswith((".h5", ".h5.partial")), shard.name
        if shard.name.endswith(".h5"):  # a finished shard: verified, and the reference's samples
            with open_dataset(shard) as ds:
                lo = int(ds.attrs["sample_start"])
                x, y = ds.get_batch(list(range(len(ds))))
            with open_dataset(reference) as ref:
                rx, ry = ref.get_batch(list(range(lo, lo + len(ds))))
            assert np.array_equal(x.numpy(), rx.numpy()) and np.array_equal(y.numpy(), ry.numpy())
    roomy = tmp_path / "roomy"
    shutil.copytree(disk, roomy)  # resumes on a roomy disk to exactly the reference
    client, cluster = sharded._connect(1, None)
    try:
        generate_sharded(problem, N, roomy / "g.h5", seed=SEED, client=client, shard_size=50, progress=False,
                         resume=True)
    finally:
        client.close()
        cluster.close()
    _same_data(roomy / "g.h5", reference)


@pytest.mark.parametrize("kib", (40, 300, 450, 600, 800, 2400))
def test_full_disk_during_merge(kib, small_disk, reference):
    disk = small_disk(kib)
    output = disk / "m.h5"
    try:
        merge(reference, output, progress=False, force=True)
    except WriteError as exc:
        assert "no space left on device" in str(exc) and "\n" not in str(exc)
        assert not any(disk.iterdir())  # the .partial removed, nothing a reader could take
        return
    assert kib >= 800, "a merge that cannot fit reported success"
    _same_data(output, reference)
    assert sorted(p.name for p in disk.iterdir()) == ["m.h5"]


def test_merge_refuses_a_sample_that_fails_its_checksum(tmp_path, reference):
    damaged = tmp_path / "damaged.h5"
    shutil.copy2(reference, damaged)
    with h5py.File(damaged, "r+") as h5:
        h5["checksums/u"][17] ^= 1
    with pytest.raises(CorruptDatasetError, match="field 'u' of sample 17"):
        merge(damaged, tmp_path / "m.h5", progress=False)
    assert not (tmp_path / "m.h5").exists() and not partial_path(tmp_path / "m.h5").exists()


# --- damaged files ----------------------------------------------------------------------------------
def _read_everything(path):
    with open_dataset(path, in_memory=False) as ds:
        return ds.get_batch(list(range(len(ds))))


def test_bit_flips_are_refused_or_harmless(tmp_path, reference):
    """Flip single bits across the file: every reader either refuses the file in one ValueError or
    reads exactly the reference (the flip landed in unused space). Never other data."""
    want_x, want_y = _read_everything(reference)
    size = os.path.getsize(reference)
    rng = np.random.default_rng(0)
    refused = 0
    for trial, offset in enumerate(rng.integers(0, size, 60)):
        damaged = tmp_path / f"flip{trial}.h5"
        shutil.copy2(reference, damaged)
        with open(damaged, "r+b") as fh:
            fh.seek(int(offset))
            byte = fh.read(1)[0]
            fh.seek(int(offset))
            fh.write(bytes([byte ^ (1 << int(rng.integers(8)))]))
        try:
            x, y = _read_everything(damaged)
            xr = open_xarray(damaged)
            describe(damaged)
        except (ValueError, OSError, KeyError):
            refused += 1
            continue
        finally:
            damaged.unlink()
        assert np.array_equal(x.numpy(), want_x.numpy()) and np.array_equal(y.numpy(), want_y.numpy()), offset
        assert np.array_equal(xr["u"].values, want_y.numpy()[:, 0])
    assert refused >= 10  # most of the file is data: most flips must be caught


def test_a_sample_overwritten_on_disk_is_refused_by_every_reader(tmp_path, reference):
    damaged = tmp_path / "d.h5"
    shutil.copy2(reference, damaged)
    with h5py.File(damaged, "r+") as h5:
        h5["fields/a"][123] = h5["fields/a"][122]  # plausible data, wrong sample: only the checksum sees it
    for read in (lambda: open_dataset(damaged, in_memory=True), lambda: _read_everything(damaged),
                 lambda: open_xarray(damaged), lambda: describe(damaged)):
        with pytest.raises(CorruptDatasetError, match="sample 123"):
            read()


def test_truncated_files_are_refused(tmp_path, reference):
    size = os.path.getsize(reference)
    for keep in (size // 3, size // 2, size - 1):
        cut = tmp_path / f"cut{keep}.h5"
        with open(reference, "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(keep))
        with pytest.raises(ValueError):
            _read_everything(cut)


# --- kills and concurrent writers ---------------------------------------------------------------------
def _cli(*args, cwd):
    # Ctrl-C handled as a user's shell would: a suite started in the background of a non-interactive shell
    # has SIGINT ignored, and a child inherits that, so a SIGINT sent to it would be ignored too
    return subprocess.Popen([sys.executable, "-m", "sciops", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _written(partial) -> int:
    try:
        with h5py.File(partial, "r", swmr=True, locking=False) as h5:
            return int(h5.attrs["n_written"])
    except (OSError, KeyError):
        return -1


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_reference(tmp_path, problem, reference):
    rng = np.random.default_rng(1)
    output = tmp_path / "g.h5"
    args = ("generate", "darcy", "-n", str(N), "-o", "g.h5", "--seed", str(SEED), "--param",
            f"resolution={RESOLUTION}", "--batch-size", "8", "-q", "--resume")
    for kill_at in sorted(rng.integers(1, N - 8, 3)):
        child = _cli(*args, cwd=tmp_path)
        deadline = time.monotonic() + 120
        while _written(partial_path(output)) < kill_at and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        child.kill()
        child.communicate()
        assert not output.exists() or child.returncode == 0
        with pytest.raises(ValueError):
            open_dataset(partial_path(output))  # an unfinished file is never taken as complete
    done = _cli(*args, cwd=tmp_path)
    assert done.wait() == 0, done.stderr.read()
    _same_data(output, reference)


def test_a_second_writer_is_told_who_writes(tmp_path):
    args = ("generate", "darcy", "-n", "20000", "-o", "g.h5", "--param", "resolution=48", "--batch-size", "4", "-q")
    first = _cli(*args, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while _written(tmp_path / "g.h5.partial") < 4:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        for extra in ((), ("--resume",), ("--overwrite",)):
            second = _cli(*args, *extra, cwd=tmp_path)
            _, err = second.communicate()
            assert second.returncode == 2
            assert f"is being written by process {first.pid} now" in err and "interrupted" not in err
        assert first.poll() is None  # the first writer was not disturbed
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate()
    assert first.returncode == 130 and "--resume" in err, err
    text = describe(tmp_path / "g.h5.partial")
    written = int(text.split("samples    ")[1].split(" /")[0])
    assert written >= 4 and f"verified   {written} samples match their checksums" in text


# --- memory --------------------------------------------------------------------------------------------
def test_work_beyond_the_memory_limit_is_refused_within_seconds(tmp_path):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sciops", "generate", "darcy", "-n", "2", "-o", "big.h5",
                           "--param", "resolution=2049", "--param", "subsample=16"], cwd=tmp_path,
                          capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - t0 < 60
    line = done.stderr.strip()
    assert "\n" not in line and "of memory" in line and "--force" in line and "that fits" in line
    assert not any(tmp_path.iterdir())


def test_a_damaged_superblock_is_refused_at_once(tmp_path, reference):
    """A flipped bit in the superblock used to send every reader into HDF5's endless SWMR retry."""
    script = (
        "import shutil, sys\n"
        "from sciops.datasets import describe, open_dataset\n"
        "src, folder = sys.argv[1], sys.argv[2]\n"
        "for offset in range(8, 48):\n"
        "    path = f'{folder}/s{offset}.h5'\n"
        "    shutil.copy(src, path)\n"
        "    with open(path, 'r+b') as fh:\n"
        "        fh.seek(offset); b = fh.read(1)[0]; fh.seek(offset); fh.write(bytes([b ^ 4]))\n"
        "    for read in (describe, open_dataset):\n"
        "        try:\n"
        "            read(path)\n"
        "        except ValueError as exc:\n"
        "            assert '\\n' not in str(exc), exc\n"
        "        else:\n"
        "            raise SystemExit(f'offset {offset}: accepted')\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script, str(reference), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_shard_from_another_run_is_refused(tmp_path, problem):
    from sciops.datasets import sharded

    client, cluster = sharded._connect(1, None)
    try:
        for seed in (0, 5):
            generate_sharded(problem, 40, tmp_path / f"s{seed}" / "g.h5", seed=seed, client=client, shard_size=20,
                             progress=False)
    finally:
        client.close()
        cluster.close()
    swapped = tmp_path / "s0" / "g.h5.shards" / "shard-00001.h5"
    shutil.copy2(tmp_path / "s5" / "g.h5.shards" / "shard-00001.h5", swapped)
    for read in (describe, open_dataset, lambda p: merge(p, tmp_path / "m.h5", progress=False)):
        with pytest.raises(CorruptDatasetError, match="shard shard-00001.h5 holds seed=5, the index 0"):
            read(tmp_path / "s0" / "g.h5")
