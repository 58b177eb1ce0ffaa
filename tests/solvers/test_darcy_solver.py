"""Specification of ``sciops.solvers.solve_darcy``: -div(a grad u) = f on (0,1)^2, u = 0 on the boundary.

Arrays are indexed ``[..., y, x]`` on the vertex grid x_j = j / (nx - 1), y_i = i / (ny - 1).
Every manufactured solution below is deliberately asymmetric in x and y, so a transposed
stencil or a swapped grid spacing fails the tests.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sciops.solvers import solve_darcy
from sciops.solvers.darcy import FACE_AVERAGES, LINEAR_SOLVERS, assemble, face_coefficients

PI = np.pi


# --- exact and manufactured solutions ------------------------------------------------------------

def grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Broadcastable node coordinates (y of shape (ny, 1), x of shape (1, nx))."""
    return np.linspace(0.0, 1.0, ny)[:, None], np.linspace(0.0, 1.0, nx)[None, :]


def smooth_case(ny: int, nx: int):
    """u = sin(pi x) sin(pi y), a = 1 + x y^2, f = -div(a grad u) computed analytically."""
    y, x = grid(ny, nx)
    a = 1.0 + x * y ** 2
    u = np.sin(PI * x) * np.sin(PI * y)
    a_x, a_y = y ** 2, 2.0 * x * y
    u_x = PI * np.cos(PI * x) * np.sin(PI * y)
    u_y = PI * np.sin(PI * x) * np.cos(PI * y)
    f = -(a_x * u_x + a_y * u_y) + 2.0 * PI ** 2 * a * u  # lap u = -2 pi^2 u
    return a, f, u


def layered_case(ny: int, nx: int, a1: float = 1.0, a2: float = 10.0):
    """Exact solution for a = a1 (x < 1/2), a2 (x > 1/2).

    u(x, y) = v(x) sin(pi y), with flux q = a v' = cos(pi x) + C continuous across the interface,
    v(x) = int_0^x q / a, and C chosen so that v(1) = 0. Then
    -div(a grad u) = [pi sin(pi x) + pi^2 a(x) v(x)] sin(pi y) = f (discontinuous at x = 1/2).
    """
    y, x = grid(ny, nx)
    c = 2.0 * (1.0 / a2 - 1.0 / a1) / (PI * (1.0 / a1 + 1.0 / a2))
    left = x < 0.5
    v_half = (1.0 / PI + c / 2.0) / a1
    v = np.where(left, (np.sin(PI * x) / PI + c * x) / a1,
                 v_half + ((np.sin(PI * x) - 1.0) / PI + c * (x - 0.5)) / a2)
    a = np.broadcast_to(np.where(left, a1, a2), (ny, nx)).copy()
    u = v * np.sin(PI * y)
    f = (PI * np.sin(PI * x) + PI ** 2 * a * v) * np.sin(PI * y)
    return a, f, u


