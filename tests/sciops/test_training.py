"""Trainer: a short run beats a threshold, writes a complete run directory, and resumes exactly."""
from __future__ import annotations

import json

import pytest
import torch
from small_settings import SMALL_FNO, SMALL_TRAINING

from sciops.grid.trainer import Trainer, _make_scheduler, train
from sciops.grid.trainer import Trainer as TrainerClass
from sciops.runs import storage as ckpt
from sciops.training import TrainConfig, load_toml
from sciops.training.config import SCHEDULERS


def test_short_training_beats_threshold(trained_run):
    run_dir, summary = trained_run
    # An untrained FNO has relative L2 error ~1 on Darcy; 12 epochs on 198 samples reach ~0.06.
    assert summary["best_val"]["l2"] < 0.1
    history = [json.loads(line) for line in (run_dir / ckpt.METRICS).read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, SMALL_TRAINING["epochs"] + 1))
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]


def test_run_directory_contents(trained_run):
    run_dir, summary = trained_run
    config = json.loads((run_dir / ckpt.CONFIG).read_text())
    assert config["operator"]["name"] == "fno"
    assert config["operator"]["hyperparameters"]["width"] == SMALL_FNO["width"]
    assert config["problem"]["name"] == "darcy"
    assert set(config["normalization"]) == {"in_mean", "in_std", "out_mean", "out_std"}
    assert config["history"]["best_epoch"] == summary["best_epoch"]
    assert config["data"]["n_train"] + config["data"]["n_val"] == 220
    state = torch.load(run_dir / ckpt.WEIGHTS, weights_only=True)
    assert "in_mean" in state  # normalisation travels with the weights
    assert not list(run_dir.glob(".*.tmp")), "temporary files left behind"


def _interrupt_after(monkeypatch, epochs_done: int):
    calls = {"n": 0}
    original = TrainerClass.validate

    def crashing_validate(self):
        calls["n"] += 1
        if calls["n"] > epochs_done:
            raise KeyboardInterrupt("simulated crash")
        return original(self)

    monkeypatch.setattr(TrainerClass, "validate", crashing_validate)


def test_resume_after_interruption_is_exact(tmp_path, darcy_file, monkeypatch):
    config = TrainConfig(**{**SMALL_TRAINING, "epochs": 4})
    hparams = {"modes": 4, "width": 8, "layers": 2, "projection": 16}
    train("fno", darcy_file, tmp_path / "straight", hparams=hparams, config=config, progress=False)

    with monkeypatch.context() as m:
        _interrupt_after(m, epochs_done=2)
        with pytest.raises(KeyboardInterrupt):
            train("fno", darcy_file, tmp_path / "resumed", hparams=hparams, config=config, progress=False)
    assert len((tmp_path / "resumed" / ckpt.METRICS).read_text().splitlines()) == 2
    train("fno", darcy_file, tmp_path / "resumed", hparams=hparams, config=config, resume=True, progress=False)

    a = torch.load(tmp_path / "straight" / ckpt.STATE, weights_only=True)
    b = torch.load(tmp_path / "resumed" / ckpt.STATE, weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    lines = (tmp_path / "resumed" / ckpt.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_refuses_to_overwrite_a_run_or_resume_a_different_one(tmp_path, darcy_file):
    config = TrainConfig(**{**SMALL_TRAINING, "epochs": 1})
    hparams = {"modes": 4, "width": 8, "layers": 1}
    train("fno", darcy_file, tmp_path / "run", hparams=hparams, config=config, progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train("fno", darcy_file, tmp_path / "run", hparams=hparams, config=config, progress=False)
    with pytest.raises(ValueError, match=r"operator settings differ .*\(operator.hyperparameters.width: 8 in the run, 12 now\)"):
        train("fno", darcy_file, tmp_path / "run", hparams={**hparams, "width": 12}, config=config,
              resume=True, progress=False)
    # resume with no completed epoch to continue (a run killed in its first epoch, or none yet) starts afresh
    resumed = train("fno", darcy_file, tmp_path / "never", hparams=hparams, config=config, resume=True, progress=False)
    assert resumed["epochs"] == 1 and (tmp_path / "never" / ckpt.STATE).is_file()


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"scheduler": "linear"}, "scheduler must be one of"),
    ({"select": "h2"}, "select"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"batch_size": "abc"}, "batch_size='abc' has the wrong type; expected an integer"),
    ({"batch_size": 2.5}, "batch_size=2.5 has the wrong type; expected an integer"),
    ({"lr": "fast"}, "lr='fast' has the wrong type; expected a number"),
    ({"metrics": "l2"}, "metrics='l2' has the wrong type; expected a list of strings"),
])
def test_bad_training_settings(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_bad_operator_settings_write_nothing(tmp_path, darcy_file):
    with pytest.raises(ValueError, match="unknown hyperparameter 'depth'"):
        Trainer("fno", darcy_file, tmp_path / "run", hparams={"depth": 3})
    with pytest.raises(ValueError, match="unknown operator 'fnord'"):
        Trainer("fnord", darcy_file, tmp_path / "run2")
    with pytest.raises(ValueError, match="unknown loss 'h'"):
        Trainer("fno", darcy_file, tmp_path / "run3", config=TrainConfig(loss="h"))
    assert not any(tmp_path.iterdir())


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(tmp_path, darcy_file, monkeypatch):
    config = TrainConfig(**{**SMALL_TRAINING, "epochs": 1})

    def fail(self):
        raise FloatingPointError("simulated failure in the first epoch")

    with monkeypatch.context() as m:
        m.setattr(TrainerClass, "validate", fail)
        with pytest.raises(FloatingPointError):
            train("fno", darcy_file, tmp_path / "run", hparams=SMALL_FNO, config=config, progress=False)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    # a config.json alone (the end of a run killed between its first two writes) is no run either
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / ckpt.CONFIG).write_text("{}")
    train("fno", darcy_file, tmp_path / "run", hparams=SMALL_FNO, config=config, progress=False)
    assert json.loads((tmp_path / "run" / ckpt.CONFIG).read_text())["history"]["epochs"] == 1


