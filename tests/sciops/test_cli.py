"""The sciops command line: the issue's user journey, exit codes and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import pytest

from sciops.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_info_train_evaluate(tmp_path, capsys):
    data, run_dir, png = tmp_path / "d.h5", tmp_path / "runs" / "fno", tmp_path / "eval.png"
    code, out, _ = run(capsys, "generate", "darcy", "-n", "40", "-o", str(data), "--param", "resolution=17",
                       "--param", "coefficient=fno", "--seed", "2")
    assert code == 0 and data.is_file()
    code, out, _ = run(capsys, "info", str(data))
    assert code == 0 and "darcy" in out and "40" in out
    code, out, _ = run(capsys, "train", "fno", "--data", str(data), "-o", str(run_dir), "--epochs", "2",
                       "--set", "width=8", "--set", "modes=4", "--loss", "l2", "-q")
    assert code == 0 and "best epoch" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["operator"]["hyperparameters"]["width"] == 8 and config["training"]["loss"] == "l2"
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--fresh", "5", "--plot", str(png),
                       "--report", str(tmp_path / "r.json"))
    assert code == 0 and "speedup" in out and png.is_file()
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 5


@pytest.mark.parametrize("argv, message", [
    (["generate", "navier", "-n", "4", "-o", "x.h5"], "unknown problem 'navier'"),
    (["generate", "darcy", "-n", "4", "-o", "x.h5", "--param", "resolutin=8"], "unknown parameter 'resolutin'"),
    (["generate", "darcy", "-n", "4", "-o", "x.h5", "--param", "resolution=2"], "resolution=2 is out of range"),
    (["generate", "darcy", "-n", "4", "-o", "x.h5", "--param", "coefficient=gauss"], "one of fno, multiphase, lognormal"),
    (["generate", "darcy", "-n", "4", "-o", "x.h5", "--param", "resolution"], "must look like key=value"),
    (["generate", "darcy", "-n", "0", "-o", "x.h5"], "n"),
    (["info", "missing.h5"], "missing.h5"),
    (["train", "fnord", "--data", "x.h5", "-o", "r"], "unknown operator 'fnord'"),
    (["evaluate", "no_such_run"], "no_such_run"),
    (["frobnicate"], "invalid choice"),
    (["generate", "darcy", "-o", "x.h5"], "required"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("sciops")
    assert not list(tmp_path.glob("x.h5*")) and not (tmp_path / "r").exists()  # nothing half-written


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import errno
    import os

    afile = tmp_path / "afile"
    afile.write_text("")
    (tmp_path / "out.h5").mkdir()
    cases = [
        (["generate", "darcy", "-n", "2", "-o", str(afile / "x.h5")], f"--output {afile / 'x.h5'}: {afile} is not a directory"),
        (["evaluate", "no_such_run", "--plot", str(afile / "p.png")], f"--plot {afile / 'p.png'}: {afile} is not a directory"),
        (["generate", "darcy", "-n", "2", "-o", str(tmp_path / "out.h5"), "--overwrite"],
         "out.h5 is a directory; expected a file name for the dataset"),
        (["evaluate", "no_such_run", "--report", str(tmp_path / "out.h5")], "is a directory; expected a file name"),
        (["train", "fno", "--data", "no.h5", "-o", str(afile)], f"-o {afile} is a file; expected a run directory"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # a place that refuses new files (os.access says yes to root even there): refused up front, exit 1
    if os.path.isdir("/proc/self"):
        for argv in (["generate", "darcy", "-n", "2", "-o", "/proc/x.h5"],
                     ["evaluate", "no_such_run", "--report", "/proc/p.md"]):
            code, _, err = run(capsys, *argv)
            assert code == 1 and err.startswith(f"sciops: error: cannot write {argv[-1]}: cannot create a file in "
                                                f"/proc") and len(err.strip().splitlines()) == 1, err
    # a disk that fills up or turns read-only mid-run: one line naming the path and the cause, exit 1
    for code_, cause in ((errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file system")):
        def fail(args, code_=code_):
            raise OSError(code_, os.strerror(code_), str(tmp_path / "x.h5"))
        monkeypatch.setattr("sciops.cli.cmd_generate", fail)
        code, _, err = run(capsys, "generate", "darcy", "-n", "2", "-o", str(tmp_path / "x.h5"))
        assert code == 1 and err.strip() == f"sciops: error: cannot write {tmp_path / 'x.h5'}: {cause}"
    assert not list(tmp_path.glob("x.h5*"))


def test_non_sciops_file(tmp_path, capsys):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1, 2, 3]
    code, _, err = run(capsys, "info", str(path))
    assert code == 2 and "not a sciops dataset" in err and len(err.strip().splitlines()) == 1


def test_a_reader_that_leaves_early_is_no_error():
    # `sciops problems | head`: the pipe closes before sciops writes
    proc = subprocess.Popen([sys.executable, "-m", "sciops", "problems"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() == 0 and "Traceback" not in err, err


def test_problems_lists_parameters(capsys):
    code, out, _ = run(capsys, "problems")
    assert code == 0 and "darcy" in out and "resolution" in out and "harmonic" in out


def test_help_on_every_verb():
    for verb in ("problems", "generate", "info", "train", "evaluate", "demo"):
        result = subprocess.run([sys.executable, "-m", "sciops", verb, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: sciops" in result.stdout, verb


def test_quick_demo(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--quick", "-o", str(tmp_path / "demo"), "-q")
    assert code == 0 and "speedup" in out
    for name in ("report.md", "report.json", "figure.png", "darcy.h5", "run/weights.pt"):
        assert (tmp_path / "demo" / name).is_file(), name
    # the full demo into the quick one's folder: refused at once, with advice that demo can follow
    code, _, err = run(capsys, "demo", "-o", str(tmp_path / "demo"), "-q")
    assert code == 2 and "holds the data of another demo" in err and "--overwrite" not in err
