"""Specification of the multigrid V-cycle layer (``sciops.layers.multigrid``) and MgNO.

* ``MultigridConv`` equals the V-cycle written straight from its definition with PyTorch's own
  padded convolutions and an explicit scatter for the prolongation, for every padding mode and for
  odd and even grids; with hand-set stencils (Helmholtz operator, damped Jacobi, full weighting,
  bilinear interpolation) it is the textbook periodic V-cycle, whose convergence factor does not
  depend on the grid size.
* MgNO maps (batch, C_in, n, n) to (batch, C_out, n, n) for every grid size it allows (odd, even,
  2^k + 1), never loses the last rows and columns, honours its boundary condition (zeros for
  bounded problems, circular for periodic ones: then it commutes with shifts by 2^(levels-1)), and
  refuses bad arguments and grids with a message that says what is allowed.
* A short training run on the Darcy fixture beats a measured threshold, and the run directory
  loads as a Surrogate that serves the training grid and a finer one.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from small_settings import RESOLUTION, SMALL_TRAINING

import sciops
from sciops import operators, problems
from sciops.grid.trainer import train
from sciops.layers.multigrid import MultigridConv, level_sizes, stencil_scale
from sciops.operators.mgno import MgNO
from sciops.training import TrainConfig

F64 = torch.float64
SMALL = dict(width=6, layers=2, levels=3)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one intra-op thread is several times faster here when other jobs share the
    cores (OpenMP threads then wait on each other), and does not fight them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the V-cycle against its definition ------------------------------------------------------------

def reference_vcycle(layer: MultigridConv, f: torch.Tensor) -> torch.Tensor:
    """The V-cycle of the module docstring, 2D, from nn.Conv2d's padding modes and explicit loops."""
    mode = layer.padding_mode  # nn.Conv2d's padding_mode names: "zeros", "circular", "reflect"

    def stencil(x, w, stride=1):
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, stride=stride, padding=1, bias=False,
                               padding_mode=mode).to(x.dtype)
        conv.weight.data = (w * stencil_scale(w)).to(x.dtype)
        return conv(x)

    def prolong(u, w, n):
        """Coarse point i adds w[:, :, a, b] u_i to fine point (2 i0 + a - 1, 2 i1 + b - 1); coarse
        points -1 and m are the boundary mode's ghosts; fine points outside [0, n) are dropped."""
        w = (w * stencil_scale(w)).to(u.dtype)
        ghost = F.pad(u, (1, 1, 1, 1), mode="constant" if mode == "zeros" else mode)
        fine = torch.zeros(u.shape[0], w.shape[1], n[0], n[1], dtype=u.dtype)
        for i0 in range(ghost.shape[2]):
            for i1 in range(ghost.shape[3]):
                for a in range(4):
                    for b in range(4):
                        y, x = 2 * (i0 - 1) + a - 1, 2 * (i1 - 1) + b - 1
                        if 0 <= y < n[0] and 0 <= x < n[1]:
                            fine[:, :, y, x] += ghost[:, :, i0, i1] @ w[:, :, a, b]
        return fine

    rhs, sols = [], []
    for grid in layer.grids:
        u = stencil(f, grid.pre[0])
        for S in grid.pre[1:]:
            u = u + stencil(f - stencil(u, grid.A), S)
        rhs.append(f)
        sols.append(u)
        if grid.R is not None:
            f = stencil(f - stencil(u, grid.A), grid.R, stride=2)
    u = sols[-1]
    for l in range(layer.levels - 2, -1, -1):
        grid = layer.grids[l]
        u = sols[l] + prolong(u, grid.P, rhs[l].shape[2:])
        for S in grid.post:
            u = u + stencil(rhs[l] - stencil(u, grid.A), S)
    return u


@pytest.mark.parametrize("mode, sizes", [("zeros", (9, 11)), ("zeros", (16, 12)), ("zeros", (17, 17)),
                                         ("reflect", (9, 11)), ("reflect", (16, 12)), ("circular", (16, 12))])