def observed_orders(case, sizes, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Max-norm errors on square grids of ``sizes`` nodes and the observed orders
    log(e_k / e_{k+1}) / log(h_k / h_{k+1}) between successive grids."""
    errors = []
    for n in sizes:
        a, f, u = case(n, n)
        errors.append(np.abs(solve_darcy(a, f, **kwargs) - u).max())
    errors = np.array(errors)
    h = 1.0 / (np.array(sizes, dtype=float) - 1.0)
    return errors, np.log(errors[:-1] / errors[1:]) / np.log(h[:-1] / h[1:])


# --- convergence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("linear_solver", LINEAR_SOLVERS)
@pytest.mark.parametrize("averaging", FACE_AVERAGES)
def test_manufactured_smooth_coefficient_is_second_order(averaging, linear_solver):
    # Measured (direct and amg identical to the digits shown):
    #   harmonic   errors 2.99e-3 7.50e-4 1.87e-4 4.68e-5, orders 1.995 2.000 2.000
    #   arithmetic errors 2.84e-3 7.09e-4 1.77e-4 4.44e-5, orders 2.000 1.999 2.000
    errors, orders = observed_orders(smooth_case, (17, 33, 65, 129), averaging=averaging,
                                     linear_solver=linear_solver, tol=1e-12)
    assert errors[0] < 1e-2
    np.testing.assert_allclose(orders, 2.0, atol=0.1)


def test_rectangular_grid_manufactured_solution():
    """ny != nx: the x and y spacings must be used on the right axes."""
    errors = []
    for ny, nx in ((17, 33), (33, 65)):
        a, f, u = smooth_case(ny, nx)
        u_h = solve_darcy(a, f)
        assert u_h.shape == (ny, nx)
        errors.append(np.abs(u_h - u).max())
    # 33 x 65 error 3.1e-4; ratio ~4 (second order with both spacings halved)
    assert errors[1] < 5e-4
    assert 3.6 < errors[0] / errors[1] < 4.4
    # and the transposed problem gives the transposed answer
    a, f, _ = smooth_case(33, 65)
    np.testing.assert_allclose(solve_darcy(a.T, f.T), solve_darcy(a, f).T, rtol=1e-12, atol=1e-14)


def test_five_point_stencil_is_exact_for_biquadratic_solution():
    """For constant a the 5-point scheme reproduces u = x(1-x) y(1-y) to rounding (its second
    differences are exact), with either averaging, on a rectangular grid."""
    y, x = grid(9, 14)
    u = x * (1 - x) * y * (1 - y)
    a = np.full((9, 14), 2.5)
    f = 2.5 * 2.0 * (x * (1 - x) + y * (1 - y))
    for averaging in FACE_AVERAGES:
        np.testing.assert_allclose(solve_darcy(a, f, averaging=averaging), u, atol=1e-14)


@pytest.mark.parametrize("transpose", [False, True], ids=["layers-in-x", "layers-in-y"])
def test_layered_coefficient_harmonic_second_order_arithmetic_first(transpose):
    """a jumps by a factor 10 across x = 1/2 (or y = 1/2), which lies at a face midpoint
    (even node counts). The harmonic face coefficient 2 a1 a2 / (a1 + a2) is the exact
    conductance of the two half cells in series, so the flux across the interface is consistent
    and the scheme stays second order; the arithmetic mean overestimates that conductance by
    (a1 + a2)^2 / (4 a1 a2) = 3.0, an O(1) flux error on one face, which makes the scheme first
    order.

    Measured on 18, 34, 66, 130 nodes (orders use the true ratios h = 1/17, 1/33, 1/65, 1/129):
        harmonic   errors 1.20e-3 3.29e-4 8.61e-5 2.20e-5, orders 1.95 1.98 1.99
        arithmetic errors 8.60e-3 4.85e-3 2.57e-3 1.32e-3, orders 0.86 0.94 0.97
    """
    sizes = (18, 34, 66, 130)
    if transpose:
        case = lambda ny, nx: tuple(z.T.copy() for z in layered_case(nx, ny))  # noqa: E731
    else:
        case = layered_case
    err_h, ord_h = observed_orders(case, sizes, averaging="harmonic")
    err_a, ord_a = observed_orders(case, sizes, averaging="arithmetic")
    np.testing.assert_allclose(ord_h, 2.0, atol=0.1)
    np.testing.assert_allclose(ord_a[-2:], 1.0, atol=0.15)
    assert np.all(err_a > 5.0 * err_h)
    assert err_a[-1] > 50.0 * err_h[-1]


# --- the assembled matrix --------------------------------------------------------------------------

@pytest.mark.parametrize("averaging", FACE_AVERAGES)
def test_assembled_matrix_is_symmetric_m_matrix(averaging):
    rng = np.random.default_rng(0)
    ny, nx = 7, 11
    a = np.exp(rng.normal(size=(ny, nx)) * 2.0)
    A = assemble(a, averaging)
    assert A.shape == ((ny - 2) * (nx - 2),) * 2
    dense = A.toarray()
    np.testing.assert_allclose(dense, dense.T, rtol=1e-14, atol=0)
    diag = np.diag(dense)
    off = dense - np.diag(diag)
    assert np.all(diag > 0)
    assert np.all(off <= 0)
    assert np.all(np.count_nonzero(dense, axis=1) <= 5)
    row_sums = dense.sum(axis=1)
    assert np.all(row_sums >= -1e-9 * diag)
    # rows of nodes next to the boundary keep the boundary link: strictly diagonally dominant
    touching = np.zeros((ny - 2, nx - 2), bool)
    touching[0, :] = touching[-1, :] = touching[:, 0] = touching[:, -1] = True
    assert np.all(row_sums.reshape(ny - 2, nx - 2)[touching] > 0)
    assert np.all(np.abs(row_sums.reshape(ny - 2, nx - 2)[~touching]) <= 1e-9 * diag.max())
    assert np.linalg.eigvalsh(dense).min() > 0


def test_assembled_matrix_for_constant_coefficient_is_scaled_laplacian():
    ny, nx = 6, 9
    A = assemble(np.full((ny, nx), 3.0))
    hx2, hy2 = (nx - 1) ** -2.0, (ny - 1) ** -2.0

    def second_difference(m: int, h2: float) -> sp.spmatrix:
        return sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1]) / h2

    laplacian = sp.kron(sp.identity(ny - 2), second_difference(nx - 2, hx2)) + \
        sp.kron(second_difference(ny - 2, hy2), sp.identity(nx - 2))  # row-major, x fastest
    np.testing.assert_allclose(A.toarray(), 3.0 * laplacian.toarray(), rtol=1e-13)


def test_face_coefficients_means():
    a = np.array([[1.0, 3.0], [1.0, 3.0]])
    east, north = face_coefficients(a, "harmonic")
    np.testing.assert_allclose(east, [[1.5], [1.5]])
    np.testing.assert_allclose(north, [[1.0, 3.0]])
    east, north = face_coefficients(a, "arithmetic")
    np.testing.assert_allclose(east, [[2.0], [2.0]])
    np.testing.assert_allclose(north, [[1.0, 3.0]])


# --- batching and interface ------------------------------------------------------------------------

def random_batch(n: int, ny: int = 20, nx: int = 24, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, ny, nx)) > 0.5, 12.0, 3.0)


def test_batch_equals_per_sample_solves():
    a = random_batch(4)
    rng = np.random.default_rng(2)
    f = rng.random(a.shape) + 0.5
    batch = solve_darcy(a, f)
    assert batch.shape == a.shape and batch.dtype == np.float64
    for i in range(len(a)):
        np.testing.assert_array_equal(batch[i], solve_darcy(a[i], f[i]))


@pytest.mark.parametrize("linear_solver", LINEAR_SOLVERS)
def test_thread_count_does_not_change_the_answer(linear_solver):
    a = random_batch(5)
    u1 = solve_darcy(a, workers=1, linear_solver=linear_solver)
    u2 = solve_darcy(a, workers=2, linear_solver=linear_solver)
    if linear_solver == "direct":  # SuperLU is deterministic: bit-identical
        np.testing.assert_array_equal(u1, u2)
    else:  # pyamg's setup estimates a spectral radius from a random vector: equal to the tolerance
        np.testing.assert_allclose(u1, u2, rtol=1e-8, atol=1e-14)


def test_scalar_forcing_equals_constant_array():
    a = random_batch(3)
    np.testing.assert_array_equal(solve_darcy(a, 2.5), solve_darcy(a, np.full(a.shape, 2.5)))
    np.testing.assert_array_equal(solve_darcy(a, 2.5), solve_darcy(a, np.full(a.shape[1:], 2.5)))
    # linear in f
    np.testing.assert_allclose(solve_darcy(a, 2.5), 2.5 * solve_darcy(a), rtol=1e-12)


def test_single_sample_shape_boundary_and_positivity():
    a = random_batch(1)[0]
    u = solve_darcy(a)
    assert u.shape == a.shape
    assert np.all(u[0, :] == 0) and np.all(u[-1, :] == 0) and np.all(u[:, 0] == 0) and np.all(u[:, -1] == 0)
    assert np.all(u[1:-1, 1:-1] > 0)  # discrete maximum principle for f > 0


def test_direct_and_amg_agree():
    a = random_batch(2, 40, 40)
    np.testing.assert_allclose(solve_darcy(a, linear_solver="amg", tol=1e-12),
                               solve_darcy(a, linear_solver="direct"), rtol=1e-8, atol=1e-12)


def test_float32_input_is_accepted():
    a = random_batch(2)
    np.testing.assert_allclose(solve_darcy(a.astype(np.float32)), solve_darcy(a), rtol=1e-12)


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_coefficient_names_the_sample(bad):
    a = random_batch(4)
    a[2, 5, 7] = bad
    with pytest.raises(ValueError, match=r"sample 2\b"):
        solve_darcy(a)


def test_bad_single_coefficient():
    a = np.ones((9, 9))
    a[4, 4] = np.nan
    with pytest.raises(ValueError, match="sample 0"):
        solve_darcy(a)


@pytest.mark.parametrize("shape", [(10,), (2, 2, 10, 10), (2, 10), (2, 10, 2)])
def test_wrong_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="shape"):
        solve_darcy(np.ones(shape))


def test_nonfinite_forcing_is_rejected():
    f = np.ones((9, 9))
    f[3, 3] = np.nan
    with pytest.raises(ValueError, match="f"):
        solve_darcy(np.ones((9, 9)), f)


def test_unknown_averaging_and_linear_solver():
    a = np.ones((9, 9))
    with pytest.raises(ValueError, match=r"averaging.*harmonic.*arithmetic.*'geometric'"):
        solve_darcy(a, averaging="geometric")
    with pytest.raises(ValueError, match=r"linear_solver.*direct.*amg.*'cg'"):
        solve_darcy(a, linear_solver="cg")
    with pytest.raises(ValueError, match="averaging"):
        assemble(a, "geometric")
