"""Evaluation of trajectory surrogates (``navier-stokes``): per-time relative L2, the Bochner
L2(0, T; L2) and L2(0, T; H1) errors of whole trajectories, seconds per trajectory, the report
and the figure. A stand-in surrogate returns the solver's own trajectory scaled by (1 + e_t), so
every expected error is known in closed form."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sciops import problems
from sciops.datasets import generate
from sciops.grid.evaluation import evaluate, markdown, output_layout, public, summary_line
from sciops.grid.figures import plot_comparison
from sciops.runs import RunSpec

PARAMS = dict(resolution=16, solve_resolution=32, t_final=0.75, record_every=0.25)
FACTORS = np.array([0.01, -0.03, 0.05])


class ScaledSolver:
    """Surrogate stand-in: w_hat(t_j) = (1 + e_j) w(t_j), w the reference solver's trajectory."""

    def __init__(self, problem, factors=FACTORS):
        self._problem, self.factors = problem, np.asarray(factors, np.float64)
        self.inputs, self.outputs, self.ndim, self.device = ["w0"], ["w"], 2, torch.device("cpu")
        self.spec = RunSpec.from_dict({"operator": {"name": "scaled-solver"},
                                       "problem": {"name": problem.name, "params": problem.params},
                                       "data": {"path": "", "seed": 0, "n_samples": 8, "n_train": 7, "n_val": 1,
                                                "resolution": [16, 16]}})

    @property
    def problem(self):
        return self._problem

    def solve(self, w0):
        w = self._problem.solve(w0).astype(np.float64)
        return (w * (1 + self.factors)[:, None, None]).astype(np.float32)


def h1_squared(u: np.ndarray, length: float) -> np.ndarray:
    """sum_k (1 + 4 pi^2 |k / L|^2) |u_k|^2 over the last two axes (normalised DFT), up to L^2."""
    n = u.shape[-1]
    m = np.fft.fftfreq(n, 1 / n)
    weight = 1 + 4 * np.pi ** 2 * (m[:, None] ** 2 + m[None, :] ** 2) / length ** 2
    return (weight * np.abs(np.fft.fft2(u) / n ** 2) ** 2).sum(axis=(-2, -1))


def expected_bochner(ref: np.ndarray, squared_norm) -> np.ndarray:
    """sqrt(sum_t e_t^2 ||w_t||^2 / sum_t ||w_t||^2) per sample, ref (N, T, n, n)."""
    norms = squared_norm(ref.astype(np.float64))
    return np.sqrt((FACTORS ** 2 * norms).sum(1) / norms.sum(1))


@pytest.fixture(scope="module")
def report():
    problem = problems.get("navier-stokes", **PARAMS)
    return evaluate(ScaledSolver(problem), fresh=6, batch=4, progress_enabled=False)


def test_per_time_errors_are_the_known_scalings(report):
    assert report["times"] == pytest.approx([0.25, 0.5, 0.75])
    per = report["per_time"]["rel_l2"]
    for stat in ("mean", "median", "max"):
        np.testing.assert_allclose(per[stat], np.abs(FACTORS), rtol=1e-4)


def test_whole_trajectory_errors_are_the_bochner_norms(report):
    problem = problems.get("navier-stokes", **PARAMS)
    ref = problem.solve(report["_arrays"]["inputs"]["w0"][None])
    l2 = expected_bochner(ref, lambda u: (u ** 2).sum(axis=(-2, -1)))[0]
    h1 = expected_bochner(ref, lambda u: h1_squared(u, 1.0))[0]
    assert report["_arrays"]["rel_l2"] == pytest.approx(l2, rel=1e-4)
    sample_h1 = report["metrics"]["rel_h1"]
    assert sample_h1["median"] == pytest.approx(h1, rel=0.2)  # the median sample of rel_l2 need not be h1's
    assert min(np.abs(FACTORS)) < sample_h1["mean"] < max(np.abs(FACTORS))
    # the Bochner error weights late records (larger vorticity in the forced flow) more: not a plain mean
    assert report["metrics"]["rel_l2"]["mean"] != pytest.approx(np.abs(FACTORS).mean(), rel=1e-3)


