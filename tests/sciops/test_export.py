"""sciops export RUN: every grid operator as an exported program, TorchScript and (where it has one) ONNX
file that reproduces the run's model - normalisation included - to 1e-5 on any batch size.

Nothing is trained: each run directory is written here from a run spec with small random weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sciops
from sciops.cli import main
from sciops.operators import build_normalized
from sciops.runs import storage
from sciops.runs.spec import DataSpec, FieldSpec, OperatorSpec, ProblemSpec, RunSpec
from sciops.workflows.export import FORMATS, export_run, formats_for, read_metadata

FNO = {"modes": 3, "width": 4, "layers": 1, "projection": 4}


def _op(name, cin=1, cout=1, geometry="bounded", time_steps=None, input_steps=None, **hparams):
    return OperatorSpec(name, hparams, cin, cout, 2, geometry, time_steps, input_steps)


def _stats(cin, cout):
    return {"in_mean": [0.3] * cin, "in_std": [1.7] * cin, "out_mean": [-0.2] * cout, "out_std": [2.5] * cout}


# operator -> (operator spec, problem, grid); sizes small enough for a fast export
CASES = {
    "fno": (_op("fno", padding=0.25, **FNO), "darcy", [16, 16]),
    "mgno": (_op("mgno", width=4, layers=2, levels=2, bias_grid=3), "darcy", [16, 16]),
    "unet": (_op("unet", width=4, levels=2, output="linear"), "darcy", [16, 16]),
    "t1": (_op("t1", geometry="periodic", modes=3, width=4, layers=1, resolution=16), "navier-stokes", [16, 16]),
    "fno-rollout": (_op("fno-rollout", geometry="periodic", time_steps=2, **FNO), "navier-stokes", [16, 16]),
    "fno3d": (_op("fno3d", geometry="periodic", time_steps=3, **FNO), "navier-stokes", [16, 16]),
    "st-fno": (_op("st-fno", geometry="periodic", time_steps=3, input_steps=2, **FNO), "navier-stokes", [16, 16]),
    "sfno": (_op("sfno", 3, 3, geometry="sphere", time_steps=2, grid="equiangular", modes=4, width=4, layers=1,
                 projection=4), "shallow-water", [16, 32]),
    "dgno": (_op("dgno", latent=4, width=8, layers=1, inner=1, encoder_resolution=8, encoder_channels=2,
                 centres=4), "darcy", [16, 16]),
}
CASES["specboost"] = (_op("specboost", base="/elsewhere",
                          base_config={"operator": vars(CASES["fno"][0]), "normalization": _stats(1, 1)}),
                      "darcy", [16, 16])
# what each operator's exported program keeps dynamic besides the batch (padding, a fixed spectral
# scale, cached spherical transforms or a fixed encoder grid pin the grid)
DYNAMIC_GRID = {"mgno", "unet", "fno-rollout", "fno3d", "st-fno"}


def _run(tmp_path, name) -> tuple:
    """A run directory of operator ``name`` with random weights; its spec."""
    op, problem, grid = CASES[name]
    stats = _stats(op.in_channels, op.out_channels)
    torch.manual_seed(0)
    model = build_normalized(op, stats)
    if name == "dgno":  # the physics a trained DGNO carries (lognormal darcy, forcing 1)
        model.operator.physics.copy_(torch.tensor([math.nan, math.nan, 1.0, 0.0], dtype=torch.float64))
    if name == "specboost":
        model.operator.gain.data.fill_(0.5)  # zero would hide the second stage
    inputs = ["a"] if op.in_channels == 1 else ["h"]
    spec = RunSpec(operator=op, problem=ProblemSpec(problem, {"resolution": grid[0]} if problem == "darcy" else {}),
                   fields=FieldSpec(inputs, ["u"] if op.out_channels == 1 else ["h"], {"a": "1", "u": "1"}),
                   data=DataSpec("data.h5", 0, 8, 6, 2, resolution=grid), normalization=stats)
    run_dir = tmp_path / name
    run_dir.mkdir()
    spec.save(run_dir)
    storage.save_tensors(run_dir / storage.WEIGHTS, model.state_dict())
    return run_dir, spec


def _inputs(spec, batch, grid=None, seed=0):
    op = spec.operator
    shape = (batch, op.in_channels) + ((op.input_steps,) if op.input_steps else ()) + tuple(grid or spec.data.resolution)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 1.7 + 0.3
    return x.abs() + 0.1 if op.name == "dgno" else x


def _load(path, format):
    if format == "exported-program":
        return torch.export.load(str(path)).module()
    if format == "torchscript":
        return torch.jit.load(str(path))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"inputs": x.numpy()})[0])


def _check(run_dir, spec, path, format):
    """The file reproduces the surrogate's model on a batch of 1 (training grid), and a batch of 4 on
    another grid where its metadata says the grid is dynamic (else it refuses that grid)."""
    model = sciops.load(run_dir, device="cpu").model
    exported = _load(path, format)
    meta = read_metadata(path)
    assert meta["format"] == format and meta["operator"] == spec.operator.name and meta["dynamic"]["batch"]
    assert meta["grid"] == spec.data.resolution and meta["run_spec"]["normalization"] == spec.normalization
    with torch.no_grad():  # the export itself checked batches of 2 and 3 on the training grid and another grid
        x = _inputs(spec, 1, seed=1)
        torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5 * 2.5)
        other = [n + 4 for n in spec.data.resolution]
        x = _inputs(spec, 4, other, seed=9)
        if meta["dynamic"]["grid"]:
            torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5 * 2.5)
        else:
            with pytest.raises(Exception):
                exported(x)
    return meta


@pytest.mark.parametrize("name", list(CASES))
def test_exported_program_and_torchscript_reproduce_every_operator(tmp_path, name):
    run_dir, spec = _run(tmp_path, name)
    for format in ("exported-program", "torchscript"):
        path = tmp_path / f"model{FORMATS[format]}"
        line = export_run(run_dir, path, format)
        assert line.startswith(f"wrote {path}")
        meta = _check(run_dir, spec, path, format)
        if format == "exported-program":
            assert meta["dynamic"]["grid"] == (name in DYNAMIC_GRID), meta["dynamic"]


@pytest.mark.parametrize("name", ["mgno", "unet", "dgno"])
def test_onnx_reproduces_the_operators_without_complex_layers(tmp_path, name):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    run_dir, spec = _run(tmp_path, name)
    path = tmp_path / "model.onnx"
    export_run(run_dir, path, "onnx")
    meta = _check(run_dir, spec, path, "onnx")
    assert meta["dynamic"]["grid"] == (name != "dgno")


def test_onnx_of_a_spectral_operator_is_refused_naming_the_formats_that_work(tmp_path, capsys):
    run_dir, _ = _run(tmp_path, "fno")
    assert formats_for(CASES["fno"][0]) == ["exported-program", "torchscript"]
    assert formats_for(CASES["mgno"][0]) == list(FORMATS)
    out = tmp_path / "model.onnx"
    assert main(["export", str(run_dir), "-o", str(out), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "operator fno cannot be exported as onnx" in err
    assert "exported-program, torchscript" in err and not out.exists()


def test_export_reproduces_surrogate_solve(tmp_path, capsys):
    """The CLI's file answers as Surrogate.solve does on (batch, y, x) numpy inputs."""
    run_dir, spec = _run(tmp_path, "fno")
    path = tmp_path / "model.pt2"
    assert main(["export", str(run_dir), "-o", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    a = _inputs(spec, 3)[:, 0].numpy()
    expected = sciops.load(run_dir, device="cpu").solve(a)
    got = torch.export.load(str(path)).module()(torch.from_numpy(a)[:, None])[:, 0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert read_metadata(path)["inputs"] == ["a"] and read_metadata(path)["units"]["u"] == "1"
    # an existing file is kept without --overwrite; replaced with it
    assert main(["export", str(run_dir), "-o", str(path), "--format", "torchscript"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(run_dir), "-o", str(path), "--format", "torchscript", "--overwrite"]) == 0
    assert read_metadata(path)["format"] == "torchscript"


def test_bad_export_input_is_one_line(tmp_path, capsys):
    run_dir, _ = _run(tmp_path, "mgno")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "m.pt2"
    for args, message in [([str(run_dir), "--format", "keras"], "unknown export format 'keras'; expected one of "
                            "exported-program, torchscript, onnx"),
                          ([str(empty)], "is a folder but not a sciops run"),
                          ([str(tmp_path / "d.h5"), "--format", "onnx"], "--format applies to a run directory")]:
        assert main(["export", *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()