def test_multigrid_conv_matches_the_definition(mode, sizes):
    """Odd, even and 2^k + 1 grids (periodic grids must be divisible by 2^(levels - 1) = 4)."""
    torch.manual_seed(0)
    layer = MultigridConv(2, 3, levels=3, pre_smooth=[2, 1, 2], post_smooth=[1, 2, 0], padding_mode=mode).double()
    f = randn(2, 2, *sizes, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(layer(f), reference_vcycle(layer, f), rtol=1e-10, atol=1e-10)


def test_level_sizes():
    """Coarse size ceil(n / 2): vertex grids 2^k + 1 stay vertex grids, 2^k stay 2^k."""
    assert level_sizes((33, 64), 5, "zeros") == [(33, 64), (17, 32), (9, 16), (5, 8), (3, 4)]
    assert level_sizes((21,), 5, "reflect") == [(21,), (11,), (6,), (3,), (2,)]
    assert level_sizes((48, 32), 5, "circular") == [(48, 32), (24, 16), (12, 8), (6, 4), (3, 2)]


def _outer(v: torch.Tensor, ndim: int) -> torch.Tensor:
    k = v
    for _ in range(ndim - 1):
        k = k[..., None] * v
    return k


def textbook_vcycle(ndim: int, n: int, c: float):
    """A 1-channel periodic MultigridConv with hand-set stencils, and the fine operator.

    A_l: -Laplacian + c on the grid of spacing h_l = 2^l / n (5-point in 2D); S: damped Jacobi,
    omega = 0.8; R: full weighting; P: linear interpolation (weights 1/2, 1, 1/2, 0 at offsets
    -1 .. 2 per dimension). Levels down to a 2^d grid, 2 pre- and 2 post-smoothing steps, 20 on the
    coarsest grid (an almost exact coarse solve)."""
    levels = int(math.log2(n))
    layer = MultigridConv(1, 1, ndim=ndim, levels=levels, pre_smooth=[2] * (levels - 1) + [20], post_smooth=2,
                          padding_mode="circular").double()
    centre = (1,) * ndim
    with torch.no_grad():
        for l, grid in enumerate(layer.grids):
            h = 2 ** l / n
            A = torch.zeros((3,) * ndim, dtype=F64)
            A[centre] = 2 * ndim / h ** 2 + c
            for d in range(ndim):
                for side in (0, 2):
                    A[tuple(side if e == d else 1 for e in range(ndim))] = -1 / h ** 2
            S = torch.zeros((3,) * ndim, dtype=F64)
            S[centre] = 0.8 / A[centre]
            stencils = [(grid.A, A), (grid.R, _outer(torch.tensor([0.25, 0.5, 0.25], dtype=F64), ndim)),
                        (grid.P, _outer(torch.tensor([0.5, 1.0, 0.5, 0.0], dtype=F64), ndim))]
            stencils += [(w, S) for w in [*grid.pre, *grid.post]]
            for w, value in stencils:
                if w is not None:
                    w.copy_(value.reshape(w.shape) / stencil_scale(w))
            if l == 0:
                fine = A
    conv = {1: F.conv1d, 2: F.conv2d}[ndim]
    apply = lambda u: conv(F.pad(u, (1,) * (2 * ndim), mode="circular"), fine.reshape(1, 1, *fine.shape))
    return layer, apply


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("n", [32, 64, 128])
def test_hand_set_layer_is_a_grid_independent_multigrid_solver(ndim, n):
    """Iterating u <- u + V(f - A u) on -Laplace(u) + 10 u = f (periodic) cuts the residual by a
    factor that does not grow with n, the hallmark of multigrid. Measured after 6 cycles:
    1D 0.125, 0.127, 0.131; 2D 0.158, 0.163, 0.165 (n = 32, 64, 128); bound 0.2. Prolongation
    shifted by one fine point, or zero-padded instead of wrapped, gives 0.26 - 0.8 and fails."""
    layer, A = textbook_vcycle(ndim, n, c=10.0)
    f = randn(1, 1, *(n,) * ndim, dtype=F64)
    u = torch.zeros_like(f)
    residuals = [f.norm().item()]
    with torch.no_grad():
        for _ in range(6):
            u = u + layer(f - A(u))
            residuals.append((f - A(u)).norm().item())
    assert residuals[-1] / residuals[-2] < 0.2
    assert residuals[-1] / residuals[0] < 0.2 ** 6


# --- shapes and grid sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [17, 21, 33, 64, 65])
def test_default_mgno_returns_the_input_grid(n):
    """One model (5 levels, built once) runs on vertex grids 2^k + 1, on 2^k and on other sizes."""
    torch.manual_seed(0)
    model = MgNO(1, 1, width=8, layers=2)
    y = model(randn(2, 1, n, n))
    assert y.shape == (2, 1, n, n) and y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("channels", [(1, 1), (3, 2), (2, 4)])
@pytest.mark.parametrize("sizes", [(17, 21), (20, 13)])
def test_channels_and_rectangular_grids(channels, sizes):
    cin, cout = channels
    torch.manual_seed(0)
    y = MgNO(cin, cout, **SMALL)(randn(2, cin, *sizes))
    assert y.shape == (2, cout, *sizes)


@pytest.mark.parametrize("ndim, sizes", [(1, (21,)), (3, (9, 10, 11))])
def test_one_and_three_dimensions(ndim, sizes):
    torch.manual_seed(0)
    assert MgNO(2, 1, ndim=ndim, **SMALL)(randn(1, 2, *sizes)).shape == (1, 1, *sizes)


@pytest.mark.parametrize("n", [17, 20, 21])
def test_last_rows_and_columns_are_computed_from_the_data(n):
    """No point is lost to the coarsening of odd or non-power-of-two grids: the output's corners
    depend on the input's far corners, and every input point (last row and column included) moves
    the output."""
    torch.manual_seed(0)
    model = MgNO(1, 1, width=4, layers=2, levels=5).double()
    x = randn(1, 1, n, n, dtype=F64).requires_grad_()
    y = model(x)
    (grad_corner,) = torch.autograd.grad(y[0, 0, -1, -1], x, retain_graph=True)
    assert grad_corner[0, 0, 0, 0] != 0 and grad_corner[0, 0, -1, -1] != 0
    (grad_all,) = torch.autograd.grad(y.sum(), x)
    assert (grad_all != 0).all()


# --- boundary conditions ---------------------------------------------------------------------------

def test_boundary_follows_geometry_unless_set():
    modes = lambda model: {mg.padding_mode for mg in model.mg}
    assert modes(MgNO(geometry="bounded", **SMALL)) == {"zeros"}
    assert modes(MgNO(geometry="periodic", **SMALL)) == {"circular"}
    assert modes(MgNO(geometry="bounded", boundary="periodic", **SMALL)) == {"circular"}
    assert modes(MgNO(geometry="periodic", boundary="reflect", **SMALL)) == {"reflect"}


def test_periodic_mgno_commutes_with_shifts_by_the_coarsest_spacing():
    """Circular padding at every level: shifting the input by 2^(levels-1) = 4 points (one coarsest
    cell) shifts the output by as much, in both directions, up to rounding. The same weights with
    zero padding (Dirichlet) do not commute with the shift, nor does the periodic model with a shift
    of one point, which the coarse grids cannot follow."""
    torch.manual_seed(0)
    periodic = MgNO(2, 1, geometry="periodic", width=6, layers=3, levels=3)
    dirichlet = MgNO(2, 1, geometry="bounded", width=6, layers=3, levels=3)
    dirichlet.load_state_dict(periodic.state_dict())
    x = randn(2, 2, 24, 32)
    shift = lambda t, s: torch.roll(t, shifts=(s, -2 * s), dims=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(periodic(shift(x, 4)), shift(periodic(x), 4), rtol=1e-5, atol=1e-5)
        assert (dirichlet(shift(x, 4)) - shift(dirichlet(x), 4)).abs().max() > 1e-2
        assert (periodic(shift(x, 1)) - shift(periodic(x), 1)).abs().max() > 1e-2


def test_dirichlet_sees_zeros_past_the_edge():
    """With one level a layer is u = S f + W f + b: with zero padding a field that vanishes on a
    two-point band by the edge gives the same interior values as the same field on a larger grid
    (the stencils read only zeros past the edge either way); reflect padding reads the mirror image."""
    torch.manual_seed(0)
    zeros = MgNO(1, 2, width=4, layers=1, levels=1, pre_smooth=1, boundary="dirichlet")
    reflect = MgNO(1, 2, width=4, layers=1, levels=1, pre_smooth=1, boundary="reflect")
    reflect.load_state_dict(zeros.state_dict())
    inner = F.pad(randn(1, 1, 10, 10), (1, 1, 1, 1))  # 12 x 12, zero on the edge rows and columns
    outer = F.pad(inner, (3, 3, 3, 3))  # the same field on an 18 x 18 grid
    with torch.no_grad():
        torch.testing.assert_close(zeros(inner), zeros(outer)[..., 3:-3, 3:-3])
        x = randn(1, 1, 12, 12)
        direct = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"),
                          zeros.mg[0].grids[0].pre[0] * stencil_scale(zeros.mg[0].grids[0].pre[0]))
        torch.testing.assert_close(reflect(x), direct + zeros.pointwise[0](x))


# --- bad arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(ndim=4), "ndim must be 1, 2 or 3"),
    (dict(geometry="sphere"), "geometry must be one of"),
    (dict(boundary="neumann"), r"boundary must be one of \('auto', 'dirichlet', 'periodic', 'reflect'\)"),
    (dict(activation="swish"), "activation must be one of"),
    (dict(levels=0), "levels must be an integer >= 1"),
    (dict(levels="auto"), "levels must be an integer >= 1"),
    (dict(width=0), "width must be an integer >= 1"),
    (dict(layers=2.5), "layers must be an integer >= 1"),
    (dict(pre_smooth=0), "pre_smooth must be an integer >= 1"),
    (dict(post_smooth=-1), "post_smooth must be an integer >= 0"),
    (dict(levels=3, pre_smooth=[1, 2]), r"a list of 3 such integers \(one per level\)"),
    (dict(bias_grid=1), "bias_grid must be 0 .constant bias. or an integer >= 2"),
    (dict(geometry="periodic", bias_grid=5), "bias_grid applies to bounded geometry"),
])
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MgNO(1, 1, **kwargs)


