"""Honest speed: the equal-accuracy speedup on the solver's ladder, and the integrity of what an
evaluation rests on (fresh samples, held-out validation rows, metrics pinned to closed forms)."""
import math
import time

import numpy as np
import pytest
import torch
from small_settings import SMALL_FNO, SMALL_TRAINING

import sciops
from sciops import ladder as L
from sciops import problems
from sciops.datasets import open_dataset
from sciops.grid.evaluation import evaluate, summary_line
from sciops.grid.trainer import Trainer
from sciops.losses import make_loss
from sciops.problems import Rung
from sciops.runs import RunSpec
from sciops.training import TrainConfig


def point(label, cost, error):
    return {"label": label, "error": error, "seconds_per_sample": cost, "seconds_per_sample_batch1": cost}


LADDER = [point("coarse", 1.0, 0.1), point("dominated", 2.0, 0.2), point("medium", 4.0, 0.01), point("fine", 16.0, 0.001)]


def test_equal_accuracy_interpolates_on_the_log_log_curve():
    # error 10^-1.5 lies halfway (in log) between the coarse and medium rungs: cost 10^(0.5 log10 4) = 2
    value, note = L.equal_accuracy(LADDER, 10 ** -1.5, 0.5, 100.0)
    assert value == pytest.approx(2.0 / 0.5) and "between coarse" in note and "medium" in note
    assert L.equal_accuracy(LADDER, 0.001, 0.5, 100.0)[0] == pytest.approx(16.0 / 0.5)  # exactly a rung's error
    # more accurate than every rung: only the reference is known to be as accurate (an upper bound)
    value, note = L.equal_accuracy(LADDER, 1e-5, 0.5, 100.0)
    assert value == pytest.approx(200.0) and note.startswith("an upper bound: no rung")
    # less accurate than the cheapest rung: that rung's cost (an upper bound too)
    value, note = L.equal_accuracy(LADDER, 0.3, 0.5, 100.0)
    assert value == pytest.approx(2.0) and note.startswith("an upper bound: the cheapest rung")


def test_equal_accuracy_says_why_there_is_no_figure():
    assert L.equal_accuracy([], 0.1, 1.0, 1.0) == (None, "the problem's solver ladder has no rung for this configuration")
    failed = [{"label": "x", "error": None, "seconds_per_sample": None, "note": "failed: blew up"}]
    assert L.equal_accuracy(failed, 0.1, 1.0, 1.0) == (None, "no rung of the ladder ran")
    report = L.speed_report(LADDER, 0.05, (2.0, 4.0), (100.0, 50.0))
    assert report["speedup"] == 50.0 and report["speedup_batch1"] == 12.5
    assert report["speedup_equal_accuracy"] < report["speedup"]


def test_measure_ladder_reports_failures_refusals_and_skips():
    inputs = np.ones((4, 5, 5), np.float32)
    reference = inputs * 2

    def blows_up(x):
        raise ValueError("the flow blew up at t = 3\nmore detail")

    def slow(x):
        time.sleep(0.02 * len(x))
        return x * 2

    rungs = [Rung("exact", lambda x: x * 2), Rung("off by 10%", lambda x: x * 2.2), Rung("blows up", blows_up),
             Rung("refused", None, "the resolution check refuses 4^2"), Rung("slow", slow)]
    error = L.mean_error(lambda out, ref: np.abs(out - ref).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2)), reference)
    points = {p["label"]: p for p in L.measure_ladder(rungs, inputs, error, reference_seconds=0.005)}
    assert points["exact"]["error"] == 0.0 and points["off by 10%"]["error"] == pytest.approx(0.1)
    assert points["exact"]["seconds_per_sample"] > 0 and points["exact"]["seconds_per_sample_batch1"] > 0
    assert points["blows up"]["note"] == "failed: the flow blew up at t = 3" and points["blows up"]["error"] is None
    assert points["refused"]["note"] == "the resolution check refuses 4^2"
    assert points["slow"]["note"].startswith("skipped: it costs more than the reference")


def test_a_cheap_rung_with_the_references_call_overhead_is_measured_not_skipped():
    # every call pays 40 ms (plans, set-up): on two samples the rung looks dearer than the reference's
    # batched time per sample, though per sample it costs a tenth of it; timed alike it is not
    inputs = np.ones((40, 2), np.float32)

    def costing(per_sample):
        return lambda x: time.sleep(0.04 + per_sample * len(x)) or x

    reference, rung = costing(0.005), costing(0.0005)
    batched = (0.04 + 0.005 * 40) / 40
    alike = L.measure_ladder([Rung("cheap", rung)], inputs, lambda out: 0.0, batched, reference)[0]
    assert alike["seconds_per_sample"] is not None and alike["seconds_per_sample"] < batched
    assert "skipped" in L.measure_ladder([Rung("cheap", rung)], inputs, lambda out: 0.0, batched)[0]["note"]


def test_darcy_ladder_converges_towards_the_reference():
    # a smooth coefficient (alpha 4): the rungs converge at second order towards the reference. (A
    # thresholded one, smeared by the interpolation to the finer grid, can make a finer rung less
    # accurate than a coarser one: a dominated rung, which the equal-accuracy figure leaves out.)
    problem = problems.get("darcy", resolution=17, subsample=4, coefficient="lognormal", alpha=4.0)
    rungs = problem.ladder()
    assert [r.label for r in rungs] == ["direct 17^2", "amg 17^2", "direct 33^2", "amg 33^2", "amg 65^2"]
    a, u, _ = problem.generate(3, seed=4)
    err = {r.label: np.linalg.norm(r.solve(a) - u) / np.linalg.norm(u) for r in rungs}
    assert err["direct 17^2"] > 3 * err["direct 33^2"] > 9 * err["amg 65^2"] > 0
    assert err["amg 33^2"] == pytest.approx(err["direct 33^2"], rel=1e-3)  # the same discretisation


