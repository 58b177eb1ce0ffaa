"""Initial conditions of the shallow-water solver (``solvers.shallow_water``), as spectral states.

Every function takes the :class:`~sciops.solvers.shallow_water.ShallowWaterSphere` whose grid,
truncation, dtype and device the state is for, and returns a spectral state (3, lmax, mmax)
(or (n, 3, lmax, mmax) for :func:`random_balanced`) of (Phi, zeta, delta).

``williamson2``   Williamson et al. (1992) test case 2, global steady state nonlinear zonal
                  geostrophic flow: u = u0 (cos lat cos a + cos lon sin lat sin a),
                  v = -u0 sin lon sin a, Phi = g h0 - (a Omega u0 + u0^2 / 2)
                  (-cos lon cos lat sin a + sin lat cos a)^2, u0 = 2 pi a / 12 days, g h0 =
                  2.94e4 m^2/s^2. It is an exact steady solution only with the rotation axis tilted
                  by the same angle a (the solver's ``axis_tilt``); this function refuses a mismatch.
``galewsky``      Galewsky et al. (2004) barotropically unstable jet: u = u_max / e_n
                  exp(1 / ((lat - lat0) (lat - lat1))) for lat0 = pi/7 < lat < lat1 = pi/2 - lat0,
                  e_n = exp(-4 / (lat1 - lat0)^2), u_max = 80 m/s, v = 0; the geopotential in
                  nonlinear balance with it (below), global mean depth 10 km; plus the perturbation
                  g h' with h' = h_hat cos(lat) exp(-(dlon / alpha)^2) exp(-((lat2 - lat) / beta)^2),
                  h_hat = 120 m, alpha = 1/3, beta = 1/15, lat2 = pi/4, dlon the longitude distance
                  (wrapped to (-pi, pi]) from ``center_lon`` (default pi, the anchor's placement; the
                  paper's 0 is the same flow rotated). Note: torch-harmonics' example writes the
                  latitude factor as exp(-(lat2 - lat)^2 / beta), a 3.9x wider bump than the paper's.
``random_balanced``  training states: a random stream function psi with random phases and energy
                  spectrum E(l) ~ l / (1 + (l / l0)^4) (peak at l = ``peak_degree`` = 3^(-1/4) l0,
                  the spherical analogue of McWilliams' 2D-turbulence spectrum), zero divergence,
                  scaled so that the rms wind sqrt(<|V|^2>) is ``mach`` sqrt(g H) (SFNO used Mach
                  numbers 0.1-0.2), and the geopotential from the nonlinear balance equation
                  (default) or the linear one, with global mean g H.

Balance (:func:`balanced_geopotential`): setting d delta / dt = 0 with delta = 0 gives
    nonlinear:  lap(Phi) = curl((zeta + f) V) - lap(|V|^2 / 2)
    linear:     lap(Phi) = curl(f V) = div(f grad psi)
solved spectrally; the mean of Phi (degree 0, which lap does not fix) is set separately.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from sciops.solvers.shallow_water import MEAN_DEPTH, ShallowWaterSphere

DAY = 86400.0
BALANCES = ("nonlinear", "linear")
SQRT_4PI = math.sqrt(4 * math.pi)  # degree-0 coefficient of a field whose area mean is 1


def _lat_lon(solver: ShallowWaterSphere) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(solver.lats, solver.lons, indexing="ij")


def balanced_geopotential(solver: ShallowWaterSphere, vortdiv: torch.Tensor, mean_geopotential: float,
                          balance: str = "nonlinear") -> torch.Tensor:
    """Spectral Phi (..., lmax, mmax) in balance with the wind of spectral (zeta, delta) (..., 2, lmax, mmax)
    (the divergence is ignored by the balance), with area mean ``mean_geopotential``."""
    if balance not in BALANCES:
        raise ValueError(f"shallow-water: balance={balance!r}; expected one of {', '.join(BALANCES)}")
    uv = solver.wind(vortdiv)
    if balance == "nonlinear":
        absvort = solver.isht(vortdiv[..., 0, :, :]) + solver.coriolis
        phi = solver.invlap * solver.vortdiv_spectral(uv * absvort.unsqueeze(-3))[..., 0, :, :] \
            - solver.sht(0.5 * (uv * uv).sum(-3))
    else:
        phi = solver.invlap * solver.vortdiv_spectral(uv * solver.coriolis)[..., 0, :, :]
    phi[..., 0, 0] = mean_geopotential * SQRT_4PI
    return phi


def williamson2(solver: ShallowWaterSphere, alpha: float | None = None, gh0: float = 2.94e4) -> torch.Tensor:
    """Williamson test case 2 (steady zonal geostrophic flow at angle ``alpha``, default the solver's axis tilt)."""
    alpha = solver.axis_tilt if alpha is None else float(alpha)
    if abs(alpha - solver.axis_tilt) > 1e-12:
        raise ValueError(f"shallow-water: williamson2 with alpha={alpha:g} is steady only when the solver's rotation "
                         f"axis is tilted by the same angle; expected ShallowWaterSphere(..., axis_tilt={alpha:g})")
    lat, lon = _lat_lon(solver)
    u0 = 2 * math.pi * solver.radius / (12 * DAY)
    ca, sa = math.cos(alpha), math.sin(alpha)
    u = u0 * (torch.cos(lat) * ca + torch.cos(lon) * torch.sin(lat) * sa)
    v = -u0 * torch.sin(lon) * sa
    phi = gh0 - (solver.radius * solver.omega * u0 + u0 ** 2 / 2) * \
        (-torch.cos(lon) * torch.cos(lat) * sa + torch.sin(lat) * ca) ** 2
    return solver.from_grid(phi, u, v)


def galewsky_jet_wind(solver: ShallowWaterSphere, u_max: float = 80.0) -> torch.Tensor:
    """The Galewsky jet's zonal wind u (nlat, nlon)."""
    lat, _ = _lat_lon(solver)
    lat0 = math.pi / 7
    lat1 = math.pi / 2 - lat0
    en = math.exp(-4 / (lat1 - lat0) ** 2)
    inside = (lat > lat0) & (lat < lat1)
    safe = torch.where(inside, lat, torch.full_like(lat, (lat0 + lat1) / 2))
    return torch.where(inside, (u_max / en) * torch.exp(1 / ((safe - lat0) * (safe - lat1))), torch.zeros_like(lat))


def galewsky(solver: ShallowWaterSphere, perturbation: bool = True, u_max: float = 80.0, h_hat: float = 120.0,
             center_lon: float = math.pi, mean_depth: float = MEAN_DEPTH) -> torch.Tensor:
    """Galewsky et al. (2004) jet, balanced, with (default) or without its height perturbation."""
    lat, lon = _lat_lon(solver)
    u = galewsky_jet_wind(solver, u_max)
    vortdiv = solver.vortdiv_spectral(torch.stack((u, torch.zeros_like(u))))
    phi = balanced_geopotential(solver, vortdiv, solver.gravity * mean_depth)
    if perturbation:
        dlon = torch.remainder(lon - center_lon + math.pi, 2 * math.pi) - math.pi
        bump = h_hat * torch.cos(lat) * torch.exp(-(dlon / (1 / 3)) ** 2) * torch.exp(-((math.pi / 4 - lat) * 15) ** 2)
        phi = phi + solver.sht(solver.gravity * bump)
    return torch.cat((phi.unsqueeze(0), vortdiv), dim=0)


def random_spectrum_weights(solver: ShallowWaterSphere, peak_degree: float) -> np.ndarray:
    """Standard deviation (lmax, mmax) of the vorticity coefficients for E(l) ~ l / (1 + (l / l0)^4)
    (up to a constant; 0 at l = 0 and for m > l)."""
    ell = np.arange(solver.lmax, dtype=np.float64)[:, None]
    m = np.arange(solver.mmax)[None, :]
    l0 = 3 ** 0.25 * peak_degree
    energy = ell / (1 + (ell / l0) ** 4)
    # E(l) = a^2 / (8 pi l (l + 1)) sum_m c_m |zeta_lm|^2 with 2l + 1 real degrees of freedom per degree
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(ell > 0, ell * (ell + 1) * energy / (2 * ell + 1), 0.0)
    return np.where(m <= ell, np.sqrt(var), 0.0)


def random_balanced(solver: ShallowWaterSphere, rng: np.random.Generator, n: int = 1, mach: float = 0.1,
                    peak_degree: float = 8.0, balance: str = "nonlinear", mean_depth: float = MEAN_DEPTH) -> torch.Tensor:
    """``n`` random balanced states (n, 3, lmax, mmax); see the module docstring. Drawn with numpy from
    ``rng`` (the same numbers on every device)."""
    if not mach > 0 or not peak_degree >= 1:
        raise ValueError(f"shallow-water: random_balanced needs mach > 0 and peak_degree >= 1, got mach={mach!r}, "
                         f"peak_degree={peak_degree!r}")
    if balance not in BALANCES:
        raise ValueError(f"shallow-water: balance={balance!r}; expected one of {', '.join(BALANCES)}")
    std = random_spectrum_weights(solver, peak_degree)
    z = rng.standard_normal((2, n) + std.shape)
    coef = std * (z[0] + 1j * z[1]) / math.sqrt(2)
    coef[..., 0] = coef[..., 0].real * math.sqrt(2)  # m = 0 coefficients of a real field are real
    vort = torch.as_tensor(coef, dtype=solver.complex_dtype, device=solver.device)
    ell = torch.arange(solver.lmax, dtype=solver.dtype, device=solver.device)[:, None]
    cm = torch.where(torch.arange(solver.mmax, device=solver.device) == 0, 1.0, 2.0).to(solver.dtype)
    with torch.no_grad():
        inv = torch.where(ell > 0, 1 / torch.where(ell > 0, ell * (ell + 1), 1.0), 0.0)
        mean_sq_wind = (solver.radius ** 2 / (4 * math.pi)) * (cm * inv * vort.abs() ** 2).sum((-2, -1))
        vort = vort * (mach * math.sqrt(solver.gravity * mean_depth) / torch.sqrt(mean_sq_wind))[:, None, None]
    vortdiv = torch.stack((vort, torch.zeros_like(vort)), dim=1)
    phi = balanced_geopotential(solver, vortdiv, solver.gravity * mean_depth, balance)
    return torch.cat((phi.unsqueeze(1), vortdiv), dim=1)
