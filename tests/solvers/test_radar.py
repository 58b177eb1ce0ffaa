"""Near-field MIMO radar: Born operator (exactness, adjoint, chunking, memory) and reconstructions."""
import math

import numpy as np
import pytest
import torch

from sciops.solvers import radar_recon as rr
from sciops.solvers.radar import (
    BLOCK_TARGET,
    C0,
    MimoBorn,
    cross_array,
    frequencies,
    load_array,
    planar_array,
    reference_grid,
    reference_operator,
)


def small_op(dtype=torch.complex128, shape=(5, 6, 7), n_freqs=4, geometry="cross", **kw):
    tx, rx = cross_array() if geometry == "cross" else planar_array(3, 2)
    return MimoBorn(tx, rx, frequencies(n=n_freqs), reference_grid(*shape), dtype=dtype, **kw)


def rand_complex(shape, seed):
    g = np.random.default_rng(seed)
    return g.standard_normal(shape) + 1j * g.standard_normal(shape)


def direct_born(tx, rx, freqs, grid, x):
    """The Born sum evaluated term by term (float64 numpy, no separability)."""
    zz, yy, xx = np.meshgrid(grid["z"], grid["y"], grid["x"], indexing="ij")
    vox = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], -1)
    rt = np.linalg.norm(tx[:, None] - vox[None], axis=-1)
    rr_ = np.linalg.norm(rx[:, None] - vox[None], axis=-1)
    k = 2 * np.pi * np.asarray(freqs) / C0
    ranges = rt[None, :, None, :] + rr_[None, None, :, :]  # (1, T, R, V)
    a = np.exp(-1j * k[:, None, None, None] * ranges) / (4 * np.pi * rt[None, :, None] * rr_[None, None])
    return np.einsum("ftrv,bv->bftr", a, x.reshape(x.shape[0], -1)), a


# --- geometry ---------------------------------------------------------------------------------------
def test_reference_cross_array_on_the_diagonals():
    tx, rx = cross_array()
    assert tx.shape == (12, 3) and rx.shape == (13, 3)
    np.testing.assert_allclose(tx[:, 0], tx[:, 1])
    np.testing.assert_allclose(rx[:, 0], -rx[:, 1])
    assert np.abs(np.r_[tx[:, :2].ravel(), rx[:, :2].ravel()]).max() == pytest.approx(0.15)
    assert np.all(tx[:, 2] == 0) and np.all(rx[:, 2] == 0)
    assert np.linalg.norm(tx[:, None] - rx[None], axis=-1).min() > 1e-3  # no tx on top of an rx
    op = reference_operator(15)
    assert op.image_shape == (49, 25, 25) and op.data_shape == (15, 12, 13)
    assert op.dense_bytes() / 1e9 == pytest.approx(1.15, abs=0.01)  # METHODS.md: ~1.15 GB


def test_planar_array_and_file_geometries(tmp_path):
    tx, rx = planar_array(3, 4, aperture=0.2)
    assert tx.shape == (9, 3) and rx.shape == (16, 3) and np.abs(rx[:, :2]).max() == pytest.approx(0.1)
    text = tmp_path / "array.txt"
    text.write_text("# kind x y z\n" + "".join(f"tx {a} {b} {c}\n" for a, b, c in tx)
                    + "".join(f"rx, {a}, {b}, {c}\n" for a, b, c in rx))
    t2, r2 = load_array(text)
    np.testing.assert_allclose(t2, tx)
    np.testing.assert_allclose(r2, rx)
    np.savez(tmp_path / "array.npz", tx=tx, rx=rx)
    t3, r3 = load_array(tmp_path / "array.npz")
    np.testing.assert_array_equal(t3, tx)
    (tmp_path / "bad.txt").write_text("tx 0 0\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected 'tx x y z'"):
        load_array(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError):
        load_array(tmp_path / "missing.txt")


# --- operator exactness -----------------------------------------------------------------------------
@pytest.mark.parametrize("geometry", ["cross", "planar"])
def test_forward_matches_direct_born_sum(geometry):
    op = small_op(geometry=geometry)
    x = rand_complex((2, *op.image_shape), 1)
    y_ref, _ = direct_born(op.tx, op.rx, op.freqs, op.axes, x)
    y = op.forward(x).numpy()
    assert np.linalg.norm(y - y_ref) / np.linalg.norm(y_ref) < 1e-13
    y32 = small_op(torch.complex64, geometry=geometry).forward(x).numpy()
    assert y32.dtype == np.complex64 and np.linalg.norm(y32 - y_ref) / np.linalg.norm(y_ref) < 1e-5


