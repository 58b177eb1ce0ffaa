"""Specification of the 2D vorticity Navier-Stokes solver (sciops.solvers.navier_stokes).

- Taylor-Green: w = 2k sin(kx) sin(ky) makes u.grad(w) vanish, so w decays as exp(-2 nu k^2 t);
  both steppers reproduce it to relative 1e-6 at t = 1 in float64.
- Temporal order, measured against a dt / 8 reference of the same flow (errors halve by 2^p):
  RK2-CN is second order; the Carpenter-Kennedy RK4-CN is fourth order when the implicit part is
  absent (nu = 0, the explicit part is the whole problem) and second order as soon as viscosity
  acts, because each stage treats nu lap by Crank-Nicolson (the IMEX scheme is formally second
  order; at low viscosity its error constant is far smaller than RK2-CN's). Measured on this
  machine: RK2-CN nu=0.01 orders 2.00 / 2.00; RK4-CN nu=0: 4.00 / 4.00; RK4-CN nu=0.1:
  2.01 / 2.02; backward-forward Euler 1.01 / 1.00. (RK4-CN at nu=0.01 sits in the transition: 2.56 / 1.97.)
- Spectral identities: 2/3-rule mask removes all aliasing of quadratic products; the velocity
  is divergence-free and its curl is the vorticity to round-off.
- Physics: energy and enstrophy decay monotonically without forcing.
- Robustness: blow-up names the sample and time; float32 agrees with float64; a batch equals
  its samples run one by one.
- torch-cfd 0.2.6 (optional): the same flow agrees to relative 1e-5 (measured ~1e-13).
"""
from __future__ import annotations

import math

import pytest
import torch

