"""The ``radar`` solver ladder: the adjoint image and CG stopped early, each on the reference's
inputs and shapes, converging to the reference as the iterations grow; the reference's iteration
count reproduces it exactly; one CG iteration is the adjoint rung again (why it is not a rung)."""
from __future__ import annotations

import numpy as np
import pytest

from sciops import problems

SMALL = dict(nz=12, ny=9, nx=9, n_freqs=4)


def radar(**params):
    return problems.get("radar", **{**SMALL, **params})


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_rungs_run_label_themselves_and_converge_to_the_reference():
    p = radar()
    rungs = p.ladder()
    assert [r.label for r in rungs] == ["adjoint", "cg 2 iterations", "cg 5 iterations"]
    x = p.sample_inputs(2, seed=1)
    ref = p.solve(x)
    errors = []
    for rung in rungs:
        out = rung.solve(x)
        assert out.shape == ref.shape and out.dtype == ref.dtype, rung.label
        assert rung.solve(x[0]).shape == ref.shape[1:], rung.label
        errors.append(rel(out, ref))
    assert errors[0] > errors[1] > errors[2] > 0, errors
    np.testing.assert_allclose(rungs[0].solve(x), np.abs(x[..., 0] + 1j * x[..., 1]) /
                               np.abs(x[..., 0] + 1j * x[..., 1]).reshape(2, -1).max(1)[:, None, None, None],
                               rtol=1e-6, atol=1e-7)


def test_full_iterations_are_the_reference_and_one_iteration_is_the_adjoint():
    p = radar(cg_iters=3)
    assert [r.label for r in p.ladder()] == ["adjoint", "cg 2 iterations"]
    x = p.sample_inputs(2, seed=2)
    np.testing.assert_array_equal(p.solve_with(x, cg_iters=3), p.solve(x))
    np.testing.assert_allclose(p.solve_with(x, cg_iters=1), p.solve_with(x, cg_iters=0), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cg_iters=-1 is not valid; expected an integer >= 0"):
        p.solve_with(x, cg_iters=-1)
