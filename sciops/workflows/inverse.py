"""The Darcy inverse problem with a trained DGNO: coefficient a from sparse noisy observations of u.

Posterior in the latent space of the generative model (Zang & Koutsourelakis 2025):

    -log p(beta | y) = sum_m (u(x_m; beta) - y_m)^2 / (2 sigma^2)               observations
                     + sum_j |r_j(beta)|^2 / (2 sigma_r^2)                       virtual observables
                     + (beta - m0)^T C^-1 (beta - m0) / 2                        prior N(m0, C)
                     + const

where u(.; beta) is the u decoder, sigma the observation noise (given, or from a signal-to-noise
ratio: sigma^2 = mean(y^2) / (10^(snr/10) + 1), since the observed power is signal plus noise)
widened by the surrogate's own error: with ``model_error`` = e, the relative L2 error of the
decoder's u (e.g. its validation error), sigma^2 + e^2 mean(y^2), the usual Gaussian treatment of
a surrogate's approximation error (Kaipio & Somersalo). Without it the Laplace posterior below only
knows the observation noise and is too narrow whenever the model error dominates;
and r_j the weak-form residuals of ``sciops.physics.weak_form`` (divided by f and s_ref, see
``sciops.operators.dgno``) at a fixed set of Wendland test functions, evaluated with the
coefficient of the a decoder, so that beta stays where the decoded u and the decoded a satisfy
Darcy's law together. sigma_r is ``residual_std``: 0 (the default) leaves the
physics term out; "auto" takes the RMS of the same residuals over the encoded prior samples, i.e.
the level to which the trained model itself satisfies the weak form on its training distribution.

Why the default is 0: the decoders were trained to satisfy the weak form together, so u(beta) and
a(beta) already lie on the model's physics manifold and the virtual observables add little
information; but their J * 3 residuals count as independent observations although neighbouring
test functions overlap and the residuals are dominated by correlated model error, so they shrink
the posterior far below the actual error. Measured with scripts/bench_darcy_operators.py (label-free
DGNO, multi-phase Darcy 29^2, 20 fresh coefficients, 100 observations at 25 dB SNR): mean relative
error of a 0.207 with residual_std=0 and 0.217 with "auto"; share of grid points with the true a
within 2 posterior std of the mean 81 % and 10 %; 0.67 s and 6.4 s per inversion.

Prior (``prior``): ``"standard"`` is the training prior N(0, I). ``"aggregate"`` (default) is a
Gaussian fitted to the aggregate posterior of the trained encoder, m0 and C the mean and covariance
of the encoded means of ``n_prior`` coefficients drawn from the problem's own input distribution
plus the mean encoder variance: with the small KL weight used in training the encoded coefficients
occupy a region much narrower than N(0, I), and a prior of that width would let beta wander where
the decoders were never trained. All work is done in whitened coordinates beta = m0 + L z,
C = L L^T, z ~ N(0, I).

Algorithm (documented approximation):
  1. MAP: ``n_chains`` starts, optimised with Adam for ``steps`` steps (cosine learning rate); the
     chain with the lowest energy is kept (all final energies are reported). Starts: with the
     aggregate prior, the encoded prior samples of lowest energy; with the standard prior, 0 and
     draws from N(0, I). ``beta0`` replaces the first start.
  2. Posterior draws in z, by ``sampler``:
     "pcn" (default): one preconditioned Crank-Nicolson chain from each MAP result,
         z' = sqrt(1 - b^2) z + b xi, accepted with min(1, exp(Phi(z) - Phi(z'))), Phi the misfit
         (the prior is N(0, I) in z and left invariant): no gradients, one batched decoder call per
         step; b adapts towards 25 % acceptance in the first half of ``pcn_steps``, the second half
         is kept. Non-Gaussian, and the chains' modes are mixed in equal shares.
     "mixture": a Laplace approximation (Gauss-Newton Hessian H = J^T J + I in z) at every chain's
         result, components weighted by exp(-E) |H|^(-1/2).
     "laplace": the Laplace approximation at the MAP only (the method before issue 25).
  3. ``n_samples`` draws decoded on the output grid: the pointwise mean and standard deviation of
     a and of u over the draws, and the central 50 % and 95 % bands of the draws (``bands``).

Calibration (issue 25; ``sciops.workflows.inverse_calibration``, what ``sciops invert`` runs):
no sampler gives calibrated bands by itself. The posterior is that of the surrogate, whose a
decoder is a smooth sigmoid field that never reaches the true phase values 5 and 10 and whose
errors are correlated over whole regions, so the raw central bands of the draws hold the truth
at essentially no grid point, and mean +- 2 std at 30-49 % (figures below). The bands are therefore calibrated
on held-out labelled problems (the run's validation samples by default): ``model_error`` is
measured there (the relative error of the decoded u at the observation points) and added to the
likelihood, and split-conformal factors turn the posterior mean and std into bands of the stated
coverage. Measured with scripts/bench_inverse.py (label-free DGNO, 500 training samples at 29^2,
20 epochs; 20 fresh multi-phase coefficients, 100 observations at 25 dB, 8 calibration problems
per observation design; 2-core AMD EPYC, shared and loaded, one torch thread):
  sampler   rel. error   50 % band: points / samples   95 % band: points / samples   width 50 / 95 %   s/inversion   s/call
  pcn       0.2265       51.5 % / 25 %                 95.7 % / 70 %                 1.81 / 3.74       1.34          13.5
  mixture   0.2273       53.4 % / 40 %                 96.3 % / 65 %                 2.09 / 4.12       0.49           5.1
  laplace   0.2272       52.8 % / 40 %                 96.3 % / 75 %                 2.07 / 4.14       0.46           5.0
("points": share of all grid points; "samples": share of the 20 problems whose own coverage lies in
40-60 % or 85-99 %; width in units of a, whose range is 5; s/call: prior + calibration +
inversion, what one ``sciops invert`` costs.) Uncalibrated, the same runs hold the truth inside
the central bands of the draws at 0.0 % of the points and inside mean +- 2 std at 30.1 % (pcn),
48.8 % (mixture), 47.7 % (laplace). The method before issue 25 (laplace, 300 MAP steps, no
calibration) gave error 0.2272, mean +- 2 std coverage 47.8 %, 1.13 s per inversion (plus about
0.9 s for the prior) on the same machine and run.
pCN is kept as the default: its bands are the narrowest at the calibrated
coverage (13 % narrower than the Laplace ones at 50 %, 10 % at 95 %) with the posterior-mean error
unchanged, at 2.7 times the cost of a call with the Laplace sampler, and one ``sciops invert``
call (13.5 s, 8 calibration problems) stays within 10 times the old single inversion (about 2 s
here). The mixture measured no better than the single Laplace approximation. Per problem the
coverage still scatters (the "samples" column): the bands are calibrated on average, not for
every coefficient.
What remains approximate: coverage is marginal (pooled over problems and points), not per point
or per problem; the calibration assumes the user's coefficient comes from the same distribution
as the calibration problems; it costs ``calibration_size`` inversions per observation design.
The radar problem's reconstructions (PnP-ADMM and the learned ones) come with no uncertainty at
all: none is offered, calibrated or not.

Observations: points (M, 2) in (x, y) order inside [0, 1]^2, values (M,) finite, M >= MIN_OBSERVATIONS.
Results are on the vertex grid x_j = j / (n - 1), arrays (y, x).

Reference: Y. Zang, P.-S. Koutsourelakis, arXiv:2502.06250 (2025), section on inverse problems.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sciops.physics.weak_form import sample_wendland_set

MIN_OBSERVATIONS = 10
SAMPLERS = ("pcn", "mixture", "laplace")
METHODS = {"pcn": "multi-start MAP, then preconditioned Crank-Nicolson chains in whitened latent space",
           "mixture": "multi-start MAP, Gauss-Newton Laplace mixture over the chains' modes",
           "laplace": "multi-start MAP + Gauss-Newton Laplace in whitened latent space"}


@torch.no_grad()
def pcn(misfit, starts: torch.Tensor, steps: int, n_samples: int, gen: torch.Generator,
        target: float = 0.25) -> tuple[torch.Tensor, float]:
    """Preconditioned Crank-Nicolson for a N(0, I) prior: chains (one per start) proposing
    z' = sqrt(1 - b^2) z + b xi, accepted with min(1, exp(misfit(z) - misfit(z'))), so the prior is
    left invariant and only the misfit is evaluated (no gradients). b per chain adapts towards the
    ``target`` acceptance in the first half (burn-in); ``n_samples`` draws (n_samples, m) are taken
    evenly from the second half of all chains. Returns the draws and the acceptance rate of the second half."""
    z = starts.clone()
    phi = misfit(z)
    step = torch.full((len(z),), 0.05, dtype=z.dtype, device=z.device)
    burn = steps // 2
    kept, accepted = [], 0.0
    for t in range(steps):
        xi = torch.randn(z.shape, generator=gen).to(z)
        proposal = torch.sqrt(1 - step ** 2)[:, None] * z + step[:, None] * xi
        phi_new = misfit(proposal)
        accept = torch.rand(len(z), generator=gen).to(z).log() < (phi - phi_new)
        z = torch.where(accept[:, None], proposal, z)
        phi = torch.where(accept, phi_new, phi)
        if t < burn:  # Robbins-Monro on log b, frozen after burn-in so the kept chain is Markov
            step = (step * torch.exp((accept.to(z.dtype) - target) / math.sqrt(t + 1))).clamp(1e-4, 1.0)
        else:
            kept.append(z.clone())
            accepted += float(accept.to(torch.float64).mean())
    kept = torch.stack(kept, 1).reshape(-1, z.shape[1])  # (chains * kept steps, m)
    pick = torch.linspace(0, len(kept) - 1, n_samples).round().long()
    return kept[pick].double(), accepted / max(steps - burn, 1)


@dataclass
class InversionResult:
    """Grid (n,) coordinates; a_mean, a_std, a_map, u_mean, u_std (n, n) on (y, x); beta_map (m,);
    chain_energies (n_chains,); noise_std; seconds (wall time of the whole inversion)."""

    grid: np.ndarray
    a_mean: np.ndarray
    a_std: np.ndarray
    a_map: np.ndarray
    u_mean: np.ndarray
    u_std: np.ndarray
    beta_map: np.ndarray
    chain_energies: np.ndarray
    noise_std: float
    seconds: float
    settings: dict = field(default_factory=dict)
    a_draws: np.ndarray | None = None  # (n_samples, n, n): the posterior draws of a
    # level -> (lo, hi) (n, n): central bands of the draws, replaced by calibrated ones (inverse_calibration)
    bands: dict = field(default_factory=dict)


def _dgno(model):
    """The DGNO inside a Surrogate, a NormalizedOperator or itself."""
    from sciops.operators.dgno import DGNO

    inner = getattr(model, "model", model)  # Surrogate -> NormalizedOperator
    inner = getattr(inner, "operator", inner)  # NormalizedOperator -> operator
    if not isinstance(inner, DGNO):
        raise ValueError(f"inversion needs a trained DGNO (a latent generative model), got {type(inner).__name__}")
    if not inner.configured:
        raise ValueError("this DGNO has no physics settings: train it or call configure(problem) first")
    return inner


def check_observations(points, values, *, min_points: int = MIN_OBSERVATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Validate observations: points (M, 2) inside [0,1]^2, values (M,) finite, M >= min_points."""
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"observation points must have shape (M, 2) as (x, y), got {points.shape}")
    if values.shape != (len(points),):
        raise ValueError(f"observation values must have shape ({len(points)},) to match the points, got {values.shape}")
    if len(points) < min_points:
        raise ValueError(f"{len(points)} observations are too few: at least {min_points} are needed")
    bad = ~np.all(np.isfinite(points), axis=1)
    if bad.any():
        raise ValueError(f"observation point {int(np.argmax(bad))} is not finite ({int(bad.sum())} such points)")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"observation value {int(np.argmax(bad))} is NaN or infinite ({int(bad.sum())} such values)")
    outside = np.any((points < 0.0) | (points > 1.0), axis=1)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"{int(outside.sum())} observation points lie outside the domain [0, 1]^2, "
                         f"the first is point {i} at ({', '.join(f'{c:g}' for c in points[i])})")
    return points, values