def test_bias_function_is_one_function_of_position_at_every_resolution():
    """bias_grid=m: each layer adds a learned field on an m^2 vertex grid, interpolated with its
    corners on the boundary nodes, so grids of 2^k + 1 nodes see the same function at shared nodes."""
    torch.manual_seed(0)
    model = MgNO(1, 1, **SMALL, bias_grid=5).eval()
    assert len(model.bias_fields) == SMALL["layers"]
    with torch.no_grad():
        for field in model.bias_fields:
            field.copy_(randn(*field.shape, seed=3))
        for mg, pointwise in zip(model.mg, model.pointwise):  # leave only the bias path
            for p in (*mg.parameters(), *pointwise.parameters()):
                p.zero_()
    coarse, fine = model(torch.zeros(1, 1, 17, 17)), model(torch.zeros(1, 1, 33, 33))
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, rtol=1e-5, atol=1e-6)
    # the last layer's field on a 5^2 grid comes back exactly at the 5^2 nodes of a 17^2 grid
    last = model.bias_fields[-1][0, 0]
    torch.testing.assert_close(coarse[0, 0, ::4, ::4], last, rtol=1e-5, atol=1e-6)


def test_grids_that_cannot_be_coarsened_raise_naming_size_and_rule():
    torch.manual_seed(0)
    bounded = MgNO(1, 1, width=4, layers=1, levels=5)
    with pytest.raises(ValueError, match=r"grid size 16 is too small.*5 levels.*at least 2\^4 \+ 1 = 17"):
        bounded(torch.zeros(1, 1, 16, 33))
    periodic = MgNO(1, 1, geometry="periodic", width=4, layers=1, levels=4)
    with pytest.raises(ValueError, match=r"grid size 20 is not allowed.*multiple of 2\^3 = 8"):
        periodic(torch.zeros(1, 1, 32, 20))