@pytest.mark.parametrize("bad, message", [
    ({"width": 0}, "width=0 is not a size; expected an integer >= 1"),
    ({"modes": "abc"}, "modes='abc' is not a size"),
    ({"layers": -1}, "layers=-1 is not a size"),
    ({"grid_embedding": "yes"}, "grid_embedding='yes' has the wrong type; expected true or false"),
    ({"padding": "wide"}, "padding='wide' has the wrong type; expected a number"),
])
def test_hyperparameters_of_the_wrong_kind_are_refused_before_writing(tmp_path, darcy_file, bad, message):
    with pytest.raises(ValueError, match=f"operator fno: {message}"):
        train("fno", darcy_file, tmp_path / "run", hparams={**SMALL_FNO, **bad}, config=TrainConfig(**SMALL_TRAINING),
              progress=False)
    assert not (tmp_path / "run").exists()


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'foo'; expected auto, cpu, cuda or cuda:N"):
        Trainer("fno", "never-read.h5", "never-written", config=TrainConfig(device="foo"))


def test_toml_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[operator]\nmodes = 8\n[training]\nepochs = 3\nloss = "h-1"\n')
    hparams, training = load_toml(path)
    assert hparams == {"modes": 8} and TrainConfig(**training).loss == "h-1"
    path.write_text("[training]\nepoch = 3\n")
    with pytest.raises(ValueError, match="unknown training setting 'epoch'"):
        load_toml(path)
    path.write_text("[training\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(path)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_runs_any_number_of_steps(scheduler):
    """Short runs (a few batches in all) must not crash the schedule; one-cycle peaks at lr."""
    for total in range(1, 13):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([param], lr=1e-3)
        schedule = _make_scheduler(optimizer, TrainConfig(epochs=1, lr=1e-3, scheduler=scheduler), total)
        rates = []
        for _ in range(total):
            optimizer.step()
            rates.append(optimizer.param_groups[0]["lr"])
            schedule.step()
        assert all(0 < r <= 1e-3 * (1 + 1e-9) for r in rates), (scheduler, total, rates)
        if scheduler == "onecycle" and total >= 5:
            assert max(rates) > 0.5e-3 and rates[-1] < 0.2e-3, (total, rates)
