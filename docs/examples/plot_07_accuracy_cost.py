"""
The honest accuracy-cost comparison
===================================

A surrogate's speedup over "the solver" says little on its own: the solver was run at whatever
accuracy its settings give, usually far more accurate than the surrogate. sciops never reports a
speedup alone. Every problem declares its solver ladder (``problem.ladder()``: coarser grids,
larger steps, fewer iterations, or other linear solvers of its own reference solver); evaluation
runs every rung on the same inputs, scores it in the same metric, times it exactly as the
surrogate, and reports beside the nominal speedup the one against the cheapest equally accurate
solve (interpolated on the log-log accuracy-cost curve).
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import sciops
from sciops import problems
from sciops.datasets import generate
from sciops.grid.evaluation import evaluate, summary_line
from sciops.plotting import plot_accuracy_cost
from sciops.training import TrainConfig

work = Path(tempfile.mkdtemp())
problem = problems.get("darcy", resolution=17, subsample=4, coefficient="fno")
for rung in problem.ladder():
    print("rung:", rung.label)

generate(problem, 96, work / "darcy.h5", seed=0, progress=False)
sciops.train("fno", work / "darcy.h5", work / "run", hparams={"modes": 6, "width": 16, "layers": 2},
             config=TrainConfig(epochs=8, batch_size=8, lr=5e-3, loss="h1"), progress=False)
surrogate = sciops.load(work / "run")

# %%
# ``evaluate`` (``sciops evaluate RUN --fresh N``) runs the ladder by default.
report = evaluate(surrogate, fresh=16, progress_enabled=False)
print(summary_line(report))
for rung in report["ladder"]:
    if rung.get("error") is None:
        print(f"{rung['label']:>14}: {rung.get('note')}")
    else:
        print(f"{rung['label']:>14}: error {rung['error']:.2e}, {rung['seconds_per_sample'] * 1e3:.2f} ms/sample")
print(f"nominal speedup {report['speedup']:.3g}x; at equal accuracy {report['speedup_equal_accuracy']:.3g}x")
print(report["speedup_equal_accuracy_note"])

# %%
# :func:`sciops.plotting.plot_accuracy_cost` draws the surrogate on the ladder's curve, at the
# evaluation batch and at batch 1 (``sciops evaluate --plot`` writes the same figure).
path = plot_accuracy_cost(report, work / "accuracy-cost.png")
fig, ax = plt.subplots(figsize=(10, 4.3))
ax.imshow(plt.imread(path))
ax.axis("off")
fig.tight_layout()

# %%
# A briefly trained surrogate on a tiny grid sits above the curve: an equally accurate solve is
# cheaper. The benchmark pages give the same comparison for longer runs.
