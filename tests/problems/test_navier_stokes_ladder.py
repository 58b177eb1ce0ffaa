"""The ``navier-stokes`` solver ladder: every rung runs the reference's code path and returns the
reference's shapes, coarse grids converge to the reference as they refine, the transfer is
Fourier truncation in and zero padding out (checked against an independent numpy resampling),
the full grid reproduces the reference exactly, refused grids carry the resolution check's note,
input segments are served, and a blow-up is raised at solve time."""
from __future__ import annotations

import numpy as np
import pytest

from sciops import problems
from sciops.problems.navier_stokes import MAX_COURANT
from sciops.solvers.navier_stokes import BlowUpError

SHORT = dict(t_final=0.5, record_every=0.25)


def ns(**kw):
    return problems.get("navier-stokes", **{**SHORT, **kw})


def numpy_resample(w: np.ndarray, n: int) -> np.ndarray:
    """Independent trigonometric resampling on the full DFT grid (modes |k_i| < min(m, n) / 2)."""
    m = w.shape[-1]
    c = np.fft.fft2(w) / m ** 2
    k = (min(m, n) + 1) // 2
    src, dst = np.r_[0:k, m - k + 1:m], np.r_[0:k, n - k + 1:n]
    out = np.zeros(w.shape[:-2] + (n, n), complex)
    out[..., dst[:, None], dst[None, :]] = c[..., src[:, None], src[None, :]]
    return np.fft.ifft2(out * n ** 2).real


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_rungs_run_label_themselves_and_return_the_reference_shapes():
    p = ns(resolution=32, solve_resolution=32)
    rungs = {r.label: r for r in p.ladder()}
    # 3 steps per record at CFL <= 0.5; the CFL limit allows 2: dt x1.5, the largest stable whole fraction
    assert list(rungs) == ["solve 8^2", "solve 16^2", "rk2cn", "dt x1.5 (stability limit)"]
    w0 = p.sample_inputs(2, seed=1)
    ref = p.solve(w0)
    for rung in rungs.values():
        if rung.solve is None:
            continue
        out = rung.solve(w0)
        assert out.shape == ref.shape and out.dtype == ref.dtype, rung.label
        assert rung.solve(w0[0]).shape == ref.shape[1:], rung.label
        assert 0 < rel(out, ref) < 0.1, rung.label  # a different configuration, close to the reference
    # the stability-limit rung's dt is at the estimated CFL limit, not beyond it
    dt = rungs["dt x1.5 (stability limit)"].solve.keywords["dt"]
    assert dt * p.scales["velocity"] / (p.length / 32) <= MAX_COURANT


def test_grids_the_resolution_check_refuses_are_rungs_with_its_note():
    rungs = {r.label: r for r in ns(resolution=64, solve_resolution=64).ladder()}
    # 5 steps per record at CFL <= 0.5, 3 at the CFL limit
    assert [k for k in rungs if k.startswith("dt")] == ["dt x1.67 (stability limit)"]
    finer = {r.label for r in ns(resolution=64, solve_resolution=64, dt=0.0125).ladder()}  # 20 steps per record
    assert {"dt x2", "dt x4", "dt x6.67 (stability limit)"} <= finer
    refused = rungs["solve 8^2"]
    assert refused.solve is None and "solve_resolution=8 is too coarse for viscosity=0.001" in refused.note
    assert rungs["solve 16^2"].solve is not None and rungs["solve 32^2"].solve is not None
    unchecked = {r.label: r for r in ns(resolution=64, solve_resolution=64, resolution_check="off").ladder()}
    assert unchecked["solve 8^2"].solve is not None
    assert "rk2cn" not in {r.label for r in ns(stepper="rk2cn").ladder()}


def test_coarse_grid_rungs_converge_to_the_reference():
    p = ns(resolution=64, solve_resolution=64, viscosity=1e-2)
    rungs = {r.label: r for r in p.ladder()}
    w0 = p.sample_inputs(2, seed=5)
    ref = p.solve(w0)
    errors = [rel(rungs[f"solve {n}^2"].solve(w0), ref) for n in (8, 16, 32)]
    # spectral convergence of a smooth flow: each halving of the grid spacing gains well over 2x
    assert errors[0] > 4 * errors[1] > 16 * errors[2], errors
    assert errors[2] < 1e-3


def test_the_transfer_is_truncation_in_and_zero_padding_out_and_exact_at_full_resolution():
    p = ns(resolution=32, solve_resolution=32, resolution_check="off")
    w0 = p.sample_inputs(2, seed=2)
    np.testing.assert_array_equal(p.solve_with(w0, n=32), p.solve(w0))  # full grid: the reference itself
    rung = next(r for r in p.ladder() if r.label == "solve 16^2")
    coarse = ns(resolution=16, solve_resolution=16, resolution_check="off", dt=rung.solve.keywords["dt"])
    expected = numpy_resample(coarse.solve(numpy_resample(w0.astype(np.float64), 16)).astype(np.float64), 32)
    np.testing.assert_allclose(rung.solve(w0), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # records of the coarse solve hold no mode the coarse grid cannot: truncating them loses nothing
    out = rung.solve(w0).astype(np.float64)
    np.testing.assert_allclose(numpy_resample(numpy_resample(out, 16), 32), out, rtol=0, atol=1e-5 * np.abs(out).max())


def test_rungs_take_input_segments_and_integrate_from_their_last_state():
    pk = ns(resolution=32, solve_resolution=32, input_steps=2)
    p1 = ns(resolution=32, solve_resolution=32)
    segment = pk.sample_inputs(2, seed=3)
    for rk, r1 in zip(pk.ladder(), p1.ladder()):
        assert rk.label == r1.label
        if rk.solve is not None:
            np.testing.assert_array_equal(rk.solve(segment), r1.solve(segment[:, -1]))


def test_a_rung_that_blows_up_raises_at_solve_time():
    p = ns(resolution=32, solve_resolution=32)
    rung = next(r for r in p.ladder() if r.label.endswith("(stability limit)"))
    with pytest.raises(BlowUpError, match="sample 1"):
        rung.solve(p.sample_inputs(2, seed=0) * np.float32([1.0, 300.0])[:, None, None])
    with pytest.raises(ValueError, match="stepper='euler' is not valid"):
        p.solve_with(p.sample_inputs(1, seed=0), stepper="euler")


def test_records_beyond_the_horizon_take_the_longer_flows_time_step_and_checks():
    p = ns(viscosity=1e-4, forcing="fno", resolution=32, solve_resolution=64, t_final=1.0, record_every=0.5)
    assert p.with_records(1).solver_info["dt"] == p.solver_info["dt"]
    longer = p.with_records(8)  # the forcing raises the velocity scale over the longer flow: a smaller dt
    assert longer.solver_info["velocity_estimate"] > p.solver_info["velocity_estimate"]
    assert longer.solver_info["dt"] < p.solver_info["dt"]
    assert longer.with_records(1).solver_info["dt"] == longer.solver_info["dt"]
    with pytest.raises(ValueError, match="solve_resolution=64 is too coarse"):
        p.with_records(40)  # the vorticity scale of 20 time units needs a finer grid
