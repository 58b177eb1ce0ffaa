"""The run spec: config.json as dataclasses, runs written before it still load and answer as they
did, resume refuses changed settings, and the surrogates take exactly what their problems take."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import sciops
from sciops.particles.surrogate import ParticleSurrogate
from sciops.runs import RunSpec, storage
from sciops.runs.spec import SCHEMA, check_resume

RUNS_V1 = Path(__file__).parent / "data" / "runs_v1"


@pytest.fixture(scope="module")
def expected_v1():
    return np.load(RUNS_V1 / "expected_v1.npz")


def test_spec_round_trip_keeps_every_entry(trained_run):
    config = json.loads((trained_run[0] / storage.CONFIG).read_text())
    spec = RunSpec.from_dict(config)
    assert spec.to_dict() == {**config, "schema": SCHEMA}
    assert spec.operator.name == "fno" and spec.problem.build().name == "darcy"
    assert spec.data.resolution == [config["data"]["resolution"][0]] * 2 and spec.history["epochs"] >= 1


def test_a_schema_1_grid_run_loads_and_answers_as_before(expected_v1):
    config = json.loads((RUNS_V1 / "fno_v1" / storage.CONFIG).read_text())
    assert "schema" not in config  # written before the run spec
    surrogate = sciops.load(RUNS_V1 / "fno_v1", device="cpu")
    assert surrogate.spec.schema == SCHEMA and surrogate.spec.operator.hyperparameters["width"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one of the inputs lies outside the tiny training set's range
        u = surrogate.solve(expected_v1["darcy_inputs"])
    np.testing.assert_allclose(u, expected_v1["fno_outputs"], rtol=1e-5, atol=1e-6)


def test_a_schema_1_particle_run_loads_and_rolls_out_as_before(expected_v1):
    surrogate = sciops.load(RUNS_V1 / "giorom_v1", device="cpu")
    assert isinstance(surrogate, ParticleSurrogate) and surrogate.n_sparse == 30
    state = {"positions": expected_v1["particle_window"], "particle_type": expected_v1["particle_type"]}
    np.testing.assert_allclose(surrogate.rollout(state, 2), expected_v1["giorom_rollout"], rtol=1e-5, atol=1e-6)


def test_newer_or_incomplete_specs_are_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUNS_V1 / "fno_v1", run)
    config = json.loads((run / storage.CONFIG).read_text())
    (run / storage.CONFIG).write_text(json.dumps({**config, "schema": SCHEMA + 1}))
    with pytest.raises(ValueError, match=rf"run schema {SCHEMA + 1}; this sciops reads schemas 1 to {SCHEMA}") as info:
        sciops.load(run)
    assert "\n" not in str(info.value)
    (run / storage.CONFIG).write_text(json.dumps({**config, "fields": {"inputs": ["a"]}}))
    with pytest.raises(ValueError, match="'fields' entry needs inputs, outputs"):
        sciops.load(run)
    (run / storage.CONFIG).write_text(json.dumps({k: v for k, v in config.items() if k != "normalization"}))
    with pytest.raises(ValueError, match="incomplete: missing 'normalization'"):
        sciops.load(run)


def test_resume_names_the_first_changed_setting(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUNS_V1 / "fno_v1", run)
    spec = RunSpec.load(run)
    assert check_resume(run, spec.copy()).operator.name == "fno"
    moved = spec.copy()
    moved.data.path, moved.operator.parameters = "/elsewhere/darcy.h5", 1  # neither decides what training computes
    check_resume(run, moved)
    changed = spec.copy()
    changed.training["lr"] = 1.0
    with pytest.raises(ValueError, match=r"its training settings differ from this command's \(training\.lr: "):
        check_resume(run, changed)


def test_the_grid_surrogate_refuses_what_its_problem_refuses(trained_run):
    surrogate = sciops.load(trained_run[0])
    bad = np.ones((3, 33, 5), np.float32)
    with pytest.raises(ValueError) as from_problem:
        surrogate.problem.solve(bad)
    with pytest.raises(ValueError) as from_surrogate:
        surrogate.solve(bad)
    assert str(from_surrogate.value) == str(from_problem.value)
    n = surrogate.spec.data.resolution[0]
    assert surrogate.solve(np.full((n, n), 5.0, np.float32)).shape == (n, n)  # what solve takes, it answers


def test_the_particle_surrogate_takes_what_the_particle_problem_takes():
    surrogate = sciops.load(RUNS_V1 / "giorom_v1", device="cpu")
    problem = surrogate.problem
    inputs = problem.sample_inputs(2, seed=11)
    reference = problem.solve(inputs)
    answer = surrogate.solve(inputs)
    assert answer.shape == reference.shape and answer.dtype == np.float32
    warm = surrogate.solver_frames
    np.testing.assert_array_equal(answer[:, :warm], reference[:, :warm])  # the solver's history frames
    assert not np.allclose(answer[:, warm:], reference[:, warm:], atol=1e-7)  # the operator's frames
    one = surrogate.solve({k: v[0] for k, v in inputs.items()})
    np.testing.assert_allclose(one, answer[0], rtol=1e-6)
