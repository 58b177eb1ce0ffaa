"""Calibrated posterior bands for the Darcy inversion (``sciops.workflows.inverse``) from held-out
labelled problems.

Two uses of K labelled problems (a, u) that the DGNO was not trained on (by default its run's
validation samples):
  1. the surrogate's own error, added to the likelihood: ``model_error`` is the relative RMS error,
     at the observation points, of the u decoded from the encoded true coefficient;
  2. split conformal bands: each calibration problem is observed at the user's points with the
     user's noise and inverted with the same settings; the pointwise score |a_true - mean| /
     (std + floor) is pooled over problems and points, and the band of level p is
     mean +- q_p (std + floor), clipped to the coefficient's range, with q_p the finite-sample
     p-quantile of the scores. ``floor`` (per level) is picked from a fixed ladder as the one
     giving the narrowest mean band on the calibration set (at the coverage that the quantile
     fixes); it keeps a band where the draws agree but the decoded a (a sigmoid) stops short of
     the true phase value. Picking it by the interval score instead (width plus 2 / (1 - p) times
     the miss distance, a proper score) gave 95 % bands of mean width 4.64 out of the range 5 with
     the pCN sampler in scripts/bench_inverse.py (96.3 % coverage), against 3.74 (95.7 %) with the
     narrowest band: the narrowest is kept.
The coverage reported is leave-one-problem-out: each calibration problem's coverage under the
factors fitted on the others, averaged, so it is not the in-sample coverage that split conformal
guarantees by construction. Coverage is marginal (over problems and points), not per point.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from sciops.workflows.inverse import InversionResult, _dgno, check_observations, invert, latent_prior

LEVELS = (0.5, 0.95)
MIN_CALIBRATION = 4
FLOORS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # in units of the coefficient's spread (a_high - a_low)


@dataclass
class Calibration:
    """model_error: relative error of the decoded u at the points; factors: level -> (q, floor);
    coverage: level -> leave-one-problem-out coverage; width: level -> mean band width."""

    model_error: float
    factors: dict
    coverage: dict
    width: dict
    n_problems: int
    seconds: float

    def summary(self) -> dict:
        return dict(model_error=self.model_error, n_problems=self.n_problems, seconds=self.seconds,
                    **{f"coverage{round(100 * p)}": c for p, c in self.coverage.items()},
                    **{f"width{round(100 * p)}": w for p, w in self.width.items()},
                    **{f"factor{round(100 * p)}": list(f) for p, f in self.factors.items()})


def observe(u_grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a vertex-grid field (n, n) on (y, x) at points (M, 2) in (x, y)."""
    n = u_grid.shape[-1]
    t = np.clip(points * (n - 1), 0, n - 1)
    i0 = np.minimum(np.floor(t).astype(int), n - 2)
    f = t - i0
    (x0, y0), (fx, fy) = i0.T, f.T
    g = np.asarray(u_grid, dtype=np.float64)
    return ((1 - fx) * (1 - fy) * g[y0, x0] + fx * (1 - fy) * g[y0, x0 + 1]
            + (1 - fx) * fy * g[y0 + 1, x0] + fx * fy * g[y0 + 1, x0 + 1])


def check_calibration_set(a: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, u = np.asarray(a, dtype=np.float64), np.asarray(u, dtype=np.float64)
    if a.ndim != 3 or a.shape != u.shape or a.shape[1] != a.shape[2]:
        raise ValueError(f"calibration needs coefficients and solutions of the same shape (K, n, n), got "
                         f"{a.shape} and {u.shape}")
    if len(a) < MIN_CALIBRATION:
        raise ValueError(f"{len(a)} calibration problems are too few: at least {MIN_CALIBRATION} labelled samples "
                         "are needed")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(u))):
        raise ValueError("the calibration samples contain NaN or Inf")
    return a, u


@torch.no_grad()
def surrogate_error(model, a: np.ndarray, u: np.ndarray, points: np.ndarray) -> float:
    """Relative RMS error at the points of the DGNO's u decoded from the encoded true a."""
    dgno = _dgno(model)
    device = next(dgno.parameters()).device
    was_training = dgno.training
    dgno.eval()
    try:
        mean, _ = dgno.encode(torch.tensor(a, dtype=torch.float32, device=device))
        pred = dgno.decode_u(mean, torch.tensor(points, dtype=torch.float32, device=device)).double().cpu().numpy()
    finally:
        dgno.train(was_training)
    true = np.stack([observe(uk, points) for uk in u])
    return float(np.sqrt(np.mean((pred - true) ** 2) / np.mean(true ** 2)))