def test_h1_uses_the_domain_length_of_the_problem():
    problem = problems.get("navier-stokes", forcing="none", viscosity=0.05, resolution=16, solve_resolution=24,
                           t_final=0.5, record_every=0.25)
    trajectory, extent = output_layout(problem, "w")
    assert trajectory and extent == pytest.approx((2 * math.pi, 2 * math.pi))
    assert output_layout(problems.get("darcy", resolution=9), "u") == (False, 1.0)
    report = evaluate(ScaledSolver(problem, FACTORS[:2]), fresh=2, progress_enabled=False)
    refs = problem.solve(problem.sample_inputs(2, report["source"]["seed"])).astype(np.float64)

    def bochner_h1(length):
        norms = h1_squared(refs, length)
        return np.sqrt((FACTORS[:2] ** 2 * norms).sum(1) / norms.sum(1)).mean()

    assert report["metrics"]["rel_h1"]["mean"] == pytest.approx(bochner_h1(2 * math.pi), rel=1e-4)
    assert abs(bochner_h1(1.0) / bochner_h1(2 * math.pi) - 1) > 1e-3  # the unit-box weights would differ


def test_timing_report_and_text(report):
    assert report["samples"] == 6 and report["solver_seconds_per_sample"] > 0
    assert report["speedup"] == pytest.approx(report["solver_seconds_per_sample"] / report["surrogate_seconds_per_sample"])
    text = markdown(report)
    assert "ms/trajectory" in text and "| 0.75 |" in text and "L2(0,T;L2)" in text
    line = summary_line(report)
    assert "relative L2(0,T;L2)" in line and "ms/trajectory" in line and "t = 0.25 / 0.75" in line
    assert json.loads(json.dumps(public(report)))["per_time"]["rel_l2"]["mean"][2] == pytest.approx(0.05, rel=1e-4)


def test_trajectory_figure(report, tmp_path):
    png = plot_comparison(report, tmp_path / "traj.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_on_a_stored_trajectory_file(tmp_path):
    problem = problems.get("navier-stokes", **PARAMS)
    path = generate(problem, 3, tmp_path / "ns.h5", seed=2, progress=False)
    report = evaluate(ScaledSolver(problem), data=path)
    assert report["samples"] == 3 and report["source"]["seed"] == 2
    np.testing.assert_allclose(report["per_time"]["rel_l2"]["max"], np.abs(FACTORS), rtol=1e-4)


@pytest.mark.parametrize("other", [dict(viscosity=2e-3), dict(record_every=0.125),
                                   dict(forcing="none", resolution_check="off")])
def test_evaluation_refuses_data_of_another_operator(tmp_path, other):
    # the same problem and grid, but another map from w0 to the records: its errors would be meaningless
    data_problem = problems.get("navier-stokes", **{**PARAMS, **other})
    path = generate(data_problem, 1, tmp_path / "other.h5", seed=2, progress=False)
    name = next(iter(other))
    with pytest.raises(ValueError, match=f"generated with {name}=.*but the run was trained with {name}="):
        evaluate(ScaledSolver(problems.get("navier-stokes", **PARAMS)), data=path)


def test_cli_evaluate_of_a_trained_trajectory_operator(tmp_path, capsys):
    """generate -> train fno-rollout -> evaluate --fresh: per-time errors, figure and report."""
    from sciops.cli import main

    data, run, png, rep = tmp_path / "d.h5", tmp_path / "run", tmp_path / "e.png", tmp_path / "r.json"
    params = [a for k, v in PARAMS.items() for a in ("--param", f"{k}={v}")]
    assert main(["generate", "navier-stokes", "-n", "24", "-o", str(data), "-q", *params]) == 0
    assert main(["train", "fno-rollout", "--data", str(data), "-o", str(run), "--epochs", "2", "--set", "width=8",
                 "--set", "modes=4", "--set", "layers=2", "-q"]) == 0
    assert main(["evaluate", str(run), "--fresh", "3", "--plot", str(png), "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "relative L2(0,T;L2)" in out and "ms/trajectory" in out
    report = json.loads(rep.read_text())
    assert report["times"] == pytest.approx([0.25, 0.5, 0.75]) and report["resolution"] == [16, 16]
    assert len(report["per_time"]["rel_l2"]["mean"]) == 3 and report["speedup"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
