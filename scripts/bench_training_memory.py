"""How close the training-memory estimate (sciops.training.memory) is to a real run's memory.

For each operator and batch size: the estimate (see the module's docstring) against the growth of the process's peak resident memory over one
CPU epoch, measured in a fresh process per case (the peak cannot be reset). Prints the ratio.

    python scripts/bench_training_memory.py [--resolution 64] [--samples 256]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASE = """
import json, resource, sys
from pathlib import Path
import torch
torch.set_num_threads(2)
import sciops.grid.trainer as trainer_module
from sciops.training import TrainConfig
from sciops.grid.trainer import Trainer
from sciops.training.memory import training_memory
data, run, operator, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
estimate = {}
def record(model, step, batch_size, device, what):  # the trainer's own check, measured instead of enforced
    fixed, per_sample = training_memory(model, step)
    estimate["bytes"] = fixed + batch_size * per_sample
trainer_module.check_training_memory = record
trainer = Trainer(operator, data, run, config=TrainConfig(epochs=1, batch_size=batch), progress=False)
rss0 = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
trainer.fit()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": estimate["bytes"], "growth": peak - max(rss0, peak0)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    from sciops.datasets import generate
    from sciops.problems import get

    with tempfile.TemporaryDirectory() as tmp:
        data = generate(get("darcy", resolution=args.resolution), args.samples, Path(tmp) / "d.h5", progress=False)
        print(f"darcy {args.resolution}^2, {args.samples} samples, one CPU epoch; memory in MiB")
        print(f"{'operator':<8} {'batch':>5} {'estimate':>9} {'peak growth':>12} {'ratio':>6}")
        for operator in ("fno", "mgno", "unet", "dgno"):
            for batch in (16, 64):
                run = Path(tmp) / f"{operator}{batch}"
                out = subprocess.run([sys.executable, "-c", CASE, str(data), str(run), operator, str(batch)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{operator:<8} {batch:>5} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{operator:<8} {batch:>5} {r['estimate'] / 2**20:>9.1f} {r['growth'] / 2**20:>12.1f} "
                      f"{r['estimate'] / max(r['growth'], 1):>6.2f}")


if __name__ == "__main__":
    main()