@pytest.mark.parametrize("shape, match", [((1, 16, 16), r"\(batch, channels, 2 spatial dims\)"),
                                          ((1, 1, 17, 17, 17), r"\(batch, channels, 2 spatial dims\)"),
                                          ((1, 3, 17, 17), "expects 2 input channels, got 3")])
def test_wrong_input_shapes_raise(shape, match):
    with pytest.raises(ValueError, match=match):
        MgNO(2, 1, **SMALL)(torch.zeros(shape))


# --- registry --------------------------------------------------------------------------------------

def test_registry_builds_mgno_with_json_hyperparameters():
    hp = operators.hyperparameters("mgno")
    assert hp == dict(width=24, layers=4, levels=5, pre_smooth=1, post_smooth=1, boundary="auto", activation="gelu",
                      bias_grid=0)
    model = operators.build("mgno", in_channels=2, out_channels=1, ndim=2, geometry="periodic", width=8, layers=3,
                            levels=4, pre_smooth=[2, 1, 1, 1], post_smooth=0)
    assert isinstance(model, MgNO) and len(model.mg) == 3 and model.mg[0].padding_mode == "circular"
    assert model(torch.zeros(1, 2, 16, 24)).shape == (1, 1, 16, 24)


def test_default_parameter_count():
    """Documented in sciops/operators/mgno.py (the paper's Darcy model: about 0.57M)."""
    assert sum(p.numel() for p in MgNO().parameters()) == 314_573


