"""Benchmark: matrix-free MIMO Born forward/adjoint (sciops) against a dense einsum of the precomputed matrix.

The dense peer is one complex gemm per application (``torch.matmul``, what ``einsum`` dispatches
to); the adjoint is computed as conj(conj(y) A), which reads A as stored, whereas
``einsum("mv,bm->bv", a.conj(), y)`` materialises a conjugated copy of A (slower, twice the memory).
Both apply the same operator of the reference cross array (12 x 13 antennas, 4-16 GHz) to a batch
of random complex images in complex128 on a grid small enough for the dense matrix to fit, and
each is measured in its own fresh subprocess so the peak resident memory is its own:

* time: best of ``--repeats`` applications, wall clock and process CPU time (the CPU time is the
  steadier figure on a shared machine) (forward y = A x and adjoint A^H y), after a warm-up;
  the dense matrix is precomputed once (its build time is printed, not counted);
Two sciops variants: ``sciops`` recomputes the factors in blocks under ``--budget-mib`` (on the
uniform band by the frequency recurrence); ``sciops-cached`` keeps the recurrence seeds
(16 * 2 (T + R) V bytes, 2 / (F T R / (T + R)) of the dense matrix) after the warm-up, as
iterative reconstructions use it.

* memory: peak RSS growth of the subprocess from just before the method's setup (the dense matrix
  is part of the dense method's memory; the matrix-free operator holds no matrix);
* agreement: relative difference of the two forward results and of the two adjoint results.

Ratios are dense / sciops, so > 1 means sciops is faster or smaller.
Usage: ``OMP_NUM_THREADS=1 python scripts/bench_radar_forward.py [--grid 33 21 21] [--freqs 15]
[--batch 8] [--budget-mib 32] [--threads 1]``
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(method: str, grid, n_freqs: int, batch: int, budget_mib: int, repeats: int, threads: int, out: str) -> None:
    import torch

    from sciops.solvers.radar import C0, MimoBorn, cross_array, factor_cache_bytes, frequencies, reference_grid

    torch.set_num_threads(threads)
    tx, rx = cross_array()
    freqs = frequencies(n=n_freqs)
    axes = reference_grid(*grid)
    g = torch.Generator().manual_seed(0)
    shape = (batch, *grid)
    x = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))
    yshape = (batch, n_freqs, len(tx), len(rx))
    y = torch.complex(torch.randn(yshape, generator=g, dtype=torch.float64), torch.randn(yshape, generator=g, dtype=torch.float64))
    base = _rss_bytes()
    t0 = time.perf_counter()
    if method.startswith("sciops"):
        cached = method == "sciops-cached"
        budget = budget_mib * 2**20 + (factor_cache_bytes(freqs, len(tx), len(rx), int(np.prod(grid))) if cached else 0)
        op = MimoBorn(tx, rx, freqs, axes, memory_budget=budget, cache_factors=cached)
        fwd, adj = op.forward, op.adjoint
    else:
        zz, yy, xx = torch.meshgrid(*(torch.as_tensor(axes[k]) for k in ("z", "y", "x")), indexing="ij")
        vox = torch.stack([xx.ravel(), yy.ravel(), zz.ravel()], -1)
        rt = torch.cdist(torch.as_tensor(tx), vox)  # (T, V)
        rr = torch.cdist(torch.as_tensor(rx), vox)  # (R, V)
        v = vox.shape[0]
        a = torch.empty((n_freqs, len(tx), len(rx), v), dtype=torch.complex128)
        for i, f in enumerate(freqs):  # one frequency at a time keeps the build's temporaries small
            k = 2 * math.pi * f / C0
            et = torch.polar(1 / rt, -k * rt)
            er = torch.polar(1 / (4 * math.pi * rr), -k * rr)
            a[i] = et[:, None, :] * er[None, :, :]
        a = a.reshape(-1, v)

        def fwd(xx_):  # einsum("mv,bv->bm") is this one gemm
            return torch.matmul(xx_.reshape(batch, -1), a.mT).reshape(yshape)

        def adj(yy_):  # conj(conj(y) a): one gemm that reads a as stored, no conjugated copy of a
            return torch.matmul(yy_.reshape(batch, -1).conj(), a).conj().resolve_conj().reshape(shape)

    setup = time.perf_counter() - t0
    results = {}
    for name, fn, arg in (("forward", fwd, x), ("adjoint", adj, y)):
        fn(arg)  # warm-up
        best = best_cpu = math.inf
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = fn(arg)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        results[name], results[f"{name}_cpu"] = best, best_cpu
        np.save(f"{out}.{name}.npy", res.numpy())
    results["setup"] = setup
    results["peak_mib"] = (_peak_bytes() - base) / 2**20
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, nargs=3, default=[33, 21, 21], metavar=("NZ", "NY", "NX"))
    ap.add_argument("--freqs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budget-mib", type=int, default=32, help="sciops memory budget")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.grid, args.freqs, args.batch, args.budget_mib, args.repeats, args.threads, args.out)
        return
    import tempfile

    import torch

    nz, ny, nx = args.grid
    v = nz * ny * nx
    m = args.freqs * 12 * 13
    print(f"grid {nz}x{ny}x{nx} = {v} voxels, {args.freqs} frequencies x 12 tx x 13 rx = {m} measurements, "
          f"batch {args.batch}, complex128, {args.threads} thread(s), torch {torch.__version__}")
    print(f"dense matrix: {m * v * 16 / 2**20:.1f} MiB; sciops memory budget {args.budget_mib} MiB")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("sciops", "sciops-cached", "dense"):
            cmd = [sys.executable, __file__, "--child", method, "--grid", *map(str, args.grid), "--freqs", str(args.freqs),
                   "--batch", str(args.batch), "--budget-mib", str(args.budget_mib), "--repeats", str(args.repeats),
                   "--threads", str(args.threads), "--out", f"{tmp}/{method}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{method} run failed:\n{proc.stderr}")
            res[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            res[method]["y"] = np.load(f"{tmp}/{method}.forward.npy")
            res[method]["x"] = np.load(f"{tmp}/{method}.adjoint.npy")
    d = res["dense"]
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    print(f"{'method':<14} {'forward s':>10} {'(CPU s)':>8} {'adjoint s':>10} {'(CPU s)':>8} {'peak MiB':>9} {'setup s':>8}")
    for name, r in res.items():
        print(f"{name:<14} {r['forward']:>10.3f} {r['forward_cpu']:>8.3f} {r['adjoint']:>10.3f} {r['adjoint_cpu']:>8.3f} "
              f"{r['peak_mib']:>9.1f} {r['setup']:>8.2f}")
    for name in ("sciops", "sciops-cached"):
        s = res[name]
        print(f"ratios dense/{name}: forward time {d['forward'] / s['forward']:.2f}x (CPU "
              f"{d['forward_cpu'] / s['forward_cpu']:.2f}x), adjoint time {d['adjoint'] / s['adjoint']:.2f}x (CPU "
              f"{d['adjoint_cpu'] / s['adjoint_cpu']:.2f}x), peak memory {d['peak_mib'] / s['peak_mib']:.1f}x "
              f"(goal: memory >= 10x, time >= 1x); agreement with dense: forward {rel(s['y'], d['y']):.1e}, "
              f"adjoint {rel(s['x'], d['x']):.1e}")


if __name__ == "__main__":
    main()
