"""
Add a problem in one file
=========================

A problem is an input distribution, parameters, a reference solver and the metadata of its
fields (:class:`sciops.problems.Problem`). Once it is in ``sciops.problems.REGISTRY`` (one line; a
problem shipped with sciops is one module in ``problems/`` and one registry entry), everything
else works unchanged: ``sciops generate``, the crash-safe HDF5 writer, training, ``sciops.load``
and the evaluation against the solver and its ladder.

The problem here: viscous Burgers' equation u_t + (u^2 / 2)_x = nu u_xx on the periodic interval
[0, 1), from a random smooth u0 to u at t = T, solved by a pseudo-spectral method (2/3
dealiasing, integrating-factor RK4).
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.problems import Field, Param, Problem, Rung
from sciops.training import TrainConfig


def burgers(u0: np.ndarray, nu: float, t_final: float, n_steps: int, n: int | None = None) -> np.ndarray:
    """Pseudo-spectral Burgers solve of a batch u0 (B, N) on n points (default N), returned on N."""
    m = u0.shape[-1]
    n = n or m
    u_hat = np.fft.rfft(u0, axis=-1) * (n / m)
    u_hat = np.pad(u_hat, ((0, 0), (0, max(0, n // 2 + 1 - u_hat.shape[-1]))))[:, :n // 2 + 1]
    k = 2j * np.pi * np.fft.rfftfreq(n, d=1 / n)
    keep = np.abs(np.fft.rfftfreq(n, d=1 / n)) < n / 3          # 2/3 dealiasing
    dt = t_final / n_steps
    half, full = np.exp(nu * k ** 2 * dt / 2), np.exp(nu * k ** 2 * dt)

    def rhs(v):
        return -0.5 * k * np.fft.rfft(np.fft.irfft(v, n=n) ** 2) * keep

    for _ in range(n_steps):
        a = rhs(u_hat)
        b = rhs(half * (u_hat + dt / 2 * a))
        c = rhs(half * u_hat + dt / 2 * b)
        d = rhs(full * u_hat + dt * half * c)
        u_hat = full * u_hat + dt / 6 * (full * a + 2 * half * (b + c) + d)
    out = u_hat[:, :m // 2 + 1] * (m / n)
    return np.fft.irfft(np.pad(out, ((0, 0), (0, m // 2 + 1 - out.shape[-1]))), n=m, axis=-1).astype(np.float32)


class Burgers(Problem):
    """Viscous Burgers on [0, 1) periodic: u0 -> u(T)."""

    name = "burgers"
    geometry = "periodic"
    operator_params = ("viscosity", "t_final")        # data with other values are another operator's
    size_params = ("resolution",)
    PARAMS = (
        Param("resolution", 64, int, "grid points", min=16, max=4096),
        Param("viscosity", 0.05, float, "nu", min=1e-4, max=1.0),
        Param("t_final", 0.5, float, "final time", min=0.01, max=10.0),
        Param("steps", 400, int, "RK4 steps of the reference solve", min=10, max=100000),
    )

    def __init__(self, **params):
        super().__init__(**params)
        n = self.params["resolution"]
        self.grid = {"x": np.arange(n) / n}
        self.grid_units = {"x": "1"}
        self.fields = {"u0": Field(("x",), "1", "input", "initial state"),
                       "u": Field(("x",), "1", "output", "state at t_final")}

    @property
    def solver_info(self):
        return {"name": "burgers-spectral-rk4", "steps": self.params["steps"]}

    def _sample_one(self, rng):
        n = self.params["resolution"]
        k = np.arange(1, 9)
        coef = rng.standard_normal((2, k.size)) / k ** 1.5
        x = self.grid["x"]
        return (coef[0] @ np.sin(2 * np.pi * np.outer(k, x)) + coef[1] @ np.cos(2 * np.pi * np.outer(k, x))
                ).astype(np.float32).reshape(n)

    def solve(self, inputs):
        p = self.params
        return burgers(np.asarray(inputs, np.float64), p["viscosity"], p["t_final"], p["steps"])

    def ladder(self):
        """Cheaper solves: fewer time steps, and coarser grids (spectral interpolation in and out)."""
        p = self.params
        rungs = [Rung(f"{s} steps", self.with_params(steps=s).solve) for s in (10, 25, 100) if s < p["steps"]]
        for n in (16, 32):
            rungs.append(Rung(f"{n} points", lambda u0, n=n: burgers(np.asarray(u0, np.float64), p["viscosity"],
                                                                   p["t_final"], p["steps"], n=n)))
        return rungs


# %%
# Register it: ``module:Class`` as in ``sciops.problems.REGISTRY``. A script's own module is
# ``__main__``; a problem in your package would be ``"mypackage.burgers:Burgers"``.
problems.REGISTRY["burgers"] = "__main__:Burgers"
problem = problems.get("burgers", resolution=64)
print(problem)
print("ladder:", [rung.label for rung in problem.ladder()])

# %%
# From here on it is any sciops problem: generate a dataset, train an operator, evaluate.
work = Path(tempfile.mkdtemp())
generate(problem, 128, work / "burgers.h5", seed=0, progress=False)
sciops.train("fno", work / "burgers.h5", work / "run", hparams={"modes": 16, "width": 24, "layers": 3},
             config=TrainConfig(epochs=15, batch_size=16, lr=5e-3, loss="l2"), progress=False)
surrogate = sciops.load(work / "run")

from sciops.grid.evaluation import evaluate, summary_line  # noqa: E402

report = evaluate(surrogate, fresh=16, progress_enabled=False)
print(summary_line(report))

u0 = problem.sample_inputs(3, seed=999)
fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
for ax, a, u, v in zip(axes, u0, problem.solve(u0), surrogate.solve(u0)):
    ax.plot(problem.grid["x"], a, color="0.6", label="u0")
    ax.plot(problem.grid["x"], u, label="u(T), solver")
    ax.plot(problem.grid["x"], v, "--", label="u(T), FNO")
    ax.set_xlabel("x")
axes[0].legend(fontsize=8)
fig.tight_layout()
