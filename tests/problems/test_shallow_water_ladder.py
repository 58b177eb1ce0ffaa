"""The ``shallow-water`` solver ladder: coarser grids with spherical-harmonic truncation in and
zero padding out, and the largest stable dt. Every rung returns the reference's shapes, coarse
grids converge to the reference as they refine, the reference's own grid reproduces it exactly,
and a coarse rung is the coarse problem's own solve moved between grids spectrally."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sciops import problems
from sciops.problems.shallow_water import OUTPUTS

ONE_HOUR = dict(records=1, record_every=3600.0)  # 32 x 64, lmax 32: 4 steps of 900 s


@pytest.fixture(autouse=True)
def one_thread():
    """These small transforms run ~100x slower with two threads on a busy shared box (the threads wait
    for each other); the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sw(**kw):
    return problems.get("shallow-water", **{**ONE_HOUR, **kw})


def rel(a, b):
    return max(float(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k])) for k in OUTPUTS)


def test_rungs_run_label_themselves_and_return_the_reference_shapes():
    p = sw()
    rungs = p.ladder()
    assert [r.label for r in rungs] == ["solve 8x16 (lmax 8)", "solve 16x32 (lmax 16)", "dt 1200 s (stability limit)"]
    x = p.sample_inputs(2, seed=1)
    ref = p.solve(x)
    for rung in rungs:
        out = rung.solve(x)
        assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in ref.items()}
        assert rung.solve({k: v[0] for k, v in x.items()})["phi"].shape == ref["phi"].shape[1:]
        assert 0 < rel(out, ref) < 1.0, rung.label
    # within the limit it is named after; no dt rung when the reference already takes the fewest steps
    assert rungs[-1].solve.keywords["dt"] <= p.time_step_limit()
    assert [r.label for r in sw(record_every=1800.0).ladder()] == ["solve 8x16 (lmax 8)", "solve 16x32 (lmax 16)"]


def test_coarse_grid_rungs_converge_to_the_reference():
    """The random states' energy spectrum decays algebraically (l^-3), so the coarse solves converge
    algebraically too: each is within 10% of the best any lmax_c solve can do, the reference's
    records truncated to degrees and orders < lmax_c."""
    p = sw(peak_degree=2.0)
    x = p.sample_inputs(2, seed=4)
    ref = p.solve(x)
    fine = p.solver
    state = fine.from_grid(*(torch.as_tensor(ref[k], dtype=torch.float64) for k in OUTPUTS))
    errors, best = [], []
    for rung in [r for r in p.ladder() if r.label.startswith("solve")]:  # 8 x 16, then 16 x 32
        lmax = rung.solve.keywords["on"].lmax
        truncated = state.clone()
        truncated[..., lmax:, :] = 0
        truncated[..., :, lmax:] = 0
        grid = fine.to_grid(truncated).numpy()
        best.append(rel({k: grid[:, :, i] for i, k in enumerate(OUTPUTS)}, ref))
        errors.append(rel(rung.solve(x), ref))
    assert errors[0] > 2 * errors[1] and best[0] > 2 * best[1], (errors, best)
    assert all(b <= e <= 1.1 * b for e, b in zip(errors, best)), (errors, best)


def test_the_reference_grid_is_exact_and_a_coarse_rung_is_the_coarse_solve_moved_spectrally():
    p = sw()
    x = p.sample_inputs(2, seed=2)
    same = p.solve_with(x, on=p.coarser(32))
    for k in OUTPUTS:
        np.testing.assert_array_equal(same[k], p.solve(x)[k])
    # an input the coarse grid holds exactly: the coarse problem's own samples, evaluated on the fine grid
    coarse = p.coarser(16)
    xc = coarse.sample_inputs(2, seed=3)
    fine, small = p.solver, coarse.solver
    state = small.from_grid(*(torch.as_tensor(xc[k], dtype=torch.float64) for k in ("phi0", "u0", "v0")))
    padded = torch.zeros(state.shape[:-2] + (fine.lmax, fine.mmax), dtype=state.dtype)
    padded[..., :small.lmax, :small.mmax] = state
    grid = fine.to_grid(padded).numpy()
    x_fine = {k: grid[:, i] for i, k in enumerate(("phi0", "u0", "v0"))}
    rung = next(r for r in p.ladder() if r.label.startswith("solve 16x32"))
    out = rung.solve(x_fine)
    expected = coarse.solve(xc)
    on_fine = fine.from_grid(*(torch.as_tensor(out[k], dtype=torch.float64) for k in OUTPUTS))
    # the records hold no degree or order beyond the coarse truncation ...
    assert float(on_fine[..., small.lmax:, :].abs().max()) < 1e-6 * float(on_fine.abs().max())
    # ... and are the coarse solve's records (float32 storage of the input and of the records)
    recon = small.to_grid(on_fine[..., :small.lmax, :small.mmax].contiguous()).numpy()
    for i, k in enumerate(OUTPUTS):
        scale = np.abs(expected[k]).max()
        np.testing.assert_allclose(recon[:, :, i], expected[k], rtol=0, atol=1e-5 * scale)


def test_bad_configurations_are_refused():
    p = sw()
    x = p.sample_inputs(1, seed=0)
    with pytest.raises(ValueError, match="dt=1000 is not valid; expected a positive divisor of record_every=3600 s"):
        p.solve_with(x, dt=1000)
    with pytest.raises(ValueError, match="expected a shallow-water problem with lmax <= 32"):
        p.solve_with(x, on=problems.get("shallow-water", nlat=64))
