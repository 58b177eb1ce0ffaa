"""Spectral-Refiner pieces: the H^-1 PDE residual built from the solver's operators (zero on exact
solutions up to the time-difference error, second order in the record spacing, blind to the
conserved mean), and the full-mode extension of the last spectral layer (the refined model starts
where the trained one was; only the added modes are trained), and ``sciops finetune`` end to end:
an st-fno that truncates modes, refined to a lower error, served as a surrogate; incompatible
checkpoints, layers with nothing to add and too-coarse records refused with nothing written."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from sciops import operators
from sciops.normalization import NormalizedOperator
from sciops.runs import OperatorSpec, RunSpec
from sciops.solvers.navier_stokes import NavierStokes2D, simulate
from sciops.workflows.refine import extend_last_layer, navier_stokes_equation, relative_residual


def taylor_green(n: int, times: np.ndarray, nu: float, k: int = 2) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    w0 = torch.sin(2 * math.pi * k * x)[None, :] * torch.sin(2 * math.pi * k * x)[:, None]
    decay = torch.exp(-nu * 2 * (2 * math.pi * k) ** 2 * torch.as_tensor(times))
    return decay[:, None, None] * w0


def test_residual_vanishes_on_the_exact_decaying_vortex_and_not_for_a_wrong_viscosity():
    n, nu, dt = 32, 1e-2, 0.01
    w = taylor_green(n, np.arange(11) * dt, nu)[None]
    right = NavierStokes2D(n, nu, forcing="none", length=1.0)
    wrong = NavierStokes2D(n, 2 * nu, forcing="none", length=1.0)
    exact = relative_residual(right, w[:, 0], w[:, 1:], dt).item()
    off = relative_residual(wrong, w[:, 0], w[:, 1:], dt).item()
    assert exact < 1e-3 and off > 100 * exact, (exact, off)


def test_residual_leaves_out_the_mean_mode():
    """An exact decaying vortex plus a drifting spatial mean violates the PDE only in the mean, which
    the norm leaves out; the same drift on a k = 1 mode is seen."""
    n, nu, dt = 32, 1e-2, 0.01
    times = np.arange(11) * dt
    exact = taylor_green(n, times, nu)[None]
    drift = torch.as_tensor(0.5 * times)[None, :, None, None]
    x = torch.arange(n, dtype=torch.float64) / n
    equation = NavierStokes2D(n, nu, forcing="none", length=1.0)
    for w, seen in ((exact + drift, False), (exact + drift * torch.sin(2 * math.pi * x), True)):
        residual = relative_residual(equation, w[:, 0], w[:, 1:], dt).item()
        assert (residual > 0.01) if seen else (residual < 1e-3), (seen, residual)


def test_residual_of_a_solver_trajectory_is_second_order_in_the_record_spacing():
    """Forced, nonlinear flow from the solver: the residual left is the finite-difference time
    derivative's, so halving the record spacing divides it by about 4."""
    gen = torch.Generator().manual_seed(0)
    n = 32
    w0 = torch.fft.irfft2(torch.randn(1, n, n // 2 + 1, dtype=torch.cdouble, generator=gen)
                          * (torch.arange(n // 2 + 1) < 5) * (torch.fft.fftfreq(n, 1 / n).abs() < 5)[:, None], s=(n, n))
    w0 = w0 / w0.std()
    equation = NavierStokes2D(n, 1e-3, forcing="fno")
    residuals = []
    for dt in (0.04, 0.02, 0.01):
        traj = simulate(w0, t_final=0.4, dt=dt / 8, record_every=dt, viscosity=1e-3, forcing="fno",
                        include_initial=True).vorticity
        residuals.append(relative_residual(equation, traj[:, 0], traj[:, 1:], dt).item())
    orders = np.log2(np.array(residuals[:-1]) / np.array(residuals[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.3), (residuals, orders)


def test_full_mode_extension_leaves_the_model_unchanged():
    torch.manual_seed(0)
    op = operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=5,
                         modes=(2, 4, 4), width=6, layers=2)
    model = NormalizedOperator(op, [0.0], [1.0], [0.0], [1.0])
    spec = RunSpec(operator=OperatorSpec("fno3d", {"modes": [2, 4, 4]}))
    grid = (5 + round(0.3 * 5), 16, 16)
    refined, new_spec, added = extend_last_layer(model, spec, grid)
    assert refined.operator.fno.spectral[-1].modes == (3, 8, 9)
    assert new_spec.operator.hyperparameters["last_modes"] == [3, 8, 9]
    # the mask marks every mode but the trained (4, 8, 4) block (+-2 in t, +-4 in y, 0..3 in x)
    assert added.shape == refined.operator.fno.spectral[-1].weight.shape
    assert (1 - added).sum().item() == 4 * 8 * 4 * 6 * 6 * 2 and set(added.unique().tolist()) == {0.0, 1.0}
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(refined(x), model(x), atol=1e-5, rtol=1e-5)
    # and the extended layer is what a checkpoint with last_modes rebuilds
    rebuilt = operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=5,
                              modes=(2, 4, 4), width=6, layers=2, last_modes=(3, 8, 9))
    rebuilt.load_state_dict(refined.operator.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), refined.operator(x))


def test_full_mode_extension_of_a_layer_with_more_modes_than_the_grid():
    """A layer built with more modes than the (short) time axis has uses only the grid's: the
    extension keeps exactly those, and the model is unchanged."""
    torch.manual_seed(1)
    op = operators.build("fno3d", in_channels=1, out_channels=1, ndim=2, geometry="periodic", time_steps=3,
                         modes=(4, 10, 10), width=6, layers=2)
    model = NormalizedOperator(op, [0.0], [1.0], [0.0], [1.0])
    spec = RunSpec(operator=OperatorSpec("fno3d", {"modes": [4, 10, 10]}))
    refined, _, _ = extend_last_layer(model, spec, (3 + round(0.3 * 3), 16, 16))
    assert refined.operator.fno.spectral[-1].modes == (2, 8, 9)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(refined(x), model(x), atol=1e-5, rtol=1e-5)


# --- end to end: sciops train st-fno -> sciops finetune -> surrogate ---------------------------------
NS_PARAMS = dict(resolution=16, solve_resolution=16, viscosity=1e-2, record_every=0.05, t_final=0.3, input_steps=2)


def _cli(*argv) -> int:
    from sciops.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny navier-stokes dataset with input segments and finely spaced records (the residual's
    time derivative needs them), and an st-fno trained on it to about 8% error that keeps only 2
    spatial modes: the regime Spectral-Refiner addresses (what the trained model truncates)."""
    root = tmp_path_factory.mktemp("refine_e2e")
    data, run = root / "ns.h5", root / "st"
    params = [a for k, v in NS_PARAMS.items() for a in ("--param", f"{k}={v}")]
    assert _cli("generate", "navier-stokes", "-n", 24, "-o", data, "--seed", 3, "-q", *params) == 0
    assert _cli("train", "st-fno", "--data", data, "-o", run, "--epochs", 30, "--batch-size", 4, "--seed", 0,
                "--set", "width=8", "--set", "modes=[3,2,2]", "--set", "layers=2", "-q") == 0
    return root, data, run


def test_finetune_lowers_the_residual_and_the_error_and_the_refined_run_is_a_surrogate(trained, capsys):
    import sciops
    from sciops.problems import get
    from sciops.runs import storage as ckpt

    root, data, run = trained
    out = root / "refined"
    capsys.readouterr()
    assert _cli("finetune", run, "-o", out, "--samples", 16, "--iterations", 40, "--batch-size", 8) == 0
    printed = capsys.readouterr()
    assert "relative H^-1 residual" in printed.out and "warning" not in printed.err
    summary = ckpt.load_json(out / ckpt.CONFIG)["refined"]
    before, after = summary["relative_residual_before"], summary["relative_residual_after"]
    assert after < 0.95 * before, (before, after)
    assert not (root / "refined.partial").exists()

    original, refined = sciops.load(run, device="cpu"), sciops.load(out, device="cpu")
    assert refined.model.operator.fno.spectral[-1].modes == (4, 8, 9)  # padded (6 + 2, 16, 16) grid, all modes
    problem = get("navier-stokes", **NS_PARAMS)
    segment, reference, _ = problem.generate(8, seed=99)
    pred = refined.solve(segment)
    assert pred.shape == reference.shape == (8, 6, 16, 16) and np.isfinite(pred).all()
    assert refined.solve(segment[0]).shape == (6, 16, 16)
    # fine-tuning brought the predictions closer to the trajectories the solver gives (measured:
    # 0.070 -> 0.056 relative L2; with 3 spatial modes kept, 0.077 -> 0.076)
    error = {name: np.linalg.norm(p - reference) / np.linalg.norm(reference)
             for name, p in (("before", original.solve(segment)), ("after", pred))}
    assert error["after"] < 0.9 * error["before"], error
    # only the added modes moved: the trained ones are the original run's
    grid = (6 + round(0.3 * 6), 16, 16)
    extended, _, added = extend_last_layer(original.model, original.spec, grid)
    kept = added == 0
    trained_before = extended.operator.fno.spectral[-1].weight[kept]
    assert torch.equal(refined.model.operator.fno.spectral[-1].weight[kept].cpu(), trained_before.cpu())
    # the refined residual, recomputed here from the predictions, is the smaller one
    equation = navier_stokes_equation(problem, 16, "cpu")
    res = {name: relative_residual(equation, torch.as_tensor(segment[:, -1]).double(),
                                   torch.as_tensor(s.solve(segment)).double(), 0.05).mean().item()
           for name, s in (("before", original), ("after", refined))}
    assert res["after"] < res["before"], res


def test_finetune_refuses_incompatible_checkpoints_and_writes_nothing(trained, tmp_path, capsys):
    root, data, _ = trained
    fno2d = tmp_path / "rollout"
    assert _cli("train", "fno-rollout", "--data", data, "-o", fno2d, "--epochs", 1, "--set", "width=4",
                "--set", "modes=3", "--set", "layers=1", "-q") == 0
    darcy, darcy_run = tmp_path / "darcy.h5", tmp_path / "darcy_run"
    assert _cli("generate", "darcy", "-n", 4, "-o", darcy, "--param", "resolution=9", "-q") == 0
    assert _cli("train", "fno", "--data", darcy, "-o", darcy_run, "--epochs", 1, "--set", "width=4",
                "--set", "modes=3", "-q") == 0
    capsys.readouterr()
    full = tmp_path / "full_modes"  # (t, y, x) modes of the padded (6 + 2, 16, 16) grid: nothing to add
    assert _cli("train", "st-fno", "--data", data, "-o", full, "--epochs", 1, "--set", "width=4",
                "--set", "modes=[4,8,9]", "--set", "layers=1", "-q") == 0
    for run, message in ((fno2d, r"fine-tunes a space-time FNO \(fno3d, st-fno\); .*rollout holds fno-rollout$"),
                         (full, r"already keeps every mode of the \(8, 16, 16\) grid: nothing to refine$"),
                         (darcy_run, r"darcy_run holds fno$"), (tmp_path / "missing", "missing")):
        out = tmp_path / "out"
        assert _cli("finetune", run, "-o", out, "--samples", 2, "--iterations", 1) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not list(tmp_path.glob("out*"))


def test_finetune_refuses_records_too_coarse_for_the_residual_before_writing(trained, tmp_path):
    """The time-resolution guard: reference records whose own residual is not well below the model's
    (here the stored trajectories with noise, as records too sparse in time would be) stop it."""
    from sciops.datasets import open_dataset
    from sciops.problems import get
    from sciops.workflows.refine import refine

    _, data, run = trained
    with open_dataset(data) as ds:
        x, y = ds.get_batch([0, 1])
    noisy = y[:, 0] + 0.3 * y.std() * torch.randn(y[:, 0].shape, generator=torch.Generator().manual_seed(0))
    inputs = torch.as_tensor(get("navier-stokes", **NS_PARAMS).sample_inputs(2, seed=5))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="own relative H\\^-1 residual .* is not well below the model's"):
        refine(run, out, inputs=inputs, reference=(x[:, 0, -1], noisy), iterations=1, device="cpu")
    assert not out.exists() and not list(tmp_path.glob("out*"))
    with pytest.raises(ValueError, match=r"inputs must be \(n, 2, y, x\)"):
        refine(run, out, inputs=inputs[:, -1], iterations=1, device="cpu")


def test_finetune_that_gains_nothing_says_so(trained, tmp_path, monkeypatch, capsys):
    """33 s for residual 0.2666 -> 0.2666 used to pass in silence."""
    import sciops.workflows.finetune

    _, _, run = trained
    real = sciops.workflows.finetune.refine

    def unchanged(*args, **kwargs):
        summary = real(*args, **kwargs)
        return {**summary, "relative_residual_after": summary["relative_residual_before"] * 0.9999}

    monkeypatch.setattr(sciops.workflows.finetune, "refine", unchanged)
    capsys.readouterr()
    assert _cli("finetune", run, "-o", tmp_path / "same", "--samples", 2, "--iterations", 1, "-q") == 0
    err = capsys.readouterr().err
    assert "warning: fine-tuning lowered the residual by less than 0.1%" in err and "predicts as" in err


def test_finetune_on_the_inputs_of_a_dataset(trained, tmp_path, capsys):
    """``--inputs FILE`` refines on a dataset's inputs (its labels unused); another problem's file is refused."""
    from sciops.runs import storage as ckpt

    _, data, run = trained
    assert ckpt.load_json(run / ckpt.CONFIG)["data"]["resolution"] == [16, 16]  # the grid, not (K, y, x)
    out = tmp_path / "on_inputs"
    assert _cli("finetune", run, "-o", out, "--inputs", data, "--samples", 8, "--iterations", 5, "-q") == 0
    summary = ckpt.load_json(out / ckpt.CONFIG)["refined"]
    assert summary["samples"] == 8 and summary["relative_residual_after"] < summary["relative_residual_before"]
    darcy = tmp_path / "darcy.h5"
    assert _cli("generate", "darcy", "-n", 2, "-o", darcy, "--param", "resolution=9", "-q") == 0
    capsys.readouterr()
    assert _cli("finetune", run, "-o", tmp_path / "out", "--inputs", darcy, "--iterations", 1) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("holds darcy data, but the run was trained on navier-stokes"), err
    assert not list(tmp_path.glob("out*"))


def test_finetune_refuses_bad_counts_and_reference_data_before_writing(trained, tmp_path, capsys):
    root, data, run = trained
    out = tmp_path / "out"
    for option, value in (("--samples", 0), ("--iterations", -1), ("--batch-size", 0)):
        assert _cli("finetune", run, "-o", out, option, value) == 2
        assert f"argument {option}: expected an integer >= 1, got '{value}'" in capsys.readouterr().err
    # a --data file the user names must exist and be data of the run's operator
    other = tmp_path / "nu.h5"
    params = [a for k, v in {**NS_PARAMS, "viscosity": 2e-2}.items() for a in ("--param", f"{k}={v}")]
    assert _cli("generate", "navier-stokes", "-n", 1, "-o", other, "-q", *params) == 0
    capsys.readouterr()
    for reference, message in ((tmp_path / "nowhere.h5", "--data .*nowhere.h5 not found"),
                               (other, "generated with viscosity=0.02, but the run was trained with viscosity=0.01")):
        assert _cli("finetune", run, "-o", out, "--data", reference, "--samples", 2, "--iterations", 1) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_finetune_on_a_finer_grid_than_the_reference_data(trained, tmp_path):
    # Spectral-Refiner at a finer grid than the model was trained on: the reference records keep theirs
    _, data, run = trained
    fine = tmp_path / "fine.h5"
    params = [a for k, v in {**NS_PARAMS, "resolution": 32, "solve_resolution": 32}.items() for a in ("--param", f"{k}={v}")]
    assert _cli("generate", "navier-stokes", "-n", 2, "-o", fine, "--seed", 9, "-q", *params) == 0
    assert _cli("finetune", run, "-o", tmp_path / "r32", "--inputs", fine, "--iterations", 2, "-q") == 0
