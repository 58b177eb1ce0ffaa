"""Error-controlled rollouts (``sciops.grid.hybrid``): the estimator's calibration on a stand-in whose
error is known (refused where the error falls as the indicator grows), the hybrid meeting a tolerance
the surrogate alone misses over 4x its horizon, the solver's rung fallback, the refusals, and
calibrate / evaluate --tol on a tiny trained run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sciops
from sciops import problems
from sciops.grid import error_estimator as estimator
from sciops.grid import hybrid
from sciops.runs import RunSpec

PARAMS = dict(resolution=16, solve_resolution=32, t_final=0.75, record_every=0.25)


class Drifting:
    """Surrogate stand-in: the solver's records scaled by (1 + eps (j + 1)), record j of a window, so
    rolled out from its own records its error grows without bound."""

    def __init__(self, problem, eps=0.03, nan_after=None, settling=False):
        self.problem, self.eps, self.nan_after, self.settling = problem, eps, nan_after, settling
        self.inputs, self.outputs, self.ndim, self.device = ["w0"], ["w"], 2, torch.device("cpu")
        self.spec = RunSpec.from_dict({"operator": {"name": "drifting"},
                                       "problem": {"name": problem.name, "params": problem.params}})
        self.calls = 0

    def solve(self, w0, batch_size=64):
        self.calls += 1
        w = self.problem.solve(w0).astype(np.float64)
        j = np.arange(1, w.shape[-3] + 1)
        scale = 1 + (self.eps / j if self.settling else self.eps * j)  # settling: the error falls along the window
        out = (w * scale[:, None, None]).astype(np.float32)
        if self.nan_after is not None and self.calls > self.nan_after:
            out[:] = np.nan
        return out


@pytest.fixture(scope="module")
def problem():
    return problems.get("navier-stokes", **PARAMS)


@pytest.fixture(scope="module")
def calibrated(problem):
    stand_in = Drifting(problem)
    x, y, _ = problem.generate(4, seed=3)
    stand_in.spec.error_estimator = estimator.calibrate(stand_in, {"w0": x}, {"w": y})
    return stand_in


def test_estimator_tracks_the_known_error(calibrated):
    cal = calibrated.spec.error_estimator
    assert cal["estimator"] in estimator.ESTIMATORS and cal["spearman"]["defect"] >= 0.9
    assert cal["b"] == max(cal["slope"], 1.0)  # the estimate grows at least linearly with the accumulated defect
    # the stand-in's error is a scaled state, whose relative error the viscous flow carries a record on
    # almost unchanged (an advance compared with the wrong record, or absolute errors, would not be near 1)
    assert 0.9 < cal["amplification"] < 1.02
    assert set(cal["spearman"]) == {"defect", "residual"} and cal["spearman"]["residual"] >= 0.8
    assert set(cal["seconds"]) == {"surrogate", "solver", "defect", "residual"}  # costs: timed in bench_hybrid.py
    assert all(v > 0 for v in cal["seconds"].values())
    assert json.loads(json.dumps(cal)) == cal  # stored in config.json as it is


def test_hybrid_meets_tol_over_four_horizons_where_the_surrogate_does_not(problem, calibrated):
    steps, tol = 4 * problem.time_steps, 0.15
    x = problem.sample_inputs(2, seed=11)
    ref = problem.with_records(steps).solve(x)

    def max_error(records):
        return max(estimator.record_errors(problem, {"w": records[:, k]}, {"w": ref[:, k]}).max() for k in range(steps))

    alone = hybrid.march(calibrated, x, steps=steps)
    assert alone.records.shape == ref.shape and not alone.solver.any()
    assert max_error(alone.records) > 2 * tol
    result = hybrid.march(calibrated, x, steps=steps, tol=tol)
    assert max_error(result.records) <= tol
    assert 0 < result.solver_record_share < 1 and result.solver.shape == (2, steps)
    assert repr(result).startswith(f"HybridResult(solver records (2, {steps}): ")  # not the arrays
    assert np.all(np.isnan(result.estimates[result.solver])) and np.all(result.estimates[~result.solver] <= tol)


def test_calibrate_refuses_an_indicator_the_errors_fall_against(problem):
    x, y, _ = problem.generate(4, seed=3)
    with pytest.raises(ValueError, match=r"^calibrate: the defect indicator does not rank .* slope -"):
        estimator.calibrate(Drifting(problem, settling=True), {"w0": x}, {"w": y}, estimator="defect")


def test_refusals(problem, calibrated):
    x = problem.sample_inputs(1, seed=5)
    for bad in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol=.* is not valid; expected a finite relative error > 0"):
            hybrid.march(calibrated, x, tol=bad)
    with pytest.raises(ValueError, match="no error-estimator calibration.*`sciops calibrate RUN`"):
        hybrid.march(Drifting(problem), x, tol=0.1)
    broken = Drifting(problem, nan_after=1)
    broken.spec.error_estimator = calibrated.spec.error_estimator
    with pytest.raises(ValueError, match=r"^record \d+ of sample 0: .*NaN") as err:
        hybrid.march(broken, x, tol=0.5, steps=6)
    assert "\n" not in str(err.value)
    huge = Drifting(problem, eps=1e3)  # records the defect's solver cannot advance
    huge.spec.error_estimator = {**calibrated.spec.error_estimator, "estimator": "defect"}
    with pytest.raises(ValueError, match=r"^record 2 of sample 0: the solver refused the state the record is "
                                         r"checked from \(.*blow-up"):
        hybrid.march(huge, x, tol=0.5, steps=3)
    assert RunSpec.from_dict({"operator": {"name": "fno"}}).error_estimator is None  # older configs load
    stale = Drifting(problem)
    stale.spec.error_estimator = {k: v for k, v in calibrated.spec.error_estimator.items() if k != "slope"}
    with pytest.raises(ValueError, match="predates the current estimators.*`sciops calibrate RUN`"):
        hybrid.march(stale, x, tol=0.1)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"steps={bad!r} is not valid"):
            hybrid.march(calibrated, x, tol=0.1, steps=bad)
    with pytest.raises(ValueError, match="tol=True is not valid"):
        hybrid.march(calibrated, x, tol=True)
    assert hybrid.check_tol(np.float32(0.5)) == 0.5 and hybrid.check_steps(np.int64(4)) == 4
    with pytest.raises(ValueError, match=r"^steps=100000: the solver refuses a rollout that long \(.*t_final"):
        hybrid.march(calibrated, x, tol=0.1, steps=100000)


def test_ranking_separates_the_indicator_from_the_record_number():
    # errors growing along the rollout, samples ordered within each record
    errors = np.arange(1, 5)[None, :] * (1 + 0.1 * np.arange(4))[:, None]
    same = estimator.ranking(errors, errors)
    assert same["indicator"] == pytest.approx(1.0) and same["within_record"] == pytest.approx(1.0)
    assert 0.9 < same["record_number"] < 1.0 and same["points"] == 16
    assert same["spread"] == pytest.approx(np.std([1, 1.1, 1.2, 1.3]) / 1.15)  # the samples' factors
    clock = estimator.ranking(np.arange(1, 5)[None, :] * (1 - 0.1 * np.arange(4))[:, None], errors)
    assert clock["within_record"] == pytest.approx(-1.0) and clock["indicator"] > 0.8  # the clock hides it


def test_the_defect_is_not_chosen_where_it_would_cost_the_solve_it_saves():
    fitted = {"defect": {"spearman": 0.98}, "residual": {"spearman": 0.93}}
    assert estimator._choose(fitted, ["rk2cn"]) == "defect"  # a cheap rung: the better ranking one
    assert estimator._choose(fitted, []) == "residual"  # the defect would be the reference's own record
    assert estimator._choose({**fitted, "residual": {"spearman": -0.2}}, []) == "defect"  # a residual that fails
    assert estimator._choose({"defect": {"spearman": 0.9}}, []) == "defect"  # a problem without a residual


def test_indicators_are_carried_at_the_amplification_within_the_horizon_and_at_least_1_past_it():
    d = np.ones((2, 4))
    damped = {"amplification": 0.5, "time_steps": 2}
    assert estimator.carried(d, damped) == pytest.approx(np.array([[1, 1.5, 2.5, 3.5]] * 2))
    # rows starting at records 1 and 3 of the rollout, carrying D = 2 and 0 from before
    assert estimator.carried(d, damped, first=[1, 3], prior=[2.0, 0.0]) == pytest.approx(
        np.array([[2, 3, 4, 5], [1, 2, 3, 4]]))
    growing = {"amplification": 2.0, "time_steps": 2}
    assert estimator.carried(d, growing)[0] == pytest.approx([1, 3, 7, 15])
    stored_before = {"time_steps": 2}  # fitted to the plain sum: carried as it was fitted
    assert estimator.carried(d, stored_before)[0] == pytest.approx([1, 2, 3, 4])


def test_the_solver_takes_the_first_rung_whose_checks_pass_configured_for_the_whole_rollout(problem):
    stepper = estimator.Stepper(problem)
    start = {"w": problem.sample_inputs(2, seed=7)}

    def refuses(_):
        raise ValueError("dt is beyond the stability limit")

    stepper.solvers(1)["refusing rung"] = refuses
    assert np.array_equal(stepper.advance(start, ("refusing rung", "reference"))["w"], stepper.advance(start)["w"])
    with pytest.raises(ValueError, match="stability limit"):
        stepper.advance(start, ("refusing rung",))
    fast = problems.get("navier-stokes", viscosity=1e-4, forcing="fno", resolution=32, solve_resolution=64,
                        t_final=1.0, record_every=0.5)
    assert estimator.Stepper(fast, 8).base.solver_info["dt"] < fast.solver_info["dt"]  # the faster flow of 4 s
    with pytest.raises(ValueError, match="^steps=40: the solver refuses a rollout that long.*too coarse"):
        estimator.Stepper(fast, 40)


def test_calibrate_and_evaluate_tol_on_a_trained_run(tmp_path, capsys):
    from sciops.cli import main

    data, run, rep = tmp_path / "d.h5", tmp_path / "run", tmp_path / "r.json"
    params = [a for k, v in PARAMS.items() for a in ("--param", f"{k}={v}")]
    assert main(["generate", "navier-stokes", "-n", "16", "-o", str(data), "-q", *params]) == 0
    assert main(["train", "fno-rollout", "--data", str(data), "-o", str(run), "--epochs", "2", "--set", "width=8",
                 "--set", "modes=4", "--set", "layers=2", "-q"]) == 0
    assert main(["evaluate", str(run), "--fresh", "2", "--tol", "0.5", "--no-ladder"]) == 2
    assert f"sciops calibrate {run}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"`sciops calibrate {run}`"):  # the Python API names the run too
        sciops.load(run).solve(sciops.load(run).problem.sample_inputs(1, seed=3), steps=4, tol=0.5)
    assert main(["calibrate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out and "note: only 6 validation records" in out  # 2 trajectories x 3 records
    assert main(["calibrate", str(run), "--n-val", "3"]) == 0
    assert "note: 1 of the 3 trajectories are training ones" in capsys.readouterr().out
    assert RunSpec.load(run).error_estimator["n_val"] >= 1
    assert main(["evaluate", str(run), "--fresh", "2", "--tol", "0.5", "--steps", "12", "--report", str(rep)]) == 0
    out, err = capsys.readouterr()
    assert "hybrid at tol 0.5 over 12 records: 4/4 stages" in err  # the longer reference, alone, hybrid, ladder
    assert "over 12 records" in out and "against the equally accurate solve" in out
    assert "over the surrogate alone's 12 records (the record number alone" in out
    report = json.loads(rep.read_text())
    assert set(report["hybrid"]) >= {"tol", "max_record_error", "solver_record_share", "seconds_per_trajectory",
                                     "surrogate_max_record_error", "solver_seconds_per_trajectory"}
    h = report["hybrid"]
    assert h["steps"] == 12 and h["max_record_error"] <= 0.5 and max(h["record_errors"]) == h["max_record_error"]
    assert len(h["solver_records"]) == 12 and np.isclose(np.mean(h["solver_records"]), h["solver_record_share"])
    assert set(h["diagnostics"]) == {"kinetic_energy", "enstrophy"}  # invariants along all 12 records
    assert len(h["diagnostics"]["enstrophy"]["ratio"]) == 12 and len(h["surrogate_diagnostics"]["enstrophy"]["ratio"]) == 12
    assert report["estimator_spearman"] == h["ranking"]["horizon"]["indicator"]
    assert h["ranking"]["horizon"]["points"] == 2 * 3 and h["ranking"]["rollout"]["points"] == 2 * 12
    assert -1 <= h["ranking"]["rollout"]["indicator"] <= 1
    # the ladder solved the 12-record flow, its errors in the hybrid's metric: the best rung is near-exact
    assert min(p["error"] for p in h["ladder"] if p["error"] is not None) < 1e-2
    assert h["speedup_equal_accuracy_note"] and (h["speedup_equal_accuracy"] is None or h["speedup_equal_accuracy"] > 0)
    assert main(["evaluate", str(run), "--fresh", "2", "--tol", "0.5", "--steps", "100000", "--no-ladder"]) == 2
    err = capsys.readouterr().err
    assert "steps=100000: the solver refuses a rollout that long" in err and "reference solves" not in err  # no work
    assert main(["evaluate", str(run), "--fresh", "2", "--steps", "12", "--no-ladder"]) == 2
    assert "--steps applies to trajectory runs with --tol" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--fresh", "2", "--tol", "0", "--no-ladder"]) == 2
    surrogate = sciops.load(run)
    far = 100 * surrogate.problem.sample_inputs(1, seed=2)  # outside the training inputs' range
    with pytest.raises(ValueError, match="strict=True refuses them"):
        surrogate.solve(far, steps=4, strict=True)
    with pytest.warns(UserWarning, match="outside the range of the training inputs"):
        surrogate.solve(far, steps=1)
    with pytest.raises(ValueError, match="^return_estimate is for certified problems"):
        surrogate.solve(far, steps=4, return_estimate=True)