# --- evaluation integrity ---------------------------------------------------------------------------
def test_fresh_evaluation_uses_fresh_samples(trained_run, darcy_file):
    surrogate = sciops.load(trained_run[0])
    report = evaluate(surrogate, fresh=6, progress_enabled=False, ladder=False)
    seed = report["source"]["seed"]
    assert seed == surrogate.spec.fresh_seed(6) != surrogate.spec.data.seed
    drawn = surrogate.problem.sample_inputs(6, seed)
    np.testing.assert_array_equal(report["_arrays"]["inputs"]["a"], drawn[report["_arrays"]["index"]])
    training = open_dataset(darcy_file).get_inputs(list(range(surrogate.spec.data.n_samples)))[:, 0].numpy()
    distance = np.abs(training[None] - drawn[:, None]).reshape(6, len(training), -1).max(-1)
    assert distance.min() > 0  # no evaluated input is a training input


def test_training_never_sees_the_validation_rows_and_records_their_error(tmp_path, darcy_file, monkeypatch):
    trainer = Trainer("fno", darcy_file, tmp_path / "run", hparams=SMALL_FNO,
                      config=TrainConfig(**{**SMALL_TRAINING, "epochs": 2}), progress=False)
    train_rows, val_rows = set(trainer.train_idx.tolist()), set(trainer.val_idx.tolist())
    assert not train_rows & val_rows and train_rows | val_rows == set(range(trainer.dataset.n_samples))
    seen, batches = set(), Trainer._batches

    def recording(self, indices, shuffle_epoch):
        if shuffle_epoch is not None:  # a training pass
            seen.update(indices.tolist())
        return batches(self, indices, shuffle_epoch)

    monkeypatch.setattr(Trainer, "_batches", recording)
    summary = trainer.fit()
    assert seen == train_rows
    # the recorded best validation figure is the metric of the kept weights on the held-out rows
    surrogate = sciops.load(tmp_path / "run")
    x, y = open_dataset(darcy_file).get_batch(sorted(val_rows))
    with torch.no_grad():
        l2 = make_loss("l2", spatial_dims=2, geometry="bounded")(surrogate.model(x), y).item()
    assert l2 == pytest.approx(summary["best_val"]["l2"], rel=1e-4)


class ScaledDarcy:
    """Surrogate stand-in: u_hat = (1 + e_i) u for sample i, u the stored reference."""

    def __init__(self, problem, reference, factors):
        self.problem, self.reference, self.factors = problem, reference, np.asarray(factors)
        self.inputs, self.outputs, self.ndim, self.device = ["a"], ["u"], 2, torch.device("cpu")
        self.spec = RunSpec.from_dict({"operator": {"name": "scaled"}, "problem": {"name": "darcy",
                                       "params": problem.params}, "data": {"path": "", "seed": 0, "n_samples": 1,
                                                                            "n_train": 1, "n_val": 1}})

    def solve(self, a):
        rows = [int(np.flatnonzero((self.all_inputs == x).all(axis=(1, 2)))[0]) for x in np.asarray(a)]
        return (self.reference[rows] * (1 + self.factors[rows])[:, None, None]).astype(np.float32)


def test_bounded_grid_metrics_are_the_closed_forms(darcy_file):
    ds = open_dataset(darcy_file)
    x, y = ds.get_batch(list(range(ds.n_samples)))
    a, u = x[:, 0].numpy(), y[:, 0].numpy().astype(np.float64)
    factors = np.linspace(-0.05, 0.08, len(a))
    stand_in = ScaledDarcy(ds.problem, u, factors)
    stand_in.all_inputs = a
    report = evaluate(stand_in, data=darcy_file, progress_enabled=False, ladder=False)
    m, e = report["metrics"], np.abs(factors)
    assert m["rel_l2"]["mean"] == pytest.approx(e.mean(), rel=1e-5)
    assert m["rel_h1"]["max"] == pytest.approx(e.max(), rel=1e-5)
    assert m["rel_max"]["median"] == pytest.approx(np.median(e), rel=1e-5)
    assert m["max_abs"]["max"] == pytest.approx((e * np.abs(u).max(axis=(1, 2))).max(), rel=1e-5)
    assert "no equal-accuracy figure (left out (--no-ladder))" in summary_line(report)
    assert math.isnan(report["solver_seconds_per_sample"]) or report["solver_seconds_per_sample"] > 0


def test_persistence_of_an_input_segment_repeats_its_last_record():
    from sciops.grid.baseline import baseline_outputs

    problem = problems.get("navier-stokes", resolution=16, solve_resolution=16, t_final=3.0, input_steps=2)
    segment = np.arange(2 * 2 * 16 * 16, dtype=np.float32).reshape(2, 2, 16, 16)
    reference = {"w": np.zeros((2, 3, 16, 16), np.float32)}
    answer, what = baseline_outputs(problem, None, {"w0": segment}, reference, ["w"])
    assert answer["w"].shape == (2, 3, 16, 16) and what.startswith("persistence")
    np.testing.assert_array_equal(answer["w"][:, 2], segment[:, -1])
