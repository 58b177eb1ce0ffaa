"""Certified surrogate answers for Darcy: guaranteed bounds, a tolerance met by the solver, OOD flags."""
from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pytest
import torch

import sciops
from sciops.cli import main
from sciops.grid.certified import certify
from sciops.problems import get


@pytest.fixture(scope="module")
def surrogate(trained_run):
    return sciops.load(trained_run[0], device="cpu")


@pytest.fixture(scope="module")
def fresh(surrogate):
    return surrogate.problem.sample_inputs(40, 987654).astype(np.float32)


def test_every_bound_covers_the_true_error(surrogate, fresh):
    u, bounds = surrogate.solve(fresh, return_estimate=True)
    assert u.shape == fresh.shape and bounds.shape == (len(fresh),)
    assert np.all(u[:, 0, :] == 0) and np.all(u[:, :, -1] == 0)  # the boundary condition is imposed
    true = surrogate.problem.certified_error(fresh, u)
    assert np.all(bounds >= true) and np.all(np.isfinite(bounds))
    assert np.median(bounds / true) < 3  # {3, 12} coefficients: effectivity at most ~sqrt(4) before the denominator
    one, bound = surrogate.solve(fresh[0], return_estimate=True)
    assert one.shape == fresh[0].shape and np.ndim(bound) == 0 and np.isclose(bound, bounds[0], rtol=1e-6)


def test_a_tolerance_is_met_by_finishing_the_solve(surrogate, fresh):
    answer = surrogate.certify(fresh, tol=1e-4)
    assert np.all(answer.bounds <= 1e-4)
    assert np.all(surrogate.problem.certified_error(fresh, answer.outputs) <= answer.bounds)
    assert answer.refined.all() and np.all(answer.iterations > 0)  # a 12-epoch FNO is ~1e-2 off
    loose = surrogate.certify(fresh, tol=10.0)
    assert not loose.refined.any() and np.all(loose.iterations == 0)
    u = surrogate.solve(fresh, tol=1e-4)
    assert np.allclose(u, answer.outputs)


def test_high_contrast_goes_to_the_direct_solve(surrogate):
    a = surrogate.problem.sample_inputs(2, 5).astype(np.float32)
    a = np.where(a > 5, 1e4, 1.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # far outside the training inputs
        answer = surrogate.certify(a, tol=1e-3)
    assert np.all(answer.iterations == -1) and np.all(answer.bounds <= 1e-3) and answer.out_of_distribution.all()


def test_inputs_outside_the_training_range_are_flagged(surrogate, fresh):
    assert surrogate.out_of_distribution(fresh).mean() < 0.2
    odd = {"constant": np.full((2,) + fresh.shape[1:], 7.0, np.float32),
           "other phases": np.where(fresh[:2] > 5, 4.0, 1.0).astype(np.float32),
           "scaled": 10 * fresh[:2],
           "lognormal": get("darcy", resolution=fresh.shape[-1], coefficient="lognormal").sample_inputs(2, 3)
           .astype(np.float32)}
    for name, a in odd.items():
        assert surrogate.out_of_distribution(a).all(), name
        with pytest.warns(UserWarning, match="2 of 2 inputs lie outside the range of the training inputs"):
            surrogate.solve(a)
        with pytest.raises(ValueError, match="strict=True refuses them"):
            surrogate.solve(a, strict=True)


def test_refusals(surrogate, fresh):
    for tol in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol must be a finite number > 0"):
            surrogate.solve(fresh, tol=tol)
    with pytest.raises(ValueError, match="take numpy inputs"):
        surrogate.solve(torch.as_tensor(fresh), return_estimate=True)
    stand_in = types.SimpleNamespace(problem=get("shallow-water"))
    with pytest.raises(ValueError, match="problem shallow-water has no certified error bound; problems with one: darcy"):
        certify(stand_in, fresh)


def test_evaluate_reports_coverage_effectivity_and_certified_speed(trained_run, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(trained_run[0]), "--fresh", "12", "--tol", "1e-3", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "certified to 0.001" in out and "bound covers the true error in 100% of samples" in out
    c = json.loads(report.read_text())["certified"]
    assert c["coverage"] == 1.0 and c["max_bound"] <= 1e-3 and c["max_true_error"] <= c["max_bound"]
    assert 1.0 <= c["effectivity"]["min"] <= c["effectivity"]["median"] <= c["effectivity"]["max"]
    assert set(c["seconds_per_sample"]) == {"certified_surrogate", "dst_cg_from_zero", "direct"}
    assert 0 <= c["discretisation_gap"]["median"] < 0.1
    assert main(["evaluate", str(trained_run[0]), "--fresh", "2", "--tol", "0"]) == 2
    assert "--tol must be a finite number > 0" in capsys.readouterr().err
