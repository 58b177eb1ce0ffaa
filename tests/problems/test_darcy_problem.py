"""Specification of the ``darcy`` problem: coefficient distributions, reproducible sampling,
the reference solve and the fine-grid (``subsample``) generation."""
from __future__ import annotations

import numpy as np
import pytest

import sciops.problems as problems
from sciops.problems.random_fields import cosine_basis, cosine_grf
from sciops.solvers import solve_darcy

COEFFICIENTS = ("fno", "multiphase", "lognormal")


def darcy(**params):
    params.setdefault("resolution", 32)
    return problems.get("darcy", **params)


# --- metadata ----------------------------------------------------------------------------------------

def test_metadata():
    p = darcy(resolution=24)
    assert p.geometry == "bounded"
    assert p.input_fields == ["a"] and p.output_fields == ["u"]
    assert p.fields["a"].dims == ("y", "x") and p.fields["u"].dims == ("y", "x")
    for coord in ("x", "y"):  # vertex grid, boundary included
        np.testing.assert_array_equal(p.grid[coord], np.linspace(0.0, 1.0, 24))
        assert coord in p.grid_units
    assert p.field_shape("a") == (24, 24)
    info = p.solver_info
    assert info["averaging"] == "harmonic" and info["linear_solver"] == "direct"
    assert info["forcing"] == 1.0 and info["solve_resolution"] == 24
    assert darcy(resolution=17, subsample=4).solver_info["solve_resolution"] == 65


# --- sampling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("coefficient", COEFFICIENTS)
def test_sample_depends_only_on_seed_and_index(coefficient):
    p = darcy(coefficient=coefficient)
    batch = p.sample_inputs(5, seed=11)
    assert batch.shape == (5, 32, 32) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[3], p.sample_inputs(1, seed=11, start=3)[0])
    np.testing.assert_array_equal(batch[2:], p.sample_inputs(3, seed=11, start=2))  # shards == serial
    np.testing.assert_array_equal(batch, darcy(coefficient=coefficient).sample_inputs(5, seed=11))
    other = p.sample_inputs(5, seed=12)
    assert all(not np.array_equal(batch[i], other[i]) for i in range(5))
    assert all(not np.array_equal(batch[0], batch[i]) for i in range(1, 5))


def test_empty_and_negative_requests():
    p = darcy()
    assert p.sample_inputs(0, seed=0).shape == (0, 32, 32)
    with pytest.raises(ValueError):
        p.sample_inputs(-1, seed=0)
    with pytest.raises(ValueError):
        p.sample_inputs(2, seed=0, start=-1)


@pytest.mark.parametrize("a_low", [None, 4.0])
def test_fno_coefficient_is_two_phase(a_low):
    p = darcy(resolution=64, a_low=a_low)
    low = 3.0 if a_low is None else a_low
    a = p.sample_inputs(16, seed=0)
    assert set(np.unique(a)) == {low, 12.0}
    high_share = (a == 12.0).mean(axis=(1, 2))
    assert np.all((high_share > 0.02) & (high_share < 0.98))  # both phases in every sample
    assert 0.35 < high_share.mean() < 0.65  # threshold at the median of a zero-mean field
    assert p.params["forcing"] == 1.0


