"""Training under faults: a full disk at every stage of a run, and kills inside its checkpoint writes.

The invariant: whatever a fault leaves in the run directory loads (no torn file), ``metrics.jsonl``
is never behind ``state.pt`` nor more than one epoch ahead of it, and ``--resume`` ends with the
same weights, state and metrics, bit for bit, as an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from sciops import problems
from sciops.datasets import generate
from sciops.datasets.resources import WriteError
from sciops.grid.trainer import train
from sciops.runs import storage as ckpt
from sciops.training import TrainConfig

HPARAMS = {"modes": 4, "width": 8, "layers": 2, "projection": 16}
SETTINGS = dict(epochs=4, batch_size=16, lr=1e-2, val_fraction=0.1, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(problems.get("darcy", resolution=21), 60, tmp_path_factory.mktemp("data") / "d.h5", seed=5,
                    progress=False)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("runs") / "straight"
    train("fno", data, run, hparams=HPARAMS, config=TrainConfig(**SETTINGS), progress=False)
    return run


def _history(state) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in state["history"]]


def _assert_consistent(run) -> None:
    """Every file present loads; metrics.jsonl holds state.pt's epochs or one more."""
    if (run / ckpt.CONFIG).exists():
        ckpt.load_json(run / ckpt.CONFIG)
    if (run / ckpt.WEIGHTS).exists():
        ckpt.load_tensors(run / ckpt.WEIGHTS)
    lines = (run / ckpt.METRICS).read_text().splitlines() if (run / ckpt.METRICS).exists() else []
    epochs = [json.loads(line)["epoch"] for line in lines]
    assert epochs == list(range(1, len(epochs) + 1))
    if (run / ckpt.STATE).exists():
        done = len(ckpt.load_tensors(run / ckpt.STATE)["history"])
        assert done <= len(epochs) <= done + 1


def _assert_same_run(run, straight) -> None:
    a = ckpt.load_tensors(straight / ckpt.STATE)
    b = ckpt.load_tensors(run / ckpt.STATE)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert _history(a) == _history(b)
    wa, wb = ckpt.load_tensors(straight / ckpt.WEIGHTS), ckpt.load_tensors(run / ckpt.WEIGHTS)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda text: [{k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
                          for line in text.splitlines()]
    assert strip((run / ckpt.METRICS).read_text()) == strip((straight / ckpt.METRICS).read_text())


CHILD = """
import os, signal, sys
from sciops import files
from sciops.training import TrainConfig
from sciops.grid.trainer import train
kill_at, when = int(sys.argv[3]), sys.argv[4]
calls = [0]
real_replace = os.replace
def replace(src, dst):
    calls[0] += 1
    if calls[0] == kill_at and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
    if calls[0] == kill_at and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
files.os.replace = replace
train("fno", sys.argv[1], sys.argv[2], hparams={hparams}, config=TrainConfig(**{settings}), progress=False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, when", [(2, "before"), (3, "after"), (4, "before"), (6, "after"), (7, "before")])
def test_kill_inside_a_checkpoint_write_then_resume_is_exact(kill_at, when, tmp_path, data, straight):
    """Killed at the k-th file replacement of the run (config, weights, metrics, state, ...),
    before or after it: the files stay consistent and --resume is bitwise exact."""
    run = tmp_path / "run"
    script = CHILD.format(hparams=HPARAMS, settings=SETTINGS)
    child = subprocess.run([sys.executable, "-c", script, str(data), str(run), str(kill_at), when],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr
    _assert_consistent(run)
    train("fno", data, run, hparams=HPARAMS, config=TrainConfig(**SETTINGS), resume=True, progress=False)
    _assert_same_run(run, straight)
    assert not list(run.glob(".*.tmp"))  # the killed write's temporary file is cleared by the resume


@pytest.mark.parametrize("kib", (40, 120, 200, 240, 280))
def test_full_disk_during_training(kib, tmp_path, data, straight):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root on Linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        run = disk / "run"
        with pytest.raises(WriteError) as failure:
            train("fno", data, run, hparams=HPARAMS, config=TrainConfig(**SETTINGS), progress=False)
        message = str(failure.value)
        assert message.startswith(f"cannot write {run}/") and "no space left on device" in message
        assert "\n" not in message and ("is kept" in message or "was not written" in message)
        _assert_consistent(run)
        roomy = tmp_path / "roomy"
        shutil.copytree(run, roomy)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    train("fno", data, roomy, hparams=HPARAMS, config=TrainConfig(**SETTINGS), resume=True, progress=False)
    _assert_same_run(roomy, straight)


def test_full_disk_on_the_command_line(tmp_path, data, monkeypatch, capsys):
    """torch.save on a full disk says "unexpected pos"; the user reads the path and the cause."""
    from sciops.cli import main

    real_write = ckpt.atomic_write

    def full(path, write):
        if path.name == ckpt.STATE:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, write)

    monkeypatch.setattr(ckpt, "atomic_write", full)
    code = main(["train", "fno", "--data", str(data), "-o", str(tmp_path / "run"), "--epochs", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(f"sciops: error: cannot write {tmp_path / 'run'}") and "\n" not in err
    assert "no space left on device" in err


def test_a_pickled_object_is_refused_without_unsafe_advice(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "weights.pt"
    torch.save({"w": Payload()}, path)
    with pytest.raises(ValueError) as refused:
        ckpt.load_tensors(path)
    message = str(refused.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert "weights_only" not in message and "False" not in message and len(message) < 250


def test_evaluate_says_when_a_run_has_not_finished(tmp_path, straight, capsys):
    from sciops.cli import main

    run = tmp_path / "unfinished"
    shutil.copytree(straight, run)
    config = ckpt.load_json(run / ckpt.CONFIG)
    del config["history"]  # as written at the end of the first epoch
    ckpt.save_json(run / ckpt.CONFIG, config)
    assert main(["evaluate", str(run), "--fresh", "2"]) == 0
    assert "has not finished" in capsys.readouterr().err
    assert main(["evaluate", str(straight), "--fresh", "2"]) == 0
    assert "has not finished" not in capsys.readouterr().err