def test_factor_cache_on_a_uniform_band_holds_two_planes_whatever_the_frequency_count():
    uniform = [small_op(n_freqs=n, cache_factors=True).cache_bytes() for n in (4, 40)]
    assert uniform[0] == uniform[1] == 16 * 2 * (12 + 13) * 5 * 6 * 7
    tx, rx = cross_array()
    uneven = MimoBorn(tx, rx, [4e9, 5e9, 7e9], reference_grid(5, 6, 7), cache_factors=True)
    assert uneven._dk is None and uneven.cache_bytes() == 16 * 3 * (12 + 13) * 5 * 6 * 7


@pytest.mark.parametrize("dtype, tol", [(torch.complex128, 1e-12), (torch.complex64, 2e-5)])
def test_uniform_band_recurrence_stays_exact_over_40_frequencies(dtype, tol):
    """A uniform band builds the factors by the frequency recurrence; its rounding must not grow."""
    op = small_op(dtype, shape=(4, 5, 3), n_freqs=40)
    assert op._dk is not None
    x, y = rand_complex((2, *op.image_shape), 11), rand_complex((2, *op.data_shape), 12)
    y_ref, a = direct_born(op.tx, op.rx, op.freqs, op.axes, x)
    assert np.linalg.norm(op.forward(x).numpy() - y_ref) / np.linalg.norm(y_ref) < tol
    # back-projection kernel exp(+j k (R_t + R_r)) = conj(a) 4 pi R_t R_r
    amp = np.abs(a)
    bp_ref = np.einsum("ftrv,bftr->bv", a.conj() / amp, y).reshape(2, *op.image_shape)
    assert np.linalg.norm(op.back(y, "backprojection").numpy() - bp_ref) / np.linalg.norm(bp_ref) < tol


def test_arbitrary_geometry_adjoint_dot_product():
    g = np.random.default_rng(3)
    tx = np.c_[g.uniform(-0.2, 0.2, (5, 2)), g.uniform(-0.02, 0.0, 5)]
    rx = np.c_[g.uniform(-0.2, 0.2, (7, 2)), g.uniform(-0.02, 0.0, 7)]
    freqs = np.sort(g.uniform(3e9, 12e9, 6))
    op = MimoBorn(tx, rx, freqs, reference_grid(4, 5, 3), voxel_chunk=11, freq_chunk=4)
    x, y = rand_complex((3, *op.image_shape), 4), rand_complex((3, *op.data_shape), 5)
    lhs = np.vdot(op.forward(x).numpy(), y)
    rhs = np.vdot(x, op.adjoint(y).numpy())
    assert abs(lhs - rhs) / abs(lhs) < 1e-10
    y_ref, a = direct_born(tx, rx, freqs, op.axes, x)
    np.testing.assert_allclose(op.adjoint(y).numpy().reshape(3, -1),
                               np.einsum("ftrv,bftr->bv", a.conj(), y), rtol=1e-12)


def test_adjoint_dot_product_reference_array():
    op = small_op(shape=(6, 5, 5), n_freqs=5)
    x, y = rand_complex(op.image_shape, 6), rand_complex(op.data_shape, 7)
    lhs = np.vdot(op.forward(x).numpy(), y)
    rhs = np.vdot(x, op.adjoint(y).numpy())
    assert abs(lhs - rhs) / abs(lhs) < 1e-10


def test_results_do_not_depend_on_chunk_sizes_or_factor_cache():
    x = rand_complex((2, 5, 6, 7), 8)
    y = rand_complex((2, 4, 12, 13), 9)
    ref = small_op()
    assert ref.check_memory(2).voxel == 210 and ref.check_memory(2).freq == 4  # one block by default
    for kw in ({"freq_chunk": 1, "voxel_chunk": 7}, {"freq_chunk": 3, "voxel_chunk": 64}, {"cache_factors": True},
               {"cache_factors": True, "freq_chunk": 3}):
        op = small_op(**kw)
        for _ in range(2):  # second pass reads the cache
            np.testing.assert_allclose(op.forward(x).numpy(), ref.forward(x).numpy(), rtol=1e-12, atol=0)
            np.testing.assert_allclose(op.adjoint(y).numpy(), ref.adjoint(y).numpy(), rtol=1e-12, atol=0)
            for kernel in ("backprojection", "kirchhoff"):
                np.testing.assert_allclose(op.back(y, kernel).numpy(), ref.back(y, kernel).numpy(), rtol=1e-12)