def noise_level(values: np.ndarray, noise_std: float | None, snr_db: float | None) -> float:
    if (noise_std is None) == (snr_db is None):
        raise ValueError("give exactly one of noise_std and snr_db")
    if noise_std is not None:
        if not (np.isfinite(noise_std) and noise_std > 0):
            raise ValueError(f"noise_std must be a positive number, got {noise_std}")
        return float(noise_std)
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    power = float(np.mean(np.asarray(values) ** 2))
    if power <= 0:
        raise ValueError("the observed values are all zero: give noise_std instead of snr_db")
    return math.sqrt(power / (10.0 ** (snr_db / 10.0) + 1.0))


def latent_prior(dgno, problem, n_prior: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The aggregate-posterior prior: mean m0 (m,), Cholesky factor L (m, m) of the covariance, and
    the encoded means (n_prior, m) of coefficients drawn from ``problem.sample_inputs``."""
    if n_prior < 2:
        raise ValueError(f"n_prior must be >= 2, got {n_prior}")
    device = next(dgno.parameters()).device
    a = torch.tensor(np.asarray(problem.sample_inputs(n_prior, seed=seed)), dtype=torch.float32, device=device)
    with torch.no_grad():
        means, logvar = [], []
        for chunk in a.split(128):
            mean, lv = dgno.encode(chunk)
            means.append(mean)
            logvar.append(torch.zeros_like(mean) if lv is None else lv)
        means, var = torch.cat(means).double(), torch.cat(logvar).double().exp().mean(0)
    m0 = means.mean(0)
    cov = torch.cov(means.T) + torch.diag(var) + 1e-8 * torch.eye(len(m0), dtype=torch.float64, device=device)
    return m0, torch.linalg.cholesky(cov), means


def invert(model, points, values, *, noise_std: float | None = None, snr_db: float | None = None,
           n_samples: int = 200, n_chains: int = 4, steps: int = 100, lr: float = 0.05,
           residual_std: float | str = 0.0, model_error: float = 0.0, n_centres: int = 100,
           resolution: int | None = None,
           prior: str = "aggregate", n_prior: int = 512, problem=None, beta0=None, seed: int = 0,
           min_points: int = MIN_OBSERVATIONS, sampler: str = "pcn", pcn_steps: int = 400,
           encoded=None) -> InversionResult:
    """Posterior estimate of the coefficient from observations of u (see the module docstring).

    Args:
        model: a Surrogate of a trained DGNO (``sciops.load(run)``), or the DGNO module.
        points: (M, 2) observation coordinates (x, y) in [0, 1]^2. values: (M,) observed u.
        noise_std / snr_db: the observation noise, exactly one of them.
        model_error: relative L2 error of the model's u (>= 0), added to the noise (module docstring).
        n_samples: Laplace posterior draws. n_chains, steps, lr: MAP search (Adam, in whitened z).
        residual_std: sigma_r of the weak-form virtual observables: a number (0, the default: no
            physics term) or "auto", the RMS residual of the encoded prior samples (needs the problem).
        n_centres: Wendland test functions of the physics term.
        resolution: nodes per side of the output grid (default: the training resolution, else 29).
        prior: "aggregate" (fitted to ``n_prior`` encoded samples of ``problem``, which defaults to
            the Surrogate's problem) or "standard" (N(0, I)).
        beta0: optional initial latent (m,) for the first chain; its size must match the model's.
        sampler: "pcn" (default), "mixture" or "laplace" (see the module docstring); pcn_steps:
            preconditioned Crank-Nicolson steps per chain (the second half is kept).
        encoded: ``latent_prior(dgno, problem, n_prior)``'s result, to share it between calls.
    """
    t0 = time.perf_counter()
    dgno = _dgno(model)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if len(np.asarray(values).reshape(-1)) < min_points:
        raise ValueError(f"{len(np.asarray(values).reshape(-1))} observations are too few for the {sampler} sampler: "
                         f"at least {min_points} are needed")
    points, values = check_observations(points, values, min_points=min_points)
    sigma = noise_level(values, noise_std, snr_db)
    if not (np.isfinite(model_error) and model_error >= 0):
        raise ValueError(f"model_error must be a relative error >= 0, got {model_error}")
    sigma = math.sqrt(sigma ** 2 + model_error ** 2 * float(np.mean(values ** 2)))
    m = dgno.latent
    if beta0 is not None:
        beta0 = np.asarray(beta0, dtype=np.float64).reshape(-1)
        if beta0.size != m:
            raise ValueError(f"initial latent beta0 has {beta0.size} entries but the checkpoint's latent size is {m}")
        if not np.all(np.isfinite(beta0)):
            raise ValueError("initial latent beta0 contains NaN or Inf")
    if prior not in ("aggregate", "standard"):
        raise ValueError(f"prior must be 'aggregate' or 'standard', got {prior!r}")
    spec = getattr(model, "spec", None)
    if resolution is None:
        resolution = int(spec.data.resolution[-1]) if spec is not None and spec.data is not None else 29
    from sciops import problems

    top = next(q.max for q in problems.get("darcy").PARAMS if q.name == "resolution")  # the darcy problem's range
    if not 2 <= resolution <= top:
        raise ValueError(f"resolution must be in [2, {top:g}] (nodes per side), got {resolution}")
    if n_samples < 1 or n_chains < 1 or steps < 0:
        raise ValueError("n_samples and n_chains must be >= 1 and steps >= 0")
    if sampler == "pcn" and pcn_steps < 20:
        raise ValueError(f"pcn_steps must be >= 20 (half are burn-in), got {pcn_steps}")
    if sampler == "mixture" and n_chains < 2:
        raise ValueError("the mixture sampler mixes the MAP modes of several chains: use n_chains >= 2")
    auto_residual = isinstance(residual_std, str)
    if auto_residual and residual_std != "auto":
        raise ValueError(f"residual_std must be a number or 'auto', got {residual_std!r}")
    if (prior == "aggregate" or auto_residual) and problem is None:
        if not hasattr(model, "problem"):
            raise ValueError("prior='aggregate' and residual_std='auto' need the problem: pass a Surrogate "
                             "or problem=...")
        problem = model.problem
    device = next(dgno.parameters()).device
    dtype = torch.float32
    gen = torch.Generator().manual_seed(seed)
    obs_x = torch.tensor(points, dtype=dtype, device=device)
    obs_y = torch.tensor(values, dtype=dtype, device=device)
    physics = auto_residual or residual_std > 0
    was_training = dgno.training
    dgno.eval()
    for p in dgno.parameters():
        p.requires_grad_(False)
    try:
        if encoded is None and problem is not None:
            encoded = latent_prior(dgno, problem, n_prior, seed=seed)
        if prior == "aggregate":
            m0, chol_prior, candidates = encoded
        else:
            m0 = torch.zeros(m, dtype=torch.float64, device=device)
            chol_prior = torch.eye(m, dtype=torch.float64, device=device)
            candidates = None
        m0_f, chol_f = m0.to(dtype), chol_prior.to(dtype)
        to_beta = lambda z: m0_f + z @ chol_f.T  # noqa: E731
        with torch.no_grad():
            obs_basis = dgno.basis(obs_x)
            if physics:
                tf = sample_wendland_set(n_centres, dgno.rbf_radius, n_radial=dgno.quadrature[0],
                                         n_angular=dgno.quadrature[1], generator=gen, device=device, dtype=dtype)
                tf_basis = dgno.basis(tf.points, grad=True, s=True, a=True)
                if auto_residual:  # the residual level of the model itself on its training distribution
                    r1, r2 = dgno.physics_residuals(encoded[2][:128].to(dtype), tf, basis=tf_basis)
                    residual_std = float(torch.cat([r1.flatten(), r2.flatten()]).pow(2).mean().sqrt())

        def residuals(z: torch.Tensor) -> torch.Tensor:
            """Whitened residual vector (B, M [+ 3J]); the energy is its half squared norm plus |z|^2 / 2."""
            beta = to_beta(z)
            u = dgno.evaluate(obs_basis, beta)["u"]
            parts = [(u - obs_y) / sigma]
            if physics:
                r1, r2 = dgno.physics_residuals(beta, tf, basis=tf_basis)
                parts += [r1 / residual_std, r2.flatten(1) / residual_std]
            return torch.cat(parts, 1)

        def energy(z: torch.Tensor) -> torch.Tensor:
            return 0.5 * residuals(z).pow(2).sum(1) + 0.5 * z.pow(2).sum(1)

        def whiten(beta: torch.Tensor) -> torch.Tensor:
            return torch.linalg.solve_triangular(chol_prior, (beta.double() - m0).T, upper=False).T.to(dtype)

        # 1. MAP from several starts
        with torch.no_grad():
            if candidates is not None:
                z_candidates = whiten(candidates)
                scores = torch.cat([energy(chunk) for chunk in z_candidates.split(128)])
                starts = z_candidates[torch.argsort(scores)[:n_chains]].clone()
                if len(starts) < n_chains:
                    extra = torch.randn(n_chains - len(starts), m, generator=gen).to(device=device, dtype=dtype)
                    starts = torch.cat([starts, extra])
            else:
                starts = torch.randn(n_chains, m, generator=gen).to(device=device, dtype=dtype)
                starts[0] = 0.0
            if beta0 is not None:
                starts[0] = whiten(torch.tensor(beta0, device=device)[None])[0]
        z = starts.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            energy(z).sum().backward()
            optimizer.step()
            scheduler.step()
        with torch.no_grad():
            energies = energy(z)
        best = int(torch.argmin(energies))
        z_map = z.detach()[best]

        # 2. posterior draws in z
        def laplace(z0: torch.Tensor) -> tuple[torch.Tensor, float]:
            """Cholesky factor of the Gauss-Newton Hessian at z0 and its log-determinant."""
            jac = torch.autograd.functional.jacobian(lambda v: residuals(v[None])[0], z0, vectorize=True)
            chol = torch.linalg.cholesky(jac.T.double() @ jac.double() + torch.eye(m, dtype=torch.float64, device=device))
            return chol, 2.0 * float(torch.log(torch.diagonal(chol)).sum())

        def gaussian(z0: torch.Tensor, chol: torch.Tensor, k: int) -> torch.Tensor:
            noise = torch.randn(k, m, generator=gen, dtype=torch.float64).to(device)
            return z0.double() + torch.linalg.solve_triangular(chol.T, noise.T, upper=True).T

        acceptance = None
        if sampler == "laplace":
            draws = gaussian(z_map, laplace(z_map)[0], n_samples)
        elif sampler == "mixture":
            # one Laplace component per chain, weighted by its evidence exp(-E) |H|^(-1/2)
            parts = [laplace(zk) for zk in z.detach()]
            logw = -energies.double().cpu() - 0.5 * torch.tensor([p[1] for p in parts], dtype=torch.float64)
            counts = torch.multinomial(torch.softmax(logw, 0), n_samples, replacement=True, generator=gen)
            counts = torch.bincount(counts, minlength=n_chains)
            draws = torch.cat([gaussian(zk, parts[k][0], int(counts[k])) for k, zk in enumerate(z.detach())
                               if counts[k] > 0])
        else:
            draws, acceptance = pcn(lambda v: 0.5 * residuals(v).pow(2).sum(1), z.detach(), pcn_steps,
                                    n_samples, gen)

        # 3. posterior draws decoded on the output grid
        from sciops.operators.dgno import grid_points

        with torch.no_grad():
            grid_basis = dgno.basis(grid_points(resolution, resolution, device=device, dtype=dtype), a=True)
            a_draws, u_draws = [], []
            for chunk in draws.to(dtype).split(64):
                out = dgno.evaluate(grid_basis, to_beta(chunk))
                a_draws.append(out["a"])
                u_draws.append(out["u"])
            a_draws, u_draws = torch.cat(a_draws), torch.cat(u_draws)
            beta_map = to_beta(z_map[None])
            at_map = dgno.evaluate(grid_basis, beta_map)
    finally:
        for p in dgno.parameters():
            p.requires_grad_(True)
        dgno.train(was_training)
    shape = (resolution, resolution)
    as_grid = lambda t: t.reshape(shape).cpu().numpy().astype(np.float32)  # noqa: E731
    draws_np = a_draws.reshape(-1, *shape).cpu().numpy()
    settings = dict(n_samples=n_samples, n_chains=n_chains, steps=steps, lr=lr, residual_std=residual_std,
                    model_error=model_error, n_centres=n_centres, resolution=resolution, prior=prior,
                    n_prior=n_prior, seed=seed,
                    n_observations=len(points), snr_db=snr_db, sampler=sampler, pcn_steps=pcn_steps,
                    pcn_acceptance=acceptance, method=METHODS[sampler])
    return InversionResult(
        grid=np.linspace(0.0, 1.0, resolution), a_mean=as_grid(a_draws.mean(0)), a_std=as_grid(a_draws.std(0)),
        a_map=as_grid(at_map["a"][0]), u_mean=as_grid(u_draws.mean(0)), u_std=as_grid(u_draws.std(0)),
        beta_map=beta_map[0].cpu().numpy(), chain_energies=energies.cpu().numpy(), noise_std=sigma,
        seconds=time.perf_counter() - t0, settings=settings, a_draws=draws_np, bands=central_bands(draws_np))


def central_bands(a_draws: np.ndarray, levels=(0.5, 0.95)) -> dict:
    """level -> (lo, hi): the pointwise central quantile bands of draws (S, n, n)."""
    out = {}
    for p in levels:
        lo, hi = np.quantile(a_draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        out[p] = (lo.astype(np.float32), hi.astype(np.float32))
    return out