from sciops.solvers import ns_diagnostics as diag
from sciops.solvers import spectral
from sciops.solvers.navier_stokes import BlowUpError, NavierStokes2D, simulate, stable_time_step


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def smooth_vorticity(n: int, seed: int, kmax: float = 4.0, batch: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Random zero-mean vorticity with modes 0 < |m| <= kmax, unit standard deviation, (batch, n, n)."""
    g = torch.Generator().manual_seed(seed)
    my, mx = spectral.integer_wavenumbers(n)
    keep = ((my ** 2 + mx ** 2).sqrt() <= kmax) & ((my ** 2 + mx ** 2) > 0)
    shape = (batch, n, n // 2 + 1)
    c = keep * torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                             torch.randn(shape, generator=g, dtype=torch.float64))
    w = torch.fft.irfft2(c, s=(n, n))
    return (w / w.std(dim=(-2, -1), keepdim=True)).to(dtype)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------------------ exact decay
@pytest.mark.parametrize("stepper", ["crank_nicolson_rk2", "crank_nicolson_rk4"])
@pytest.mark.parametrize("length, k, nu, n", [(1.0, 2 * math.pi * 2, 1e-3, 32), (2 * math.pi, 3.0, 0.01, 32)])
def test_taylor_green_decays_exactly(stepper, length, k, nu, n):
    x = spectral.grid_coordinates(n, length, dtype=torch.float64)
    w0 = (2 * k * torch.sin(k * x)[None, :] * torch.sin(k * x)[:, None])[None]
    eq = NavierStokes2D(n, nu, length=length, forcing="none")
    w_hat = eq.to_spectral(w0)
    assert float(eq.explicit_terms(w_hat).abs().max()) < 1e-10 * float(w_hat.abs().max())
    out = simulate(w0, 1.0, 1e-2, viscosity=nu, forcing="none", length=length, stepper=stepper)
    exact = w0 * math.exp(-2 * nu * k ** 2 * 1.0)
    assert relative_error(out.vorticity[:, -1], exact) <= 1e-6


# ------------------------------------------------------------------------------------ time order
@pytest.mark.parametrize("stepper, nu, dts, order", [
    ("crank_nicolson_rk2", 0.01, (0.1, 0.05, 0.025), 2.0),
    ("crank_nicolson_rk4", 0.0, (0.1, 0.05, 0.025), 4.0),   # explicit part only: Carpenter-Kennedy RK4
    ("crank_nicolson_rk4", 0.1, (0.1, 0.05, 0.025), 2.0),   # viscosity acts: CN limits the IMEX order
    ("backward_forward_euler", 0.01, (0.02, 0.01, 0.005), 1.0),
])
def test_observed_temporal_order(stepper, nu, dts, order):
    w0 = smooth_vorticity(32, seed=0)
    kw = dict(viscosity=nu, forcing="none", length=2 * math.pi)
    ref = simulate(w0, 1.0, dts[-1] / 8, stepper="crank_nicolson_rk4", **kw).vorticity[:, -1]
    errors = [relative_error(simulate(w0, 1.0, dt, stepper=stepper, **kw).vorticity[:, -1], ref) for dt in dts]
    observed = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    assert all(abs(p - order) <= 0.2 for p in observed), (errors, observed)


# ------------------------------------------------------------------------------------ spectral
@pytest.mark.parametrize("n", [24, 32, 33, 64])
def test_dealias_mask_removes_aliasing_of_products(n):
    mask = spectral.dealias_mask(n, dtype=torch.float64)
    my, mx = spectral.integer_wavenumbers(n)
    kmax = (n - 1) // 3
    assert torch.equal(mask.bool(), (my.abs() <= kmax) & (mx.abs() <= kmax))
    # Two fields band-limited to the mask: their product evaluated on the n-grid and
    # truncated must equal the exact product (computed on a 2n-grid) truncated.
    a_hat, b_hat = (torch.fft.rfft2(smooth_vorticity(n, seed=s, kmax=2 * n)[0]) * mask for s in (1, 2))
    product_hat = torch.fft.rfft2(torch.fft.irfft2(a_hat, s=(n, n)) * torch.fft.irfft2(b_hat, s=(n, n)))

    def pad(c):  # zero-pad rfft2 coefficients from n to 2n (values unchanged up to the 4x scaling)
        out = torch.zeros(2 * n, n + 1, dtype=c.dtype)
        h = (n + 1) // 2
        out[:h, : n // 2 + 1] = c[:h]
        out[-(n - h):, : n // 2 + 1] = c[h:]
        return out * 4

    fine = torch.fft.rfft2(torch.fft.irfft2(pad(a_hat), s=(2 * n, 2 * n)) * torch.fft.irfft2(pad(b_hat), s=(2 * n, 2 * n)))
    h = (n + 1) // 2
    exact = torch.cat([fine[:h, : n // 2 + 1], fine[-(n - h):, : n // 2 + 1]]) / 4
    assert torch.allclose(product_hat * mask, exact * mask, atol=1e-9 * float(exact.abs().max()))
    # one more mode per direction lets aliases in
    wider = ((my.abs() <= kmax + 1) & (mx.abs() <= kmax + 1)).double()
    a2, b2 = (torch.fft.rfft2(smooth_vorticity(n, seed=s, kmax=2 * n)[0]) * wider for s in (1, 2))
    p2 = torch.fft.rfft2(torch.fft.irfft2(a2, s=(n, n)) * torch.fft.irfft2(b2, s=(n, n)))
    f2 = torch.fft.rfft2(torch.fft.irfft2(pad(a2), s=(2 * n, 2 * n)) * torch.fft.irfft2(pad(b2), s=(2 * n, 2 * n)))
    e2 = torch.cat([f2[:h, : n // 2 + 1], f2[-(n - h):, : n // 2 + 1]]) / 4
    assert not torch.allclose(p2 * wider, e2 * wider, atol=1e-6 * float(e2.abs().max()))


@pytest.mark.parametrize("n", [32, 33])
def test_velocity_is_divergence_free_and_its_curl_is_the_vorticity(n):
    w = torch.randn(2, n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = w - w.mean(dim=(-2, -1), keepdim=True)  # all modes resolved by the grid
    # The Nyquist mode cos(pi x / h) has no representable odd derivative (spectral.py zeroes it),
    # so for even n the identity holds for fields without Nyquist content; odd n has none.
    my, mx = spectral.integer_wavenumbers(n)
    no_nyquist = ((2 * my.abs() != n) & (2 * mx.abs() != n)).double()
    w = torch.fft.irfft2(torch.fft.rfft2(w) * no_nyquist, s=(n, n))
    for length in (1.0, 2 * math.pi):
        u, v = spectral.velocity(w, length)
        assert float(spectral.divergence(u, v, length).abs().max()) < 1e-13 * float(w.abs().max()) * n
        assert float((spectral.curl(u, v, length) - w).abs().max()) < 1e-13 * float(w.abs().max()) * n
    eq = NavierStokes2D(n, 1e-3, length=1.0)
    u, v = spectral.velocity(w, 1.0)
    assert torch.allclose(eq.velocity(eq.to_spectral(w)), torch.stack([u, v], dim=-3), atol=1e-12)


def test_energy_spectrum_sums_to_kinetic_energy():
    w = smooth_vorticity(32, seed=4, kmax=10, batch=2)
    k, spectrum = diag.energy_spectrum(w, 2 * math.pi)
    assert spectrum.shape == (2, k.numel())
    assert torch.allclose(spectrum.sum(-1), diag.kinetic_energy(w, 2 * math.pi), rtol=1e-12)
    assert float(spectrum[:, 11:].abs().max()) < 1e-30  # band-limited to |m| <= 10
    assert torch.allclose(diag.vorticity_correlation(w, 3 * w), torch.ones(2, dtype=torch.float64))


# ------------------------------------------------------------------------------------ physics
def test_unforced_energy_and_enstrophy_decay_monotonically():
    w0 = smooth_vorticity(32, seed=5, kmax=8, batch=2)
    out = simulate(w0, 2.0, 0.02, record_every=0.1, viscosity=1e-3, forcing="none", length=2 * math.pi)
    energy = diag.kinetic_energy(out.vorticity, 2 * math.pi)
    enstrophy = diag.enstrophy(out.vorticity)
    assert out.vorticity.shape == (2, 21, 32, 32) and out.times.shape == (21,)
    assert bool((energy.diff(dim=1) < 0).all()) and bool((enstrophy.diff(dim=1) < 0).all())
    # dE/dt = -2 nu Z (the nonlinear term conserves E): check at the midpoints
    rate = energy.diff(dim=1) / 0.1
    midpoint_z = 0.5 * (enstrophy[:, 1:] + enstrophy[:, :-1])
    assert torch.allclose(rate, -2e-3 * midpoint_z, rtol=1e-2)


# ------------------------------------------------------------------------------------ robustness
def test_cfl_violation_names_sample_and_time():
    w0 = smooth_vorticity(32, seed=6, batch=3)
    w0[2] *= 15.0  # CFL number about 2 for dt = 0.05, the others about 0.15
    with pytest.raises(BlowUpError, match=r"sample 2 at t = 0\.05:.*CFL number .* exceeds") as info:
        simulate(w0, 1.0, 0.05, viscosity=1e-3, forcing="none", length=2 * math.pi, check_every=1)
    assert isinstance(info.value, ValueError) and info.value.sample == 2 and info.value.time == pytest.approx(0.05)


def test_non_finite_state_names_sample_and_time():
    w0 = smooth_vorticity(16, seed=7, batch=2, dtype=torch.float32)
    w0[1] *= 1e3  # wildly unstable time step for sample 1 only; the CFL check is switched off
    with pytest.raises(BlowUpError, match=r"sample 1 at t = 0\.1: non-finite"):
        simulate(w0, 1.0, 0.01, viscosity=1e-3, forcing="none", length=1.0, max_courant=math.inf)
    bad = w0.clone()
    bad[1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sample 1"):
        simulate(bad, 1.0, 0.01)


def test_float32_agrees_with_float64():
    w0 = smooth_vorticity(32, seed=8, batch=2)
    kw = dict(viscosity=1e-3, forcing="fno", length=1.0)
    w64 = simulate(w0, 1.0, 1e-2, **kw).vorticity[:, -1]
    out32 = simulate(w0.float(), 1.0, 1e-2, **kw).vorticity
    assert out32.dtype == torch.float32
    assert relative_error(out32[:, -1].double(), w64) < 2e-5  # measured 3.9e-6 (100 steps of float32 round-off)


def test_batch_equals_samples_one_by_one():
    w0 = smooth_vorticity(32, seed=9, batch=3)
    kw = dict(viscosity=1e-3, forcing="kolmogorov", record_times=[0.25, 0.5])
    batch = simulate(w0, None, 0.05, **kw).vorticity
    single = torch.stack([simulate(w, None, 0.05, **kw).vorticity for w in w0])
    assert batch.shape == (3, 2, 32, 32)
    assert torch.allclose(batch, single, rtol=0, atol=1e-13)


def test_time_step_helper_and_record_times():
    w0 = smooth_vorticity(32, seed=10)
    eq = NavierStokes2D(32, 1e-3, length=1.0)
    speed = float(eq.velocity(eq.to_spectral(w0)).abs().sum(-3).amax())
    dt = stable_time_step(speed, eq.dx, max_courant=0.5)
    assert float(eq.courant_number(eq.to_spectral(w0), dt)) == pytest.approx(0.5)
    out = simulate(w0, 1.0, 0.03, record_every=0.25, length=1.0)  # dt shortened to land on records
    assert torch.allclose(out.times, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        simulate(torch.zeros(2, 16, 8), 1.0, 0.1)
    with pytest.raises(ValueError, match="forcing must be one of"):
        simulate(w0, 1.0, 0.1, forcing="bogus")
    with pytest.raises(ValueError, match="stepper must be one of"):
        simulate(w0, 1.0, 0.1, stepper="rk45")


# ------------------------------------------------------------------------------------ torch-cfd
@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch-cfd builds its grids in the default dtype
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("stepper", ["crank_nicolson_rk4", "crank_nicolson_rk2"])
@pytest.mark.parametrize("flow", ["fno", "kolmogorov"])
def test_agrees_with_torch_cfd(stepper, flow, float64_default):
    """Same initial vorticity, forcing, viscosity, drag, stepper and 64^2 grid as torch-cfd 0.2.6.

    What has to match: torch-cfd arrays are indexed [x, y] (ours [y, x]: transpose); its
    forcings are evaluated at offset (0, 0), i.e. on our grid x_j = j L / n; FNO forcing is
    ``SinCosForcing(scale=0.1, diam=1, wave_number=1, vorticity=True)``, Kolmogorov is the
    velocity forcing ``KolmogorovForcing(diam=2 pi, wave_number=4)`` with ``drag=0.1`` (implicit
    in both codes); its 2/3 filter equals ours at n = 64; steppers ``RK4CrankNicolsonStepper()``
    (Carpenter-Kennedy rounded to 10-13 digits) and ``IMEXStepper(order=2)`` (Heun + CN).
    """
    pytest.importorskip("torch_cfd")
    from torch_cfd import forcings, grids
    from torch_cfd.spectral import IMEXStepper, NavierStokes2DSpectral, RK4CrankNicolsonStepper, brick_wall_filter_2d

    n, nu, dt = 64, 1e-3, 1e-2
    length = 1.0 if flow == "fno" else 2 * math.pi
    grid = grids.Grid((n, n), domain=((0, length), (0, length)))
    assert torch.equal(brick_wall_filter_2d(grid).bool(), spectral.dealias_mask(n).bool())
    if flow == "fno":
        forcing, drag = forcings.SinCosForcing(grid=grid, scale=0.1, diam=1.0, wave_number=1, vorticity=True), 0.0
    else:
        forcing, drag = forcings.KolmogorovForcing(grid=grid, diam=length, wave_number=4, scale=1.0), 0.1
    step_fn = RK4CrankNicolsonStepper() if stepper == "crank_nicolson_rk4" else IMEXStepper(order=2)
    theirs = NavierStokes2DSpectral(viscosity=nu, grid=grid, drag=drag, smooth=True, forcing_fn=forcing, step_fn=step_fn)

    w0 = smooth_vorticity(n, seed=11, kmax=8, batch=2)
    w_hat = torch.fft.rfft2(w0.transpose(-1, -2))
    with torch.no_grad():
        for _ in range(100):
            w_hat, _ = theirs.step(w_hat, dt)
    reference = torch.fft.irfft2(w_hat, s=(n, n)).transpose(-1, -2)
    ours = simulate(w0, 1.0, dt, viscosity=nu, forcing=flow, length=length, drag=drag, stepper=stepper).vorticity[:, -1]
    assert relative_error(ours, reference) <= 1e-5
    assert relative_error(ours, w0) > 1e-2  # the flow did evolve


def test_forcings_are_the_published_ones():
    n = 32
    # Kolmogorov (Kochkov et al. 2021): body force (sin(4 y), 0) on [0, 2 pi)^2 -> curl, drag 0.1
    s = spectral.grid_coordinates(n, 2 * math.pi, dtype=torch.float64)
    fx = torch.sin(4 * s)[:, None].expand(n, n)
    eq = NavierStokes2D(n, 1e-3, forcing="kolmogorov")
    assert eq.length == pytest.approx(2 * math.pi) and eq.drag == pytest.approx(0.1)
    assert torch.allclose(eq.forcing, spectral.curl(fx, torch.zeros_like(fx), 2 * math.pi), atol=1e-12)
    # FNO (Li et al. 2021): 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)) on [0, 1)^2, no drag
    x = spectral.grid_coordinates(n, 1.0, dtype=torch.float64)
    phase = 2 * math.pi * (x[None, :] + x[:, None])
    eq = NavierStokes2D(n, 1e-3, forcing="fno")
    assert eq.length == 1.0 and eq.drag == 0.0
    assert torch.allclose(eq.forcing, 0.1 * (torch.sin(phase) + torch.cos(phase)), atol=1e-14)
    # dt=None picks the CFL-0.5 step of the initial state
    w0 = smooth_vorticity(n, seed=12)
    out = simulate(w0, 0.1, None, viscosity=1e-3, forcing="none", length=2 * math.pi, max_courant=0.55)
    assert out.vorticity.shape == (1, 2, n, n)
