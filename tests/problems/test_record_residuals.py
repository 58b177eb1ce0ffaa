"""``record_residuals`` of the trajectory problems: the solver's own records leave a residual far below
that of records 1% off, it falls with the record interval faster than the trapezoidal rule's would,
and navier-stokes records stored coarser than they were solved keep a bounded floor."""
from __future__ import annotations

import pytest

from sciops import problems
from sciops.grid.error_estimator import record_errors, states_of

CASES = {"navier-stokes": dict(resolution=32, solve_resolution=32, t_final=0.5, record_every=0.25),
         "shallow-water": dict(nlat=16, records=2, record_every=3600.0)}


def relative_residual(problem, scale=1.0):
    """Mean relative L2 residual of the first record interval of two solver trajectories (records x scale)."""
    x = problem.sample_inputs(2, seed=1)
    fields = problem.as_field_dict(x, "input")
    y = problem.solve(x)
    y = {k: v * scale for k, v in (y if isinstance(y, dict) else {problem.output_fields[0]: y}).items()}
    r = problem.record_residuals(states_of(problem, fields, "input"), y)
    first = states_of(problem, y, "output", 0)
    return float(record_errors(problem, {k: first[k] + r[k][:, 0] for k in first}, first).mean())


@pytest.mark.parametrize("name", CASES)
def test_solver_records_against_records_one_percent_off(name):
    problem = problems.get(name, **CASES[name])
    assert problem.has_residual
    assert relative_residual(problem, 1.01) > 5 * relative_residual(problem)


def test_shallow_water_residual_is_higher_order_in_the_record_interval():
    problem = problems.get("shallow-water", **CASES["shallow-water"])
    coarse, fine = (relative_residual(problem.with_params(record_every=e)) for e in (7200.0, 3600.0))
    assert coarse / fine > 16  # the trapezoidal residual alone falls 8x per halving


def test_navier_stokes_records_coarser_than_their_solve_keep_a_bounded_floor():
    fine = problems.get("navier-stokes", **CASES["navier-stokes"])
    coarse = fine.with_params(resolution=16)
    assert relative_residual(fine) < relative_residual(coarse) < 0.03


def test_problems_without_a_residual_say_so():
    darcy = problems.get("darcy", resolution=9)
    assert not darcy.has_residual
    with pytest.raises(NotImplementedError, match="darcy has no record residual"):
        darcy.record_residuals({}, {})
