"""Specification of the ``navier-stokes`` problem: determinism per sample, the stored trajectory as
the spectral truncation of the fine solve, exact decay of a single Fourier mode, the FNO random
field's spectrum, McWilliams normalisation, validation messages, blow-up naming the dataset
sample, and the dataset round trip through ``sciops generate`` with the time coordinate."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sciops import problems
from sciops.cli import main
from sciops.datasets import describe, open_dataset, open_xarray
from sciops.solvers.navier_stokes import BlowUpError, simulate
from sciops.solvers.spectral import fourier_resample

SMALL = dict(resolution=16, solve_resolution=32, t_final=0.5, record_every=0.25)


def small(**kw):
    return problems.get("navier-stokes", **{**SMALL, **kw})


def numpy_resample(w: np.ndarray, n: int) -> np.ndarray:
    """Independent trigonometric resampling on the full DFT grid (modes |k_i| < min(m, n) / 2)."""
    m = w.shape[-1]
    c = np.fft.fft2(w) / m ** 2
    k = (min(m, n) + 1) // 2
    idx_src = np.r_[0:k, m - k + 1:m]
    idx_dst = np.r_[0:k, n - k + 1:n]
    out = np.zeros(w.shape[:-2] + (n, n), complex)
    out[..., idx_dst[:, None], idx_dst[None, :]] = c[..., idx_src[:, None], idx_src[None, :]]
    return np.fft.ifft2(out * n ** 2).real


def test_contract_shapes_grid_and_fields():
    p = small()
    assert p.geometry == "periodic" and p.time_steps == 2
    assert p.fields["w0"].dims == ("y", "x") and p.fields["w0"].role == "input"
    assert p.fields["w"].dims == ("t", "y", "x") and p.fields["w"].role == "output"
    np.testing.assert_allclose(p.grid["t"], [0.25, 0.5])
    np.testing.assert_allclose(p.grid["x"], np.arange(16) / 16)   # FNO forcing: L = 1, x_i = i L / n
    w0 = p.sample_inputs(3, seed=1)
    assert w0.shape == (3, 16, 16) and w0.dtype == np.float32
    threads = torch.get_num_threads()
    w = p.solve(w0)
    assert torch.get_num_threads() == threads  # small grids solve single-threaded, then restore
    assert w.shape == (3, 2, 16, 16) and w.dtype == np.float32
    assert p.solve(w0[0]).shape == (2, 16, 16)
    # the input state is not repeated: the first record is w(0.25), not w0
    assert np.abs(w[:, 0] - w0).max() > 1e-3 * np.abs(w0).max()


@pytest.mark.parametrize("warmup", [0.0, 0.25])
def test_sample_i_alone_equals_serial_and_seeds_matter(warmup):
    p = small(warmup=warmup)
    x, y, seconds = p.generate(4, seed=7)
    assert seconds > 0
    x2, y2, _ = p.generate(4, seed=7)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    xi, yi, _ = p.generate(1, seed=7, start=2)
    np.testing.assert_array_equal(xi[0], x[2])
    np.testing.assert_array_equal(yi[0], y[2])
    other = p.sample_inputs(1, seed=8)
    assert not np.allclose(other[0], x[0]) and not np.allclose(x[0], x[1])
    # solve is a pure function of the stored input: it reproduces the stored trajectory exactly
    np.testing.assert_array_equal(p.solve(x), y)


def test_warmup_input_is_the_raw_field_integrated_for_warmup():
    raw, warm = small().sample_inputs(2, seed=3), small(warmup=0.25).sample_inputs(2, seed=3)
    np.testing.assert_allclose(warm, small().solve(raw)[:, 0], rtol=0, atol=1e-6)


def test_stored_trajectory_is_the_spectral_truncation_of_the_fine_solution():
    p = small(solve_resolution=48)  # not a multiple of 16: truncation, not injection
    w0, w, _ = p.generate(2, seed=4)
    fine0 = torch.as_tensor(numpy_resample(w0.astype(np.float64), 48))
    fine = simulate(fine0, dt=p.dt, record_times=[0.25, 0.5], viscosity=1e-3, forcing="fno",
                    stepper="crank_nicolson_rk4").vorticity.numpy()
    expected = numpy_resample(fine, 16)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6 * scale)
    # the fine solution has content the stored grid cannot hold, so the truncation is not trivial
    assert np.abs(numpy_resample(expected, 48) - fine).max() > 1e-7 * scale


def test_fourier_resample_interpolates_trigonometric_polynomials_exactly():
    x = np.arange(12) / 12
    f = lambda x, y: np.sin(2 * np.pi * (3 * x - 2 * y)) + 0.5 * np.cos(2 * np.pi * 5 * y)  # noqa: E731
    coarse = f(x[None, :], x[:, None])
    xf = np.arange(40) / 40
    np.testing.assert_allclose(fourier_resample(coarse, 40), f(xf[None, :], xf[:, None]), atol=1e-12)
    np.testing.assert_allclose(fourier_resample(fourier_resample(coarse, 40), 12), coarse, atol=1e-12)
    t = fourier_resample(torch.as_tensor(coarse), 40)
    assert isinstance(t, torch.Tensor) and t.shape == (40, 40)


def test_a_single_fourier_mode_decays_exactly_as_exp_minus_nu_k2_t():
    """Without forcing, u . grad(w) = 0 for w = cos(k . x): w(t) = exp(-nu |k|^2 t) w0 exactly. With
    dt = 1e-3 the Crank-Nicolson error is (nu |k|^2 dt)^3 / 12 per step, about 1e-11 in total."""
    nu, t_final = 0.05, 1.0
    p = problems.get("navier-stokes", forcing="none", viscosity=nu, resolution=32, solve_resolution=32,
                     t_final=t_final, record_every=0.5, dt=1e-3)
    assert p.length == pytest.approx(2 * math.pi)
    x = np.arange(32) * 2 * math.pi / 32
    w0 = np.cos(2 * x[None, :] + 3 * x[:, None])[None].astype(np.float32)
    w = p.solve(w0)
    for j, t in enumerate(p.grid["t"]):
        expected = np.exp(-nu * 13 * t) * w0[0].astype(np.float64)
        assert np.abs(w[0, j] - expected).max() < 2e-7, (t, np.abs(w[0, j] - expected).max())
    # a wrong viscosity would be visible at this tolerance
    assert abs(math.exp(-nu * 13) - math.exp(-1.01 * nu * 13)) > 1e-3


def test_fno_random_field_matches_the_fno_spectrum_and_variance():
    """E|w_k|^2 = 2 tau^(2 alpha - 2) (4 pi^2 |k|^2 + tau^2)^(-alpha) per normalised coefficient
    (FNO's sqrt(2) sigma scaling with sigma = tau^(alpha - 1)), alpha = 2.5, tau = 7."""
    n, samples = 32, 400
    w = problems.get("navier-stokes", resolution=n, solve_resolution=n).sample_inputs(samples, seed=11)
    power = (np.abs(np.fft.fft2(w.astype(np.float64)) / n ** 2) ** 2).mean(0)
    m = np.fft.fftfreq(n, 1 / n)
    lam = 4 * np.pi ** 2 * (m[:, None] ** 2 + m[None, :] ** 2) + 49.0
    keep = (np.abs(m[:, None]) < n / 2) & (np.abs(m[None, :]) < n / 2) & (lam > 49.0)
    expected = 2 * 7.0 ** 3 * lam ** -2.5
    ratio = power[keep] / expected[keep]
    assert abs(ratio.mean() - 1) < 0.02, ratio.mean()        # ~0.3% statistical error; 2x off would fail
    slope = np.polyfit(np.log(lam[keep]), np.log(power[keep]), 1)[0]
    assert abs(slope + 2.5) < 0.05, slope
    assert np.all(power[~keep] < 1e-6 * expected[keep].min())  # zero mean, no Nyquist (float32 rounding only)
    variance = float(w.astype(np.float64).var(axis=(1, 2)).mean())
    assert variance == pytest.approx(expected[keep].sum(), rel=0.1)


def test_mcwilliams_field_has_the_prescribed_energy_and_spectral_peak():
    n = 64
    p = problems.get("navier-stokes", initial_condition="mcwilliams", forcing="none", viscosity=0.05,
                     resolution=n, solve_resolution=n, peak_wavenumber=4.0, energy=0.5)
    w = p.sample_inputs(60, seed=2).astype(np.float64)
    m = np.fft.fftfreq(n, 1 / n)
    k2 = m[:, None] ** 2 + m[None, :] ** 2                      # L = 2 pi: angular = integer wavenumbers
    w_hat = np.fft.fft2(w) / n ** 2
    energy_density = 0.5 * np.abs(w_hat) ** 2 / np.where(k2 > 0, k2, np.inf)   # |u_k|^2 / 2 = |w_k|^2 / (2 k^2)
    np.testing.assert_allclose(energy_density.sum(axis=(1, 2)), 0.5, rtol=1e-5)  # float32 storage
    shells = np.rint(np.sqrt(k2)).astype(int)
    spectrum = np.bincount(shells.ravel(), energy_density.mean(0).ravel())
    assert 3 <= int(np.argmax(spectrum)) <= 5, spectrum[:8]
    assert np.abs(w.mean(axis=(1, 2))).max() < 1e-6


@pytest.mark.parametrize("params, message", [
    ({"viscosity_": 1e-3}, "unknown parameter 'viscosity_'"),
    ({"viscosity": 0.0}, "viscosity=0.0 is out of range"),
    ({"stepper": "euler"}, "rk4cn, rk2cn"),
    ({"initial_condition": "taylor-green"}, "fno, mcwilliams"),
    ({"forcing": "wind"}, "fno, kolmogorov, none"),
    ({"dtype": "float16"}, "float64, float32"),
    ({"resolution": 4}, "resolution=4 is out of range"),
    ({"resolution": 64, "solve_resolution": 32}, "solve_resolution=32 is below resolution=64"),
    ({"t_final": 1.0, "record_every": 0.3}, "not a whole multiple of record_every"),
    ({"viscosity": 1e-4, "t_final": 30.0}, "solve_resolution=64 is too coarse for viscosity=0.0001"),
    ({"dt": 0.5}, "dt=0.5 is unstable at solve_resolution=64"),
])
def test_bad_parameters_are_refused_with_a_message_naming_them(params, message):
    with pytest.raises(ValueError, match=None) as err:
        problems.get("navier-stokes", **params)
    assert message in str(err.value), str(err.value)


def test_unresolved_grid_names_the_resolution_that_passes_and_can_be_overridden():
    with pytest.raises(ValueError) as err:
        problems.get("navier-stokes", viscosity=1e-4, t_final=30.0)
    # k_d = sqrt(W / nu) = 180.6 with W = 0.262 + 0.1 * 30; the smallest n is 3 ceil(k_d L / 2 pi) + 1 = 88
    assert "expected solve_resolution >= 88" in str(err.value)
    problems.get("navier-stokes", viscosity=1e-4, t_final=30.0, solve_resolution=88)
    with pytest.raises(ValueError, match="solve_resolution=87 is too coarse"):
        problems.get("navier-stokes", viscosity=1e-4, t_final=30.0, solve_resolution=87)
    problems.get("navier-stokes", viscosity=1e-4, t_final=30.0, resolution_check="off")
    # the FNO defaults and the paper's settings pass
    assert problems.get("navier-stokes").dt < 0.05
    paper = problems.get("navier-stokes", solve_resolution=256, t_final=50.0)
    assert paper.time_steps == 50 and paper.solver_info["solve_resolution"] == 256
    problems.get("navier-stokes", viscosity=1e-4, t_final=30.0, solve_resolution=256)
    problems.get("navier-stokes", viscosity=1e-5, t_final=20.0, solve_resolution=256)


@pytest.mark.parametrize("w0, message", [
    (np.zeros((2, 16, 8), np.float32), "expects w0 of shape (batch, n, n)"),
    (np.zeros((2, 2, 16, 16), np.float32), "expects w0 of shape (batch, n, n)"),
    (np.zeros((1, 4, 4), np.float32), "n >= 8"),
])
def test_solve_refuses_wrong_shapes(w0, message):
    with pytest.raises(ValueError) as err:
        small().solve(w0)
    assert message in str(err.value)


def test_solve_refuses_non_finite_input_naming_the_sample():
    w0 = small().sample_inputs(3, seed=0)
    w0[2, 3, 4] = np.nan
    with pytest.raises(ValueError, match="w0 of sample 2 contains NaN or Inf"):
        small().solve(w0)


def test_an_empty_batch_gives_an_empty_batch_of_trajectories():
    p = small()
    n = p.params["resolution"]
    assert p.solve(np.zeros((0, n, n), np.float32)).shape == (0, p.time_steps, n, n)


def test_blow_up_names_the_sample_index_in_the_dataset(monkeypatch):
    p = small()
    draw = p.sample_inputs

    def one_wild_sample(n, seed, start=0):
        w0 = draw(n, seed, start)
        if start <= 5 < start + n:
            w0[5 - start] *= 1e4   # far outside the distribution the time step was chosen for
        return w0

    monkeypatch.setattr(p, "sample_inputs", one_wild_sample)
    with pytest.raises(BlowUpError) as err:
        p.generate(4, seed=0, start=4)
    assert err.value.sample == 5 and 0 < err.value.time <= 0.5
    assert "sample 5" in str(err.value) and "t = " in str(err.value)


def test_generate_cli_round_trip_with_time_coordinate(tmp_path, capsys):
    path = tmp_path / "ns.h5"
    argv = ["generate", "navier-stokes", "-n", "3", "-o", str(path), "--seed", "5", "-q"]
    for key, value in SMALL.items():
        argv += ["--param", f"{key}={value}"]
    assert main(argv) == 0, capsys.readouterr()
    ds = open_xarray(path)
    assert ds["w"].dims == ("sample", "t", "y", "x") and ds["w0"].dims == ("sample", "y", "x")
    np.testing.assert_allclose(ds["t"].values, [0.25, 0.5])
    assert ds["t"].attrs["units"] == "1"
    p = small()
    w0, w, _ = p.generate(3, seed=5)
    np.testing.assert_array_equal(ds["w0"].values, w0)
    np.testing.assert_array_equal(ds["w"].values, w)
    assert json.loads(ds.attrs["problem_params"]) == p.params
    assert json.loads(ds.attrs["solver"])["dt"] == pytest.approx(p.dt)
    with open_dataset(path) as data:
        x, y = data.get_batch([0, 2])
        assert x.shape == (2, 1, 16, 16) and y.shape == (2, 1, 2, 16, 16)
        assert data.problem.params == p.params
    info = describe(path)
    assert "dims (sample, t, y, x)" in info and "t  2 points in [0.25, 0.5]" in info


def test_default_input_is_the_single_state_w0():
    p = small()
    assert p.params["input_steps"] == 1 and "t_in" not in p.grid
    assert p.field_shape("w0") == (p.params["resolution"],) * 2
    assert small(input_steps=3).params["input_steps"] == 3


def test_input_segment_is_the_trajectory_before_the_output_records():
    """input_steps = K: the input holds the drawn state and the next K - 1 records, and the output
    the T records after the segment's last state, i.e. records K-1+1 .. K-1+T of one trajectory."""
    k, p1 = 3, small()
    pk = small(input_steps=k)
    assert pk.fields["w0"].dims == ("t_in", "y", "x") and pk.field_shape("w0") == (k, 16, 16)
    np.testing.assert_allclose(pk.grid["t_in"], [-0.5, -0.25, 0.0])
    np.testing.assert_allclose(pk.grid["t"], p1.grid["t"])
    segment, w, _ = pk.generate(2, seed=3)
    assert segment.shape == (2, k, 16, 16) and w.shape == (2, 2, 16, 16)
    start = p1.sample_inputs(2, seed=3)
    np.testing.assert_array_equal(segment[:, 0], start)
    long = small(t_final=1.0).solve(start)  # records 0.25 .. 1.0 from the drawn state
    np.testing.assert_allclose(segment[:, 1:], long[:, :k - 1], rtol=0, atol=1e-6 * np.abs(long).max())
    # the outputs restart from the stored last state (float32, truncated from the 32^2 solve to 16^2):
    # the long run's continuation up to what the storage dropped
    np.testing.assert_allclose(w, long[:, k - 1:k + 1], rtol=0, atol=1e-3 * np.abs(long).max())
    np.testing.assert_array_equal(pk.solve(segment), w)                    # solve is a pure function of it
    np.testing.assert_array_equal(pk.solve(segment[1]), w[1])
    np.testing.assert_array_equal(p1.solve(segment[:, -1]), w)             # of its last state
    with pytest.raises(ValueError, match=r"expects w0 of shape \(batch, 3, n, n\) or \(3, n, n\)"):
        pk.solve(start)
    bad = segment.copy()
    bad[1, 0, 2, 2] = np.inf  # non-finite anywhere in the segment, not only its last state
    with pytest.raises(ValueError, match="w0 of sample 1 contains NaN or Inf"):
        pk.solve(bad)


def test_generate_cli_with_an_input_segment(tmp_path, capsys):
    path = tmp_path / "seg.h5"
    argv = ["generate", "navier-stokes", "-n", "2", "-o", str(path), "--seed", "1", "-q", "--param", "input_steps=2"]
    for key, value in SMALL.items():
        argv += ["--param", f"{key}={value}"]
    assert main(argv) == 0, capsys.readouterr()
    ds = open_xarray(path)
    assert ds["w0"].dims == ("sample", "t_in", "y", "x")
    np.testing.assert_allclose(ds["t_in"].values, [-0.25, 0.0])
    assert ds["t_in"].attrs["units"] == ds["t"].attrs["units"] == "1"
    with open_dataset(path) as data:
        x, y = data.get_batch([0, 1])
        assert x.shape == (2, 1, 2, 16, 16) and y.shape == (2, 1, 2, 16, 16)
        assert data.problem.input_steps == 2


def test_diagnostics_are_the_closed_forms_of_a_single_mode():
    """w = sin(kappa x): enstrophy (1/2)<w^2> = 1/4 and kinetic energy (1/2)<|u|^2> = 1 / (4 kappa^2)."""
    problem = problems.get("navier-stokes", resolution=16, solve_resolution=16, t_final=2.0)
    n, length = 16, problem.length
    x = np.arange(n) * length / n
    kappa = 2 * np.pi * 3 / length
    w = np.broadcast_to(np.sin(kappa * x)[None, :], (n, n))[None, None].repeat(2, axis=1)  # (1, 2, n, n)
    d = problem.diagnostics({"w": w})
    np.testing.assert_allclose(d["enstrophy"], 0.25, rtol=1e-12)
    np.testing.assert_allclose(d["kinetic_energy"], 0.25 / kappa ** 2, rtol=1e-12)
