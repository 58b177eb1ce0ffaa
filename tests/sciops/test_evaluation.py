"""Evaluation against the reference solver on fresh samples."""
from __future__ import annotations

import json

import sciops
from sciops.grid.evaluation import evaluate, markdown, public
from sciops.grid.figures import plot_comparison
from sciops.problems import sample_seed


def test_fresh_seeds_never_used_in_training(trained_run):
    spec = sciops.load(trained_run[0]).spec
    seed = spec.fresh_seed(50)
    used = {sample_seed(spec.data.seed, i) for i in range(spec.data.n_samples)}
    assert seed != spec.data.seed
    assert not used & {sample_seed(seed, i) for i in range(50)}


def test_fresh_evaluation_report_and_figure(trained_run, tmp_path):
    surrogate = sciops.load(trained_run[0])
    report = evaluate(surrogate, fresh=12, progress_enabled=False)
    m = report["metrics"]
    assert set(m) == {"rel_l2", "rel_h1", "max_abs", "rel_max"}
    assert 0 < m["rel_l2"]["mean"] < 0.15 and m["rel_h1"]["mean"] >= m["rel_l2"]["median"] * 0.5
    assert report["solver_seconds_per_sample"] > 0 and report["surrogate_seconds_per_sample"] > 0
    assert abs(report["speedup"] - report["solver_seconds_per_sample"] / report["surrogate_seconds_per_sample"]) < 1e-9
    json.dumps(public(report))  # serialisable
    assert "speedup" in markdown(report)
    png = plot_comparison(report, tmp_path / "eval.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_on_a_stored_file(trained_run, darcy_file):
    report = evaluate(sciops.load(trained_run[0]), data=darcy_file)
    assert report["samples"] == 220 and report["metrics"]["rel_l2"]["mean"] < 0.15