# --- training and the round trip -------------------------------------------------------------------

TRAIN_HPARAMS = dict(width=16, layers=3, levels=4)


@pytest.fixture(scope="module")
def mgno_run(tmp_path_factory, darcy_file):
    """Module-scoped, so set up before the autouse ``one_thread``: it sets the thread count itself."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = tmp_path_factory.mktemp("runs") / "mgno"
        config = TrainConfig(**{**SMALL_TRAINING, "lr": 2e-2})
        summary = train("mgno", darcy_file, run_dir, hparams=TRAIN_HPARAMS, config=config, progress=False)
    finally:
        torch.set_num_threads(threads)
    return run_dir, summary


def test_short_training_run_on_darcy_beats_threshold(mgno_run):
    """MgNO (width 16, 3 layers, 4 levels, 65k parameters) trained 12 epochs (lr 2e-2, H1 loss) on
    198 Darcy pairs at 21^2 must reach validation relative L2 < 0.15. Measured, seeds 0-3:
    0.066, 0.069, 0.086, 0.069 (~5 s on one core); the FNO fixture reaches 0.057 with this
    schedule; an untrained model is ~1. Control: the same model with one level (smoothing only,
    a local operator) stalls at 0.38, so the bound needs the coarse grids."""
    _, summary = mgno_run
    assert summary["epochs"] == 12
    assert summary["best_val"]["l2"] < 0.15, summary["best_val"]


def test_trained_run_round_trip_and_other_resolutions(mgno_run):
    """The run loads as a Surrogate that is a drop-in for problem.solve at the training grid (fresh
    samples: mean relative L2 error < 0.2 against the solver; measured 0.063) and runs, with the same
    weights, on a finer grid (33^2; accuracy there is not promised); a grid too small for the levels
    is a clear ValueError."""
    run_dir, _ = mgno_run
    surrogate = sciops.load(run_dir)
    problem = surrogate.problem
    a = problem.sample_inputs(4, seed=11)
    u, u_hat = problem.solve(a), surrogate.solve(a)
    assert isinstance(u_hat, np.ndarray) and u_hat.shape == u.shape == (4, RESOLUTION, RESOLUTION)
    errors = np.linalg.norm((u_hat - u).reshape(4, -1), axis=1) / np.linalg.norm(u.reshape(4, -1), axis=1)
    assert errors.mean() < 0.2, errors
    assert surrogate.solve(a[0]).shape == (RESOLUTION, RESOLUTION)
    a_fine = problems.get("darcy", resolution=33).sample_inputs(2, seed=11)
    u_fine = surrogate.solve(a_fine)
    assert u_fine.shape == (2, 33, 33) and np.isfinite(u_fine).all()
    with pytest.raises(ValueError, match="grid size 8 is too small"):
        surrogate.solve(np.ones((1, 8, 8), dtype=np.float32))
