"""Spectral-Refiner fine-tuning (Cao et al., ICLR 2025) of a space-time FNO on Navier-Stokes.

A trained ``fno3d`` predicts the vorticity records w(t_1..t_T) from w(t_0). Fine-tuning:

1. freeze every weight except the last spectral layer, and extend that layer to the full grid
   (all space-time modes of the padded grid; the trained weights keep their modes, the new modes
   start at zero, so the refined model starts exactly where the trained one was);
2. minimise, over unlabeled initial states (no solver run), the H^-1 norm of the PDE residual

       R = w_t + u . grad(w) - nu lap(w) + mu w - f,

   computed with the reference solver's own spectral operators (``NavierStokes2D``: the same
   velocity, dealiased advection, forcing and dissipation as the data), summed over the records
   t_0..t_T. The H^-1 weight is (alpha + |k|^2)^(-1/2) on the amplitudes, |k| the angular
   wavenumber (2 pi times the integer one on the unit torus), alpha = 10^(-3/2).

The time derivative is second-order finite differences on the records (``torch.gradient`` with
second-order edges), so the records must resolve the dynamics in time: before fine-tuning, the
residual of the reference trajectories themselves (from the training file) is compared with the
model's, and fine-tuning is refused when the reference's is not clearly smaller - the residual
would then measure the time sampling, not the model's error.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from sciops import checkpoint as ckpt
from sciops.datasets.progress import Progress
from sciops.layers.spectral_conv import SpectralConv
from sciops.solvers import spectral
from sciops.solvers.navier_stokes import NavierStokes2D

ALPHA = 10 ** -1.5
REFINABLE = ("fno3d", "st-fno")


def residual_hat(equation: NavierStokes2D, w: torch.Tensor, dt: float) -> torch.Tensor:
    """rfft2 of R on records w of shape (batch, T + 1, n, n) spaced dt apart."""
    w_hat = equation.to_spectral(w.to(equation.dtype))
    (dw_dt,) = torch.gradient(w_hat, spacing=dt, dim=1, edge_order=2)
    return dw_dt - equation.explicit_terms(w_hat) - equation.implicit_terms(w_hat)


def hminus1_squared(equation: NavierStokes2D, r_hat: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """Per-sample sum over records of ||R(t)||^2_{H^-1} (Parseval on the unit-normalised DFT)."""
    n = equation.n
    ky, kx = spectral.wavenumbers(n, equation.length, dtype=torch.float64, device=r_hat.device)
    weight = 1.0 / (alpha + kx ** 2 + ky ** 2)
    double = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=r_hat.device)  # conjugate pairs
    double[0] = 1.0
    if n % 2 == 0:
        double[-1] = 1.0
    weight = (weight * double).to(r_hat.real.dtype)
    coeffs = r_hat / (n * n)
    return (weight * coeffs.abs() ** 2).sum(dim=(-2, -1)).sum(1) * equation.length ** 2


def relative_residual(equation, w0: torch.Tensor, trajectory: torch.Tensor, dt: float) -> torch.Tensor:
    """||R||_{L2(H^-1)} / ||w||_{L2(H^-1)} per sample, the records being w0 then the trajectory."""
    w = torch.cat([w0.unsqueeze(1), trajectory], dim=1)
    r = hminus1_squared(equation, residual_hat(equation, w, dt))
    scale = hminus1_squared(equation, equation.to_spectral(w.to(equation.dtype)))
    return (r / scale).sqrt()


def navier_stokes_equation(problem, n: int, device) -> NavierStokes2D:
    """The solver's equation object for a navier-stokes problem at n x n, float64."""
    p = problem.params
    return NavierStokes2D(n, p["viscosity"], forcing=p.get("forcing", "fno"), length=p.get("length"),
                          drag=p.get("drag"), dtype=torch.float64, device=device)


