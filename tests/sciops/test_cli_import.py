"""Bring your own data through the command line: import, info, train, evaluate (refused without a
solver, accepted on the imported file), export to netCDF."""
import numpy as np
import xarray as xr

from sciops import problems
from sciops.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_train_and_evaluate_external_data(tmp_path, capsys):
    problem = problems.get("darcy", resolution=16)
    a, u, _ = problem.generate(24, seed=1)
    np.savez(tmp_path / "mine.npz", a=a, u=u)
    data = tmp_path / "mine.h5"
    code, out, err = run(capsys, "import", tmp_path / "mine.npz", "-o", data, "-q")
    assert code == 0, err
    code, out, err = run(capsys, "info", data)
    assert code == 0 and "external" in out and "mine.npz" in out
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "fno", "--data", data, "-o", run_dir, "--epochs", "1", "--set", "modes=4",
                         "--set", "width=8", "-q")
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", run_dir, "--fresh", "2")
    assert code == 2 and "no solver" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "evaluate", run_dir, "--data", data, "--no-ladder")
    assert code == 0 and "relative L2" in out, err
    nc = tmp_path / "mine.nc"
    code, out, err = run(capsys, "export", data, "-o", nc)
    assert code == 0, err
    with xr.open_dataset(nc) as ds:
        np.testing.assert_allclose(ds["u"].values, u, rtol=1e-6)