def _quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score."""
    k = min(len(scores), int(np.ceil((len(scores) + 1) * level)))
    return float(np.partition(scores, k - 1)[k - 1])


def band(mean: np.ndarray, std: np.ndarray, q: float, floor: float, spread: float,
         limits: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    half = q * (std + floor * spread)
    lo, hi = mean - half, mean + half
    if limits is not None:
        lo, hi = np.clip(lo, *limits), np.clip(hi, *limits)
    return lo.astype(np.float32), hi.astype(np.float32)


def coverage(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((truth >= lo) & (truth <= hi)))


def limits_of(model) -> tuple[tuple[float, float] | None, float]:
    """(clip range of a or None, spread a_high - a_low or 1) of the DGNO's coefficient."""
    dgno = _dgno(model)
    if dgno.two_phase:
        lo, hi = float(dgno.physics[0]), float(dgno.physics[1])
        return (lo, hi), hi - lo
    return None, 1.0


def fit(means: np.ndarray, stds: np.ndarray, truths: np.ndarray, spread: float,
        limits: tuple[float, float] | None) -> tuple[dict, dict, dict]:
    """Conformal factors level -> (q, floor), leave-one-problem-out coverage and mean width, from
    per-problem posterior means, stds and true coefficients (K, n, n)."""
    factors, cover, width = {}, {}, {}
    err = np.abs(truths - means)
    for level in LEVELS:
        best = None
        for floor in FLOORS:
            scale = stds + floor * spread
            if np.any(scale <= 0):
                continue
            q = _quantile((err / scale).ravel(), level)
            lo, hi = band(means, stds, q, floor, spread, limits)
            w = float(np.mean(hi - lo))
            if best is None or w < best[2]:
                best = (q, floor, w)
        q, floor, w = best
        factors[level], width[level] = (q, floor), w
        loo = []
        for k in range(len(means)):
            rest = np.arange(len(means)) != k
            qk = _quantile((err[rest] / (stds[rest] + floor * spread)).ravel(), level)
            loo.append(coverage(*band(means[k], stds[k], qk, floor, spread, limits), truths[k]))
        cover[level] = float(np.mean(loo))
    return factors, cover, width


def calibrate(model, points, a_cal, u_cal, *, noise_std: float | None = None, snr_db: float | None = None,
              model_error: float | None = None, seed: int = 0, **settings) -> Calibration:
    """Calibrate the bands of ``invert(model, points, ...)`` on labelled problems (K, n, n) observed at
    the same points with the same noise (see the module docstring). ``model_error`` None: measured
    on these problems. ``settings`` are :func:`invert`'s."""
    t0 = time.perf_counter()
    points, _ = check_observations(points, np.zeros(len(np.asarray(points))), min_points=1)
    a_cal, u_cal = check_calibration_set(a_cal, u_cal)
    if (noise_std is None) == (snr_db is None):
        raise ValueError("give exactly one of noise_std and snr_db")
    if model_error is None:
        model_error = surrogate_error(model, a_cal, u_cal, points)
    if settings.get("encoded") is None:
        settings["encoded"] = shared_prior(model, settings.get("problem"), settings.get("n_prior", 512), seed)
    rng = np.random.default_rng(seed + 7919)
    n = a_cal.shape[-1]
    means, stds = [], []
    for k in range(len(a_cal)):
        clean = observe(u_cal[k], points)
        sigma = noise_std if noise_std is not None else np.sqrt(np.mean(clean ** 2) / 10 ** (snr_db / 10))
        values = clean + sigma * rng.standard_normal(len(clean))
        result = invert(model, points, values, noise_std=noise_std, snr_db=snr_db, model_error=model_error,
                        resolution=n, seed=seed + 1 + k, **settings)
        means.append(result.a_mean)
        stds.append(result.a_std)
    limits, spread = limits_of(model)
    factors, cover, width = fit(np.stack(means), np.stack(stds), a_cal, spread, limits)
    return Calibration(model_error=float(model_error), factors=factors, coverage=cover, width=width,
                       n_problems=len(a_cal), seconds=time.perf_counter() - t0)


def shared_prior(model, problem=None, n_prior: int = 512, seed: int = 0):
    """The aggregate latent prior of ``invert``, computed once for a calibration and its inversion."""
    problem = problem if problem is not None else getattr(model, "problem", None)
    return latent_prior(_dgno(model), problem, n_prior, seed=seed) if problem is not None else None


def calibrated_bands(model, result: InversionResult, calibration: Calibration) -> dict:
    """level -> (lo, hi) on the result's grid; also recorded in ``result.bands`` and the settings."""
    limits, spread = limits_of(model)
    result.bands = {level: band(result.a_mean, result.a_std, q, floor, spread, limits)
                    for level, (q, floor) in calibration.factors.items()}
    result.settings["calibration"] = calibration.summary()
    return result.bands