def extend_last_layer(model: torch.nn.Module, config: dict, grid: tuple[int, int, int]) -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` (a NormalizedOperator around fno3d) whose last spectral layer keeps every
    mode of the padded space-time ``grid`` (t, y, x), initialised with the trained weights."""
    old = model.operator.fno.spectral[-1]
    full = (grid[0] // 2, grid[1] // 2, grid[2] // 2 + 1)
    new = SpectralConv(old.in_channels, old.out_channels, full)
    with torch.no_grad():
        new.weight.zero_()
        w_old = old.weight.view(*old._block, old.in_channels, old.out_channels, 2)
        w_new = new.weight.view(*new._block, new.in_channels, new.out_channels, 2)
        # Copy the modes the trained layer uses on this grid: min(m, full) per side (a layer built
        # with more modes than the grid has uses only these). Block index i < m is frequency i,
        # i >= m frequency -(2m - i), in both blocks.
        src, dst = [], []
        for d, (m, mf) in enumerate(zip(old.modes, full)):
            k = min(m, mf)
            if d == len(full) - 1:
                src.append(torch.arange(k))
                dst.append(torch.arange(k))
            else:
                src.append(torch.cat([torch.arange(k), torch.arange(2 * m - k, 2 * m)]))
                dst.append(torch.cat([torch.arange(k), torch.arange(2 * mf - k, 2 * mf)]))
        w_new[torch.meshgrid(*dst, indexing="ij")] = w_old[torch.meshgrid(*src, indexing="ij")]
    refined = copy.deepcopy(model)
    refined.operator.fno.spectral[-1] = new.to(next(model.parameters()).device)
    config = copy.deepcopy(config)
    config["operator"]["hyperparameters"]["last_modes"] = list(full)
    return refined, config


def check_refinable(config: dict, run_dir) -> None:
    """ValueError unless the run's config is a space-time FNO trained on Navier-Stokes."""
    name = config["operator"]["name"]
    if name not in REFINABLE:
        raise ValueError(f"Spectral-Refiner fine-tunes a space-time FNO ({', '.join(REFINABLE)}); {run_dir} holds {name}")
    if config["problem"]["name"] != "navier-stokes":
        raise ValueError(f"Spectral-Refiner needs the Navier-Stokes residual; {run_dir} was trained on "
                         f"{config['problem']['name']}")


def refine(run_dir: str | Path, output: str | Path, *, inputs: torch.Tensor, reference: tuple | None = None,
           iterations: int = 50, lr: float = 1e-3, batch_size: int = 8, alpha: float = ALPHA,
           device=None, progress: bool | None = None) -> dict:
    """Fine-tune the run in ``run_dir`` on unlabeled inputs (n, y, x) (or input segments
    (n, K, y, x) for st-fno) and write the refined run to ``output``. ``reference`` = (w0,
    trajectory) of reference records from the training data, for the time-resolution check.
    Returns a summary with the relative residuals before and after."""
    from sciops.surrogate import Surrogate

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ValueError(f"output directory {output} is not empty; choose another")
    surrogate = Surrogate.load(run_dir, device=device)
    check_refinable(surrogate.config, run_dir)
    problem = surrogate.problem
    segment = surrogate.config["operator"].get("input_steps")
    expected = 3 if segment is None else 4
    if inputs.dim() != expected or inputs.shape[-1] != inputs.shape[-2]:
        shape = "(n, y, x)" if segment is None else f"(n, {segment}, y, x)"
        raise ValueError(f"inputs must be {shape} on a square grid, got {tuple(inputs.shape)}")
    dev = surrogate.device
    n = inputs.shape[-1]
    dt = float(problem.params["record_every"])
    equation = navier_stokes_equation(problem, n, dev)
    model = surrogate.model
    op = model.operator
    steps = op.time_steps
    grid = (steps + round(op.time_padding * steps), n, n)
    refined, config = extend_last_layer(model, surrogate.config, grid)
    for p in refined.parameters():
        p.requires_grad_(False)
    trainable = list(refined.operator.fno.spectral[-1].parameters())
    for p in trainable:
        p.requires_grad_(True)

    x = inputs.to(dev, torch.float32)

    def records(m, batch):
        """The last input state then the predicted records, (batch, T + 1, n, n)."""
        start = batch if segment is None else batch[:, -1]
        return torch.cat([start.unsqueeze(1), m(batch.unsqueeze(1))[:, 0]], dim=1)

    def residual(m, batch):
        w = records(m, batch)
        return relative_residual(equation, w[:, 0], w[:, 1:], dt)

    with torch.no_grad():
        before = torch.cat([residual(refined, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).mean().item()
        if reference is not None:
            w0_ref, traj_ref = (torch.as_tensor(a, dtype=torch.float64, device=dev) for a in reference)
            ref = relative_residual(equation, w0_ref, traj_ref, dt).mean().item()
            if not ref < 0.5 * before:
                raise ValueError(f"records every {dt} time units are too coarse for the residual's time derivative: "
                                 f"the reference trajectories' own relative H^-1 residual ({ref:.3g}) is not well below "
                                 f"the model's ({before:.3g}); generate data with a smaller record_every")
    optimizer = torch.optim.Adam(trainable, lr=lr)
    bar = Progress(iterations, desc="spectral-refiner", unit="it", mode=progress)
    t0 = time.perf_counter()
    history = []
    for it in range(iterations):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(it))
        batch = x[perm[:batch_size]]
        optimizer.zero_grad(set_to_none=True)
        w = records(refined, batch)
        loss = hminus1_squared(equation, residual_hat(equation, w, dt), alpha).mean()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        bar.set_postfix_str(f"H^-1 residual^2 {loss.item():.4g}")
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        after = torch.cat([residual(refined, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).mean().item()
    summary = {"from": str(Path(run_dir).resolve()), "iterations": iterations, "lr": lr, "alpha": alpha,
               "samples": len(x), "resolution": n, "relative_residual_before": before,
               "relative_residual_after": after, "seconds": seconds}
    config["refined"] = summary
    config["operator"]["parameters"] = sum(p.numel() for p in refined.parameters())
    # Written beside the output and renamed when complete, so an interruption leaves no half run.
    partial = output.with_name(output.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    ckpt.save_tensors(partial / ckpt.WEIGHTS, refined.state_dict())
    ckpt.save_json(partial / ckpt.CONFIG, config)
    if output.exists():
        output.rmdir()
    partial.rename(output)
    return summary
