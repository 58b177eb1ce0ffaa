#!/usr/bin/env python
"""Benchmark: training throughput of ``sciops train`` on 1 and 2 processes (DistributedDataParallel).

What it measures
    A Darcy dataset (default 64 x 64, 320 samples) is generated into a temporary folder, then the
    same FNO training (same seed, global batch, epochs) runs three times through the command line:
    one process with one thread, ``--nproc 2`` with one thread per process (gloo on CPU), and, for
    reference, one process with two threads. Training samples per second are taken from the
    per-epoch training-loop times that the runs record in metrics.jsonl (validation, start-up and
    process-group set-up are not timed), skipping the first epoch as warm-up. Printed: samples/s
    of each run, the speed-up of 2 processes over 1 and the parallel efficiency
    ``(samples/s with 2 processes) / (2 x samples/s with 1)``, and the largest difference between
    the two runs' per-epoch train losses (DDP with the same global batch reproduces the curve).

How to run
    python scripts/bench_training_scaling.py                 # about 2 minutes on 2 cores
    python scripts/bench_training_scaling.py --resolution 32 --epochs 3

Note: the two processes need two free cores; on a machine shared with other jobs they compete with
them and the efficiency drops. The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--samples", type=int, default=320, help="dataset size (10 %% held out for validation)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16, help="global batch")
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="results file (default docs/benchmarks/bench_training_scaling.json)")
    return p.parse_args()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def train(args, data: Path, run_dir: Path, *, nproc: int, threads: int) -> list[dict]:
    cmd = [sys.executable, "-m", "sciops", "train", "fno", "--data", str(data), "-o", str(run_dir),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--device", "cpu", "--set", f"modes={args.modes}", "--set", f"width={args.width}", "-q"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    args = parse_args()
    import torch

    from sciops import problems
    from sciops.datasets import generate
    from sciops.training import TrainConfig

    n_train, _ = TrainConfig().split(args.samples, "data")
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}")
    print(f"FNO modes={args.modes} width={args.width} on Darcy {args.resolution}^2: {n_train} training samples, "
          f"global batch {args.batch_size}, {args.epochs} epochs (first not timed)")
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench_training_scaling_") as tmp:
        tmp = Path(tmp)
        data = tmp / "darcy.h5"
        t0 = time.perf_counter()
        generate(problems.get("darcy", resolution=args.resolution), args.samples, data, seed=args.seed, progress=False)
        print(f"generated {args.samples} samples in {time.perf_counter() - t0:.1f} s")
        runs = {}
        for label, nproc, threads in (("1 process, 1 thread", 1, 1), ("2 processes, 1 thread each", 2, 1),
                                      ("1 process, 2 threads", 1, 2)):
            history = train(args, data, tmp / label.replace(" ", "_").replace(",", ""), nproc=nproc, threads=threads)
            timed = history[1:] or history
            rate = n_train * len(timed) / sum(h["seconds"] for h in timed)
            runs[label] = (rate, history)
            epochs = ", ".join(f"{h['seconds']:.2f}" for h in history)
            print(f"{label:<28} {rate:8.1f} training samples/s  (s/epoch {epochs})")
    one, two = runs["1 process, 1 thread"][0], runs["2 processes, 1 thread each"][0]
    print(f"speed-up 2 processes / 1 process: {two / one:.2f}x, parallel efficiency {two / (2 * one):.0%}")
    print(f"2 processes / 1 process with 2 threads: {two / runs['1 process, 2 threads'][0]:.2f}x")
    diff = max(abs(a["train_loss"] - b["train_loss"])
               for a, b in zip(runs["1 process, 1 thread"][1], runs["2 processes, 1 thread each"][1]))
    print(f"largest per-epoch train-loss difference, 2 processes vs 1: {diff:.1e}")
    print(f"load average after: {load()}")
    from results import Results

    res = Results("bench_training_scaling", settings=vars(args))
    table = res.table("rates", ["run", "training samples / s", "seconds per epoch"],
                      title=f"FNO modes={args.modes} width={args.width}, Darcy {args.resolution}^2, {n_train} training "
                            f"samples, global batch {args.batch_size}, {args.epochs} epochs (first not timed)")
    for label, (rate, history) in runs.items():
        table.add([label, rate, ", ".join(f"{h['seconds']:.2f}" for h in history)])
    res.note(f"speed-up 2 processes / 1 process {two / one:.2f}x, parallel efficiency {two / (2 * one):.0%}; "
             f"largest per-epoch train-loss difference, 2 processes vs 1: {diff:.1e}")
    res.write(args.json)


if __name__ == "__main__":
    main()