def test_multiphase_coefficient_is_piecewise_constant_on_coarse_cells():
    p = darcy(coefficient="multiphase")
    assert p.params["forcing"] == 10.0 and p.solver_info["forcing"] == 10.0
    a = p.sample_inputs(8, seed=3)
    assert set(np.unique(a)) == {5.0, 10.0}
    assert 0.25 < (a == 10.0).mean() < 0.75
    cells = p.params["phase_cells"]  # 29 cells over 32 nodes: at most 29 distinct rows/columns
    for sample in a:
        assert np.unique(sample, axis=0).shape[0] <= cells and np.unique(sample, axis=1).shape[1] <= cells
        assert np.count_nonzero(np.diff(sample, axis=1), axis=1).max() <= cells - 1

    # aligned case: 17 nodes and 4 cells -> node j lies in cell min(j // 4, 3)
    p = darcy(coefficient="multiphase", resolution=17, phase_cells=4)
    cell = np.minimum(np.arange(17) // 4, 3)
    for sample in p.sample_inputs(6, seed=5):
        coarse = np.zeros((4, 4))
        coarse[cell[:, None], cell[None, :]] = sample  # the last write per cell
        np.testing.assert_array_equal(sample, coarse[np.ix_(cell, cell)])


def test_lognormal_coefficient_is_positive_and_continuous():
    p = darcy(coefficient="lognormal", resolution=64)
    a = p.sample_inputs(8, seed=1).astype(np.float64)
    assert np.all(a > 0) and np.all(np.isfinite(a))
    assert len(np.unique(a)) > 1000
    log_a = np.log(a)
    # no jumps: neighbouring values differ by a few percent (fno jumps by log(4) = 1.39)
    jump = max(np.abs(np.diff(log_a, axis=-1)).max(), np.abs(np.diff(log_a, axis=-2)).max())
    assert jump < 0.3
    assert abs(log_a.mean()) < 0.5


def test_resolution_changes_the_shape():
    for n in (16, 33, 50):
        assert darcy(resolution=n).sample_inputs(2, seed=0).shape == (2, n, n)


def test_fully_resolved_field_restricts_across_resolutions():
    """Past the mode cap the same draw is evaluated exactly on any grid: the 129-node sample is
    the 257-node sample at every other node."""
    coarse = darcy(coefficient="lognormal", resolution=129).sample_inputs(2, seed=4)
    fine = darcy(coefficient="lognormal", resolution=257).sample_inputs(2, seed=4)
    np.testing.assert_allclose(coarse, fine[:, ::2, ::2], rtol=1e-6)


# --- the Gaussian random field -----------------------------------------------------------------------

def test_cosine_basis_is_orthonormal():
    s = np.linspace(0.0, 1.0, 201)
    phi = cosine_basis(s, 10)
    weights = np.full(201, 1 / 200)
    weights[[0, -1]] /= 2  # trapezoid rule, exact for these cosines
    np.testing.assert_allclose(phi.T @ (weights[:, None] * phi), np.eye(10), atol=1e-12)


def test_grf_draws_have_zero_spatial_mean():
    """The k = 0 mode is removed, so every draw integrates to zero over the square."""
    rng = np.random.default_rng(0)
    s = np.linspace(0.0, 1.0, 65)
    w = np.full(65, 1 / 64)
    w[[0, -1]] /= 2
    for _ in range(5):
        g = cosine_grf(rng, s, s, alpha=2.0, tau=3.0, modes=64)
        assert abs(w @ g @ w) < 1e-12 * np.abs(g).max()


def test_grf_pointwise_statistics_match_the_covariance():
    """Empirical mean ~ 0 and variance/covariance at points equal to
    sum_k scale_k^2 phi_k(p) phi_k(q), within sampling tolerance (2000 draws)."""
    alpha, tau, modes, draws = 2.0, 3.0, 16, 2000
    pts = np.array([0.0, 0.3, 0.75])
    rng = np.random.default_rng(123)
    samples = np.stack([cosine_grf(rng, pts, pts, alpha=alpha, tau=tau, modes=modes) for _ in range(draws)])

    k2 = np.arange(modes)[:, None] ** 2 + np.arange(modes)[None, :] ** 2
    scale = tau ** (alpha - 1) * (np.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2)
    scale[0, 0] = 0.0
    phi = cosine_basis(pts, modes)
    # covariance between (y_i, x_j) and (y_k, x_l)
    cov = np.einsum("ab,ia,ka,jb,lb->ijkl", scale ** 2, phi, phi, phi, phi)
    var = np.einsum("ijij->ij", cov)

    std = np.sqrt(var)
    assert np.all(np.abs(samples.mean(axis=0)) < 5 * std / np.sqrt(draws))
    empirical_var = samples.var(axis=0)
    np.testing.assert_allclose(empirical_var, var, rtol=5 * np.sqrt(2 / draws))  # ~16 %
    empirical_cov = np.mean(samples[:, 0, 1] * samples[:, 2, 2])
    assert abs(empirical_cov - cov[0, 1, 2, 2]) < 5 * np.sqrt(var[0, 1] * var[2, 2] / draws)
    # the threshold at 0 is the median: P(g >= 0) = 1/2
    assert abs((samples >= 0).mean() - 0.5) < 0.03


# --- solving -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("coefficient", COEFFICIENTS)
def test_solve_shapes_dtype_boundary_positivity(coefficient):
    p = darcy(coefficient=coefficient)
    a, u, seconds = p.generate(3, seed=2)
    assert a.shape == u.shape == (3, 32, 32)
    assert a.dtype == u.dtype == np.float32
    assert seconds >= 0
    np.testing.assert_array_equal(u, p.solve(a))
    for s in u:
        assert np.all(s[0] == 0) and np.all(s[-1] == 0) and np.all(s[:, 0] == 0) and np.all(s[:, -1] == 0)
        assert np.all(s[1:-1, 1:-1] > 0)
    # the problem's forcing and averaging reach the solver
    direct = solve_darcy(a.astype(np.float64), p.params["forcing"], averaging="harmonic")
    np.testing.assert_allclose(u, direct, rtol=1e-6)


def test_solve_single_sample_and_bad_shapes():
    p = darcy()
    a = p.sample_inputs(1, seed=0)
    assert p.solve(a[0]).shape == (32, 32)
    np.testing.assert_array_equal(p.solve(a[0]), p.solve(a)[0])
    with pytest.raises(ValueError, match="shape"):
        p.solve(np.ones((2, 32, 31), np.float32))
    with pytest.raises(ValueError, match="sample 1"):
        bad = p.sample_inputs(2, seed=0)
        bad[1, 4, 4] = -1.0
        p.solve(bad)


def test_averaging_and_linear_solver_parameters():
    a = darcy().sample_inputs(2, seed=9)
    harmonic = darcy().solve(a)
    arithmetic = darcy(averaging="arithmetic").solve(a)
    np.testing.assert_allclose(arithmetic, solve_darcy(a, 1.0, averaging="arithmetic"), rtol=1e-6)
    assert np.abs(arithmetic - harmonic).max() > 1e-3 * np.abs(harmonic).max()
    np.testing.assert_allclose(darcy(linear_solver="amg").solve(a), harmonic, rtol=1e-5, atol=1e-9)


def test_subsample_generates_on_the_fine_grid_and_stores_by_injection():
    coarse = darcy(resolution=17, subsample=4)
    fine = darcy(resolution=65)
    a, u, _ = coarse.generate(3, seed=7)
    a_fine, u_fine, _ = fine.generate(3, seed=7)
    assert a.shape == u.shape == (3, 17, 17) and a.dtype == u.dtype == np.float32
    np.testing.assert_array_equal(a, a_fine[:, ::4, ::4])
    np.testing.assert_allclose(u, u_fine[:, ::4, ::4], rtol=1e-6, atol=1e-9)
    # the inputs alone (sample_inputs) are the stored-grid coefficients of the same draws
    np.testing.assert_array_equal(coarse.sample_inputs(3, seed=7), a)
    np.testing.assert_array_equal(coarse.sample_inputs(1, seed=7, start=2)[0], a[2])
    # solve() on stored inputs interpolates a to the fine grid: stored shape, close to u
    u_from_stored = coarse.solve(a)
    assert u_from_stored.shape == (3, 17, 17) and u_from_stored.dtype == np.float32
    assert np.abs(u_from_stored - u).max() < 0.2 * np.abs(u).max()


def test_subsample_of_smooth_coefficient_matches_fine_solution_closely():
    coarse = darcy(coefficient="lognormal", resolution=17, subsample=4)
    a, u, _ = coarse.generate(2, seed=1)
    np.testing.assert_allclose(coarse.solve(a), u, rtol=0, atol=0.03 * np.abs(u).max())
