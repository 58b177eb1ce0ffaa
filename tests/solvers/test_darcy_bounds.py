"""Guaranteed error bounds for the Darcy system and the DST-preconditioned CG solver."""
from __future__ import annotations

import numpy as np
import pytest

from sciops.solvers.darcy import assemble, solve_darcy
from sciops.solvers.darcy_bounds import DarcyOperator, error_bounds, laplacian_eigenvalues, pcg, poisson_solve


def _coefficients(kind: str, n: int, batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((batch, n, n))
    from scipy.ndimage import gaussian_filter

    g = np.stack([gaussian_filter(x, 2.0) for x in g])
    g /= g.std(axis=(1, 2), keepdims=True)
    if kind == "two-phase":
        return np.where(g >= 0, 12.0, 3.0)
    if kind == "lognormal":
        return np.exp(g)
    return np.where(g >= 0, 1e3, 1.0)  # high contrast


def test_the_matrix_free_operator_and_the_dst_solve_match_the_assembled_matrices():
    a = _coefficients("lognormal", 17, 2)
    op = DarcyOperator(a, 1.0, "arithmetic")
    v = np.random.default_rng(1).standard_normal((2, 15, 15))
    for i in range(2):
        assert np.allclose(op(v)[i].ravel(), assemble(a[i], "arithmetic") @ v[i].ravel(), rtol=1e-12, atol=1e-9)
    laplacian = assemble(np.ones((17, 17)))
    assert np.allclose(laplacian @ poisson_solve(v)[0].ravel(), v[0].ravel(), atol=1e-10)
    assert np.isclose(laplacian_eigenvalues(17, 17).min(), 2 * np.pi ** 2, rtol=0.01)  # -> 2 pi^2 as h -> 0


@pytest.mark.parametrize("averaging", ["harmonic", "arithmetic"])
@pytest.mark.parametrize("kind", ["two-phase", "lognormal", "high-contrast"])
def test_the_bounds_enclose_the_true_energy_error(kind, averaging):
    a = _coefficients(kind, 33, 6)
    u = solve_darcy(a, 1.0, averaging=averaging)
    rng = np.random.default_rng(2)
    for scale, smooth in ((1e-1, True), (1e-3, True), (1e-2, False)):
        noise = rng.standard_normal(u.shape)
        if smooth:
            from scipy.ndimage import gaussian_filter

            noise = np.stack([gaussian_filter(x, 3.0) for x in noise])
        approx = u + scale * np.abs(u).max() * noise
        b = error_bounds(a, approx, 1.0, averaging)
        op = DarcyOperator(a, 1.0, averaging)
        e = (u - approx)[:, 1:-1, 1:-1]
        true = op.energy(e)
        assert np.all(b["lower"] <= true * (1 + 1e-9)) and np.all(true <= b["upper"] * (1 + 1e-9))
        contrast = np.sqrt(op.a_max / op.a_min)
        assert np.all(b["upper"] <= contrast * true * (1 + 1e-9))  # effectivity at most sqrt(a_max / a_min)
        relative_true = true / op.energy(u[:, 1:-1, 1:-1])
        assert np.all(relative_true <= b["relative"] * (1 + 1e-9))


def test_an_answer_with_no_energy_gets_an_infinite_bound():
    a = _coefficients("two-phase", 17, 2)
    b = error_bounds(a, np.zeros_like(a), 1.0)
    assert np.all(np.isinf(b["relative"]))
    assert np.all(np.isinf(error_bounds(a, np.full_like(a, np.nan), 1.0)["relative"]))


def test_pcg_converges_to_the_direct_solution_with_a_certified_stop():
    a = _coefficients("two-phase", 65, 3)
    u = solve_darcy(a, 1.0)
    x, bounds, iterations = pcg(a, 1.0, tol=1e-8)
    op = DarcyOperator(a, 1.0)
    true = op.energy((u - x)[:, 1:-1, 1:-1]) / op.energy(u[:, 1:-1, 1:-1])
    assert np.all(bounds <= 1e-8) and np.all(true <= bounds)
    assert np.abs(x - u).max() < 1e-7 * np.abs(u).max()
    assert np.all(iterations < 60)


def test_pcg_iterations_obey_the_grid_independent_cg_bound():
    """kappa(L^-1 A) <= a_max / a_min = K whatever the grid, so CG's ||e_k||_A <= 2 q^k ||u||_A with
    q = (sqrt K - 1) / (sqrt K + 1), and the certified bound is at most sqrt(K) times the error:
    k <= log(2 sqrt(K) / tol) / log(1 / q) iterations, at every n."""
    tol = 1e-6
    counts = {}
    for contrast in (4.0, 100.0):
        q = (np.sqrt(contrast) - 1) / (np.sqrt(contrast) + 1)
        limit = np.log(2 * np.sqrt(contrast) * (1 + tol) / tol) / np.log(1 / q) + 2
        for n in (33, 129):
            a = np.where(_coefficients("two-phase", n, 2, seed=3) > 5, contrast, 1.0)
            counts[contrast, n] = pcg(a, 1.0, tol=tol)[2].max()
            assert counts[contrast, n] <= limit, (contrast, n, counts[contrast, n], limit)
    assert counts[100.0, 33] > 2 * counts[4.0, 33]  # sqrt(K) grows 5x: the counts follow


def test_a_warm_start_needs_fewer_iterations():
    a = _coefficients("two-phase", 65, 2)
    u = solve_darcy(a, 1.0)
    rng = np.random.default_rng(4)
    guess = u * (1 + 0.01 * rng.standard_normal(u.shape))
    cold = pcg(a, 1.0, tol=1e-4)[2]
    warm = pcg(a, 1.0, x0=guess, tol=1e-4)[2]
    assert np.all(warm < cold)


def test_dst_cg_is_a_linear_solver_of_the_darcy_problem():
    a = _coefficients("lognormal", 33, 2)
    assert np.allclose(solve_darcy(a, 1.0, linear_solver="dst-cg", tol=1e-10), solve_darcy(a, 1.0), atol=1e-9)


def test_bad_input():
    a = _coefficients("two-phase", 9, 1)
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        pcg(a, 1.0, tol=0.0)
    with pytest.raises(ValueError, match="coefficient of sample 0 must be finite and positive"):
        error_bounds(-a, a, 1.0)
