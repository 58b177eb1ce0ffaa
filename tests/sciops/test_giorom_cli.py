"""GIOROM through the project's standard contracts (``sciops.kinds``): ``sciops generate particles``,
``sciops train giorom`` into a run directory, ``sciops.load`` giving the ParticleSurrogate and its
problem, ``sciops evaluate --fresh`` against the MLS-MPM simulator (the trained model must roll out
better than the same network before training), exact resume, and the one-line errors for data of
the wrong kind and for settings that do not apply."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sciops
from sciops import problems
from sciops.cli import main
from sciops.datasets import generate
from sciops.particles.evaluation import evaluate, markdown
from sciops.particles.surrogate import ParticleSurrogate
from sciops.particles.trainer import ParticleTrainConfig, ParticleTrainer, train
from sciops.runs import storage as ckpt

# a dam break: accelerations vary in space and time, so a stepper must learn more than gravity
DATA = ["--param", "scene=dam_break", "--param", "material=fluid", "--param", "n_particles=80",
        "--param", "frames=14", "--param", "stride=10", "--param", "grid=16"]
CONFIG = """
[operator]
hidden = 32
latent_grid = 6
attention_layers = 1
heads = 2
radius = 0.15
interaction_layers = 1

[training]
n_sparse = 50
lr = 5e-3
noise_std = 1e-4
reconstruction_steps = 30
"""
SMALL = dict(hidden=16, latent_grid=4, attention_layers=1, heads=2, radius=0.15, interaction_layers=1)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def particle_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("particles") / "particles.h5"
    assert main(["generate", "particles", "-n", "6", "-o", str(path), "--seed", "1", "-q", *DATA]) == 0
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, particle_file):
    folder = tmp_path_factory.mktemp("giorom")
    (folder / "giorom.toml").write_text(CONFIG)
    code = main(["train", "giorom", "--data", str(particle_file), "-o", str(folder / "run"), "--epochs", "8",
                 "--config", str(folder / "giorom.toml"), "-q"])
    assert code == 0
    return folder / "run"


def test_train_load_and_evaluate_against_the_simulator(trained, tmp_path, capsys):
    config = json.loads((trained / ckpt.CONFIG).read_text())
    assert config["operator"]["name"] == "giorom" and config["operator"]["hyperparameters"]["dim"] == 2
    assert config["data"]["n_train"] + config["data"]["n_val"] == 6 and config["history"]["epochs"] == 8
    weights = torch.load(trained / ckpt.WEIGHTS, weights_only=True)
    assert set(weights) == {"stepper", "reconstruction"}
    lines = (trained / ckpt.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))

    surrogate = sciops.load(trained)
    assert isinstance(surrogate, ParticleSurrogate) and surrogate.n_sparse == 50
    assert surrogate.problem.name == "particles" and surrogate.problem.params["scene"] == "dam_break"

    png, report_json, report_md = tmp_path / "e.png", tmp_path / "r.json", tmp_path / "r.md"
    code, out, err = run(capsys, "evaluate", trained, "--fresh", 2, "--plot", png, "--report", report_json)
    assert code == 0, err
    assert "position MSE over 8 frames" in out and "speedup" in out and png.stat().st_size > 10_000
    report = json.loads(report_json.read_text())
    assert report["samples"] == 2 and report["rollout_steps"] == 14 - 6 and report["particles"] == 80
    assert report["source"] == {"fresh": 2, "seed": surrogate.spec.fresh_seed(2)}
    assert len(report["per_step"]["position_mse"]["mean"]) == 8 and report["speedup"] > 0
    assert report["growth_per_step"] > 1  # errors accumulate along an autoregressive rollout
    assert run(capsys, "evaluate", trained, "--fresh", 2, "--report", report_md)[0] == 0
    assert "| position MSE over the 8-frame rollout |" in report_md.read_text()

    # the same network before training (the trainer's initialisation, the trained statistics and
    # reconstruction): a run whose weights were lost or misread rolls out like this one
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        untrained = ParticleSurrogate.from_spec(surrogate.spec)
    stats = {k: v for k, v in surrogate.stepper.state_dict().items() if k.endswith(("_mean", "_std"))}
    untrained.stepper.load_state_dict({**untrained.stepper.state_dict(), **stats})
    untrained.reconstruction.load_state_dict(surrogate.reconstruction.state_dict())
    before = evaluate(untrained, fresh=2, progress_enabled=False)["metrics"]["position_mse"]["mean"]
    after = report["metrics"]["position_mse"]["mean"]
    assert after < 0.5 * before, (after, before)
    assert after < 0.5 * report["metrics"]["constant_velocity_mse"]["mean"]


def test_evaluate_refuses_data_of_other_parameters_naming_the_first(trained, tmp_path):
    other = tmp_path / "other.h5"
    argv = [a if a != "n_particles=80" else "n_particles=60" for a in DATA]
    assert main(["generate", "particles", "-n", "1", "-o", str(other), "--seed", "1", "-q", *argv]) == 0
    with pytest.raises(ValueError, match="was generated with n_particles=60, but the run was trained with n_particles=80"):
        evaluate(sciops.load(trained), data=other, progress_enabled=False)


def test_evaluate_on_a_stored_dataset_and_its_markdown(trained, particle_file):
    report = evaluate(sciops.load(trained), data=particle_file, progress_enabled=False)
    assert report["source"]["data"] == str(particle_file) and report["samples"] == 6
    assert np.isfinite(report["solver_seconds_per_trajectory"])
    text = markdown(report)
    assert "6 trajectories of 80 particles (50 stepped" in text and "speedup" in text


def _interrupt_after(monkeypatch, epochs_done: int):
    calls = {"n": 0}
    original = ParticleTrainer.validate

    def crashing_validate(self):
        if calls["n"] == epochs_done:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(self)

    monkeypatch.setattr(ParticleTrainer, "validate", crashing_validate)


def test_resume_after_interruption_is_exact(tmp_path, particle_file, monkeypatch):
    config = ParticleTrainConfig(epochs=3, n_sparse=40, reconstruction_steps=5, windows_per_epoch=10, lr=3e-3)
    train("giorom", particle_file, tmp_path / "straight", hparams=SMALL, config=config, progress=False)
    with monkeypatch.context() as m:
        _interrupt_after(m, epochs_done=1)
        with pytest.raises(KeyboardInterrupt):
            train("giorom", particle_file, tmp_path / "resumed", hparams=SMALL, config=config, progress=False)
    assert len((tmp_path / "resumed" / ckpt.METRICS).read_text().splitlines()) == 1
    train("giorom", particle_file, tmp_path / "resumed", hparams=SMALL, config=config, resume=True, progress=False)

    a = torch.load(tmp_path / "straight" / ckpt.STATE, weights_only=True)
    b = torch.load(tmp_path / "resumed" / ckpt.STATE, weights_only=True)
    for part in ("stepper", "reconstruction"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"]) and len(a["history"]) == 3
    lines = (tmp_path / "resumed" / ckpt.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]

    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train("giorom", particle_file, tmp_path / "straight", hparams=SMALL, config=config, progress=False)
    with pytest.raises(ValueError, match="cannot resume .* its operator settings differ"):
        train("giorom", particle_file, tmp_path / "straight", hparams={**SMALL, "hidden": 8}, config=config,
              resume=True, progress=False)


def test_blown_up_validation_rollouts_never_count_as_best(tmp_path, particle_file, monkeypatch, capsys):
    from sciops.particles.trainer import SELECT

    original, calls = ParticleTrainer.validate, {"n": 0}

    def validate(self):  # epoch 1's rollout blows up (or every one, once calls["all"] is set)
        calls["n"] += 1
        val = original(self)
        return {**val, SELECT: float("nan")} if calls["n"] == 1 or calls.get("all") else val

    config = ParticleTrainConfig(epochs=3, n_sparse=40, reconstruction_steps=5, windows_per_epoch=5, lr=3e-3)
    monkeypatch.setattr(ParticleTrainer, "validate", validate)
    summary = train("giorom", particle_file, tmp_path / "run", hparams=SMALL, config=config, progress=False)
    assert summary["best_epoch"] != 1 and np.isfinite(summary["best_val"][SELECT])
    calls["all"] = True
    train("giorom", particle_file, tmp_path / "all_nan", hparams=SMALL, config=config, progress=False)
    assert "every validation rollout" in capsys.readouterr().err
    assert (tmp_path / "all_nan" / ckpt.WEIGHTS).is_file()


@pytest.fixture(scope="module")
def darcy_small(tmp_path_factory):
    path = tmp_path_factory.mktemp("darcy") / "darcy.h5"
    generate(problems.get("darcy", resolution=9), 4, path, seed=0, progress=False)
    return path


@pytest.fixture(scope="module")
def short_particles(tmp_path_factory):
    path = tmp_path_factory.mktemp("short") / "short.h5"
    generate(problems.get("particles", n_particles=20, frames=4, stride=2, grid=16), 3, path, seed=0, progress=False)
    return path


@pytest.mark.parametrize("case, extra, message", [
    ("darcy", [], "operator giorom trains on particle trajectories, but {data} holds fields on a grid "
                  "(problem 'darcy'); use one of"),
    ("fno", [], "operator fno trains on fields on a grid, but {data} holds particle trajectories "
                "(problem 'particles'); use one of giorom"),
    ("particles", ["--loss", "l2"], "--loss does not apply to operator giorom; its training settings are"),
    ("particles", ["--batch-size", "4"], "--batch-size does not apply to operator giorom"),
    ("particles", ["--set", "dim=3"], "hyperparameter 'dim' comes from the data"),
    ("particles", ["--set", "hiden=8"], "hyperparameter 'hiden' is unknown"),
    ("particles", ["--nproc", "2"], "operator giorom trains in one process"),
    ("short", [], "has 4 frames per trajectory; operator giorom with history=5 needs at least 7"),
])
def test_bad_input_exits_2_with_one_line(case, extra, message, particle_file, darcy_small, short_particles, tmp_path,
                                         capsys):
    data = {"darcy": darcy_small, "fno": particle_file, "particles": particle_file, "short": short_particles}[case]
    operator = "fno" if case == "fno" else "giorom"
    code, _, err = run(capsys, "train", operator, "--data", data, "-o", tmp_path / "run", *extra)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert message.format(data=data) in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_bad_evaluation_and_help(trained, capsys):
    code, _, err = run(capsys, "evaluate", trained, "--fresh", "0")
    assert code == 2 and "fresh must be >= 1" in err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "giorom: n_types=4, history=5" in out and "particle trajectories (giorom): epochs" in out
    assert "dim=" not in out.split("giorom:")[1].splitlines()[0]  # dim and bounds come from the data


def test_finetune_refuses_a_particle_run_before_reading_anything(trained, tmp_path, capsys):
    code, _, err = run(capsys, "finetune", trained, "-o", tmp_path / "refined")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "Spectral-Refiner fine-tunes a space-time FNO" in err and "holds giorom" in err
    assert not (tmp_path / "refined").exists()