def test_memory_budget_picks_smaller_blocks_and_refuses_before_allocating():
    op = small_op(memory_budget=300_000)
    ch = op.check_memory(1)
    assert ch.voxel < op.n_voxels  # had to split
    np.testing.assert_allclose(op.forward(rand_complex(op.image_shape, 1)).numpy(),
                               small_op().forward(rand_complex(op.image_shape, 1)).numpy(), rtol=1e-12)
    big = reference_operator(15)  # the budget (512 MiB) would allow one block; blocks stay near 16 MiB
    assert big._block_bytes(1, big.check_memory(1).freq, big.check_memory(1).voxel) <= BLOCK_TARGET < big.memory_budget
    with pytest.raises(ValueError, match=r"2000x2000x2000 grid .* needs at least .* MiB; the memory budget is 512.0 MiB"):
        MimoBorn(*cross_array(), frequencies(n=15), reference_grid(2000, 2000, 2000))  # 8e9 voxels: never allocated
    with pytest.raises(ValueError, match="batch 1000 needs at least"):
        small_op(memory_budget=2**20).check_memory(1000)


# --- reconstructions --------------------------------------------------------------------------------
@pytest.mark.parametrize("voxel", [(12, 4, 8), (5, 9, 2)])
def test_point_target_reconstructs_at_its_voxel(voxel):
    op = small_op(shape=(25, 13, 13), n_freqs=10)
    x = torch.zeros(op.image_shape, dtype=torch.complex128)
    x[voxel] = 1.0
    y = op.forward(x)
    for image in (rr.backprojection(op, y), rr.kirchhoff(op, y), op.adjoint(y)):
        assert np.unravel_index(int(image.abs().argmax()), op.image_shape) == voxel


def test_kirchhoff_weighting_matches_its_formula():
    op = small_op(shape=(2, 2, 2), n_freqs=2)
    y = rand_complex(op.data_shape, 11)
    zz, yy, xx = np.meshgrid(op.axes["z"], op.axes["y"], op.axes["x"], indexing="ij")
    vox = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], -1)
    rt = np.linalg.norm(op.tx[:, None] - vox[None], axis=-1)[None, :, None]
    rx = np.linalg.norm(op.rx[:, None] - vox[None], axis=-1)[None, None]
    dzt, dzr = (vox[:, 2] - op.tx[:, 2:3]) / rt[0, :, 0], (vox[:, 2] - op.rx[:, 2:3]) / rx[0, 0]
    k = (2 * np.pi * op.freqs / C0)[:, None, None, None]
    w = 4 * dzt[None, :, None] * dzr[None, None] * ((1j * k) ** 2 * rt * rx + 1j * k * (rt + rx) + 1)
    expected = np.einsum("ftrv,ftr->v", w * np.exp(1j * k * (rt + rx)), y)
    np.testing.assert_allclose(rr.kirchhoff(op, y).numpy().ravel(), expected, rtol=1e-12)


def test_cgls_residual_decreases_monotonically_and_reaches_least_squares():
    op = small_op(shape=(3, 2, 2), n_freqs=3)
    y = rand_complex((2, *op.data_shape), 13)
    for lam in (0.0, 1e-4):
        x, hist = rr.cgls(op, y, tikhonov=lam, iters=op.n_voxels)
        diffs = np.diff(hist.numpy(), axis=0)
        assert np.all(diffs <= 1e-12 * hist[0].numpy()), "CGLS residual must not increase"
        assert hist[-1, 0] < hist[0, 0]
        _, a = direct_born(op.tx, op.rx, op.freqs, op.axes, np.zeros((1, *op.image_shape)))
        a = a.reshape(-1, op.n_voxels)
        exact = np.linalg.solve(a.conj().T @ a + lam * np.eye(op.n_voxels), a.conj().T @ y[0].ravel())
        np.testing.assert_allclose(x[0].numpy().ravel(), exact, rtol=1e-6, atol=1e-8 * np.abs(exact).max())
    # cg_normal on A^H y solves the same normal equations
    x_cg = rr.cg_normal(op, op.adjoint(y), tikhonov=1e-4, iters=op.n_voxels)
    np.testing.assert_allclose(x_cg.numpy(), x.numpy(), rtol=1e-5, atol=1e-8 * np.abs(exact).max())


