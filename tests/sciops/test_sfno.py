"""Spherical FNO (sfno): longitude-roll equivariance, resolution change, grid checks, training on a tiny
shallow-water dataset through the trainer, checkpoint round trip and evaluation against the solver."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sciops
from sciops import operators, problems
from sciops.datasets import generate
from sciops.grid.evaluation import evaluate, markdown
from sciops.grid.trainer import train
from sciops.losses import make_loss
from sciops.solvers.sphere_grid import quadrature
from sciops.training import TrainConfig

SMALL = {"modes": 8, "width": 12, "layers": 2, "projection": 16}
DATA = dict(nlat=12, records=2, record_every=1800.0)


def build(time_steps=2, **extra):
    torch.manual_seed(0)
    return operators.build("sfno", in_channels=3, out_channels=3, ndim=2, geometry="sphere", time_steps=time_steps,
                           **{**SMALL, "grid": "legendre-gauss", **extra}).double()


def band_limited(nlat: int, nlon: int, grid: str, batch: int = 2) -> torch.Tensor:
    """Polynomials of degree <= 3 in (x, y, z) on the unit sphere: degrees l <= 3, exact on any grid."""
    lat = quadrature(nlat, grid)[0][:, None]
    lon = 2 * math.pi * torch.arange(nlon, dtype=torch.float64)[None, :] / nlon
    x, y, z = torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat).expand(nlat, nlon)
    fields = [1 + z + x * y, x * z - 0.5 * y, (x ** 2 - y ** 2) * z + 0.3 * x]
    sample = torch.stack(fields)
    return torch.stack([sample * (k + 1) for k in range(batch)])


def test_registered_apart_from_the_spatiotemporal_fno():
    assert "sfno" in operators.names() and "st-fno" in operators.names()
    assert operators.is_trajectory_operator("sfno")


@pytest.mark.parametrize("per_order", [False, True])
def test_longitude_roll_commutes_with_the_operator(per_order):
    op = build(per_order=per_order)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 12, 24, dtype=torch.float64)
    with torch.no_grad():
        out = op(x)
        for shift in (1, 5):
            rolled = op(torch.roll(x, shift, dims=-1))
            torch.testing.assert_close(rolled, torch.roll(out, shift, dims=-1), rtol=1e-9, atol=1e-9)
        # a latitude flip is not a symmetry of the learned map (the embedding sees latitude): not equivariant
        assert not torch.allclose(op(x.flip(-2)), out.flip(-2), atol=1e-3)


def test_resolution_change_on_nested_equiangular_grids():
    op = build(grid="equiangular")
    coarse, fine = band_limited(17, 32, "equiangular"), band_limited(33, 64, "equiangular")
    torch.testing.assert_close(fine[..., ::2, ::2], coarse)  # the coarse grid's points are the fine grid's
    with torch.no_grad():
        out_coarse, out_fine = op(coarse), op(fine)
    diff = (out_fine[..., ::2, ::2] - out_coarse).norm() / out_coarse.norm()
    assert out_fine.shape == (2, 3, 2, 33, 64) and diff < 2e-2, diff
    # and to a Legendre-Gauss grid of another size through forward(grid=...)
    with torch.no_grad():
        out_lg = op(band_limited(24, 48, "legendre-gauss"), grid="legendre-gauss")
    assert out_lg.shape == (2, 3, 2, 24, 48) and torch.isfinite(out_lg).all()


def test_bad_input():
    with pytest.raises(ValueError, match="geometry 'sphere'"):
        operators.build("sfno", in_channels=3, out_channels=3, ndim=2, geometry="periodic", time_steps=2)
    with pytest.raises(ValueError, match="grid="):
        build(grid="healpix")
    op = build()
    with pytest.raises(ValueError, match="nlon"):
        op(torch.zeros(1, 3, 16, 8, dtype=torch.float64))  # too few longitudes for the orders of 16 latitudes
    with pytest.raises(ValueError, match="grid="):
        op(torch.zeros(1, 3, 12, 24, dtype=torch.float64), grid="cubed")


@pytest.fixture(scope="module")
def sw_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sw") / "sw.h5"
    generate(problems.get("shallow-water", **DATA), 12, path, seed=2, progress=False)
    return path


def test_trains_through_the_trainer_and_round_trips(sw_file, tmp_path):
    cfg = TrainConfig(epochs=30, batch_size=4, lr=5e-3, loss="norm-l2", metrics=["norm-l2", "l2"],
                      select="norm-l2", val_fraction=0.2, seed=0)
    run = tmp_path / "run"
    summary = train("sfno", sw_file, run, hparams=SMALL, config=cfg, progress=False)
    history = [__import__("json").loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2.5, [h["train_loss"] for h in history]
    surrogate = sciops.load(run)
    assert surrogate.spec.operator.hyperparameters["grid"] == "legendre-gauss"  # from the data
    # round trip: the loaded surrogate reproduces the trained model's validation metric
    from sciops.datasets import open_dataset

    with open_dataset(sw_file) as ds:
        x, y = ds.get_batch(list(range(12 - 2, 12)))
    pred = surrogate.solve({k: x[:, c].numpy() for c, k in enumerate(("phi0", "u0", "v0"))})
    pred = torch.stack([torch.as_tensor(pred[k]) for k in ("phi", "u", "v")], dim=1)
    # torch in after numpy in: differentiable (the operator's cached transforms were inference tensors)
    inputs = {k: x[:1, c].clone().requires_grad_() for c, k in enumerate(("phi0", "u0", "v0"))}
    surrogate.solve(inputs)["phi"].sum().backward()
    assert inputs["phi0"].grad is not None and torch.isfinite(inputs["phi0"].grad).all()
    loss = make_loss("norm-l2", geometry="sphere", grid="legendre-gauss", spatial_dims=2)
    norm = surrogate.spec.normalization
    loss.set_statistics(norm["out_mean"], norm["out_std"])
    assert loss(pred, y).item() == pytest.approx(summary["best_val"]["norm-l2"], rel=1e-4)
    # the trained step beats persistence (the previous state) on held-out data, in standardised units
    persistence = loss(x.unsqueeze(2).expand_as(y), y).item()
    assert loss(pred, y).item() < 0.8 * persistence
    # evaluated against the solver on fresh initial states
    report = evaluate(surrogate, fresh=2, progress_enabled=False)
    assert report["per_time"]["rel_l2"]["mean"][0] < 0.05 and np.isfinite(report["metrics"]["rel_h1"]["mean"])
    energy = report["diagnostics"]["kinetic_energy"]["ratio"]  # surrogate / solver per record
    assert len(energy) == report["time_steps"] and all(0.5 < r < 2.0 for r in energy)
    assert "kinetic_energy" in markdown(report)
    # stored data on another grid type is refused before anything runs
    other = tmp_path / "equiangular.h5"
    generate(problems.get("shallow-water", **{**DATA, "grid": "equiangular"}), 2, other, seed=3, progress=False)
    with pytest.raises(ValueError, match="grid with geometry sphere, grid equiangular, but the run was trained on "
                                         "geometry sphere, grid legendre-gauss"):
        evaluate(surrogate, data=other)
    darcy = tmp_path / "darcy.h5"
    generate(problems.get("darcy", resolution=17), 2, darcy, seed=3, progress=False)
    with pytest.raises(ValueError, match="holds darcy data, but the run was trained on shallow-water"):
        evaluate(surrogate, data=darcy)


def test_a_grid_other_than_the_datas_is_refused(sw_file, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=4, val_fraction=0.2)
    with pytest.raises(ValueError, match="does not match the data's grid"):
        train("sfno", sw_file, tmp_path / "r", hparams={**SMALL, "grid": "equiangular"}, config=cfg, progress=False)


def test_band_limit_keeps_steps_on_the_grids_degrees():
    import torch_harmonics as th

    torch.manual_seed(2)
    x = torch.randn(1, 3, 12, 24, dtype=torch.float64)
    project = lambda f: th.InverseRealSHT(12, 24, grid="legendre-gauss").double()(  # noqa: E731
        th.RealSHT(12, 24, grid="legendre-gauss").double()(f))
    with torch.no_grad():
        limited, free = build().net(x, "legendre-gauss"), build(band_limit=False).net(x, "legendre-gauss")
    torch.testing.assert_close(project(limited), limited, rtol=1e-9, atol=1e-9)
    assert (project(free) - free).norm() > 1e-3 * free.norm()