def test_tv_prox_properties():
    u = torch.rand((2, 4, 5, 6), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = torch.rand((2, 3, 4, 5, 6), dtype=torch.float64)
    p[:, 0, -1] = 0
    p[:, 1, :, -1] = 0
    p[:, 2, :, :, -1] = 0
    assert float((rr._grad(u) * p).sum()) == pytest.approx(-float((u * rr._div(p)).sum()), rel=1e-12)
    const = torch.full((1, 4, 5, 6), 0.7, dtype=torch.float64)
    torch.testing.assert_close(rr.prox_tv(const, 0.1), const)
    tv = lambda v: float(torch.linalg.vector_norm(rr._grad(v), dim=1).sum())  # noqa: E731
    out = rr.prox_tv(u, 0.05, iters=100)
    assert tv(out) < 0.8 * tv(u)
    assert float(out.mean()) == pytest.approx(float(u.mean()), rel=1e-9)  # TV prox keeps the mean
    torch.testing.assert_close(rr.prox_sparsity(u, 0.3), torch.clamp(u - 0.3, min=0))


def test_pnp_admm_beats_backprojection_on_a_sparse_scene_and_calls_a_plugged_denoiser():
    op = small_op(shape=(15, 9, 9), n_freqs=8, cache_factors=True)
    x = torch.zeros(op.image_shape, dtype=torch.complex128)
    for v, a in (((4, 2, 3), 1.0), ((10, 6, 5), 0.7j), ((7, 4, 6), -0.5)):
        x[v] = a
    y = op.forward(x)
    truth = x.abs() / x.abs().max()

    def err(img):
        m = img.abs() / img.abs().max()
        return float(torch.linalg.vector_norm(m - truth) / torch.linalg.vector_norm(truth))

    e_bp = err(rr.backprojection(op, y))
    e_pnp = err(rr.pnp_admm(op, y, prox="sparsity", strength=0.05, iters=15))
    assert e_pnp < 0.5 * e_bp, (e_pnp, e_bp)
    seen = []

    def denoiser(mag, sigma):
        seen.append((float(mag.min()), float(mag.max()), sigma))
        return mag

    rr.pnp_admm(op, y, prox=denoiser, strength=0.1, iters=3, cg_iters=2)
    assert len(seen) == 3 and all(lo >= 0 and hi == pytest.approx(1.0) and s == 0.1 for lo, hi, s in seen)


# --- bad input --------------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_value_errors():
    tx, rx = cross_array()
    cases = [
        (lambda: MimoBorn(tx, rx, frequencies(n=3), reference_grid(3, 3, 3, z_range=(-0.2, 0.3))), "at or behind the array"),
        (lambda: MimoBorn(tx, rx, [5e9, 4e9, 6e9], reference_grid(3, 3, 3)), "strictly increasing; f\\[0\\]=5e\\+09 Hz"),
        (lambda: MimoBorn(tx, rx, [0.0, 4e9], reference_grid(3, 3, 3)), "finite and positive"),
        (lambda: MimoBorn(tx, rx, [-1e9], reference_grid(3, 3, 3)), "finite and positive"),
        (lambda: MimoBorn(tx[:, :2], rx, [4e9], reference_grid(3, 3, 3)), "tx positions must have shape"),
        (lambda: MimoBorn(tx, rx, [4e9], reference_grid(3, 3, 3), dtype=torch.float64), "dtype must be"),
        (lambda: MimoBorn(tx, rx, [4e9], reference_grid(3, 3, 3), voxel_chunk=0), "voxel_chunk must be"),
    ]
    op = small_op()
    y = rand_complex(op.data_shape, 0)
    y[1, 2, 3] = np.nan
    cases += [
        (lambda: op.adjoint(y), r"measurements contain NaN or Inf \(1 of 624 entries\)"),
        (lambda: rr.kirchhoff(op, y), "measurements contain NaN"),
        (lambda: rr.cgls(op, y), "measurements contain NaN"),
        (lambda: op.adjoint(np.zeros((4, 12, 12))), r"measurements must have shape \(batch, F, T, R\)"),
        (lambda: op.forward(np.zeros((5, 6, 8))), "image must have shape"),
        (lambda: rr.cgls(op, np.zeros(op.data_shape), tikhonov=-1), "tikhonov must be"),
        (lambda: rr.pnp_admm(op, np.zeros(op.data_shape), prox="median"), "prox must be 'tv', 'sparsity' or a callable"),
    ]
    for make, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as info:
            make()
        assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = rand_complex((2, 5, 6, 7), 1)
    cpu, gpu = small_op(), small_op(device="cuda")
    np.testing.assert_allclose(gpu.forward(x).cpu().numpy(), cpu.forward(x).numpy(), rtol=1e-10)
    y = rand_complex((2, 4, 12, 13), 2)
    np.testing.assert_allclose(gpu.adjoint(y).cpu().numpy(), cpu.adjoint(y).numpy(), rtol=1e-10)
    assert math.isfinite(rr.operator_norm_sq(gpu))
