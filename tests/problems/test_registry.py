"""Specification of the problem registry: ``sciops.problems.get(name, **params)``.

Every bad name or value is a ``ValueError`` whose message names the offending parameter and
says what is allowed; CLI strings are parsed; ``get(p.name, **p.params)`` rebuilds ``p``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sciops.problems as problems
from sciops.problems import Param, Problem

REPO = Path(__file__).resolve().parents[2]


def test_registry_lists_darcy():
    assert "darcy" in problems.names()
    assert problems.names() == sorted(problems.REGISTRY)
    cls = problems.problem_class("darcy")
    assert issubclass(cls, Problem) and cls.name == "darcy"
    p = problems.get("darcy")
    assert isinstance(p, cls) and p.name == "darcy"


@pytest.mark.parametrize("name", sorted(problems.REGISTRY))
def test_every_registered_problem_builds_with_defaults_and_round_trips(name):
    p = problems.get(name)
    assert set(p.params) == {spec.name for spec in type(p).PARAMS}
    assert problems.get(p.name, **p.params).params == p.params
    # the parameters survive JSON (how dataset files and checkpoints store them)
    assert problems.get(p.name, **json.loads(json.dumps(p.params))).params == p.params
    assert p.input_fields and p.output_fields
    for f in p.fields.values():
        assert f.role in ("input", "output", "diagnostic")
        assert all(d in p.grid for d in f.dims)


def test_unknown_problem():
    with pytest.raises(ValueError) as err:
        problems.get("darcey")
    assert "'darcey'" in str(err.value) and "darcy" in str(err.value)


def test_unknown_parameter_names_it_and_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        problems.get("darcy", resolutoin=64)
    message = str(err.value)
    assert "'resolutoin'" in message
    for known in ("resolution", "coefficient", "averaging", "subsample"):
        assert known in message


@pytest.mark.parametrize("param, value, allowed", [
    ("resolution", 4, "[8, 2049]"),
    ("resolution", 5000, "[8, 2049]"),
    ("subsample", 0, "[1, 16]"),
    ("a_low", 0.0, "[1e-06, inf]"),
    ("coefficient", "gaussian", "fno, multiphase, lognormal"),
    ("averaging", "geometric", "harmonic, arithmetic"),
    ("linear_solver", "cg", "direct, amg"),
])
def test_out_of_range_value(param, value, allowed):
    with pytest.raises(ValueError) as err:
        problems.get("darcy", **{param: value})
    message = str(err.value)
    assert param in message and repr(value) in message
    assert allowed in message
    assert "out of range" in message


@pytest.mark.parametrize("param, value", [
    ("resolution", 64.5),
    ("resolution", "64.5"),
    ("resolution", "sixty-four"),
    ("resolution", [64]),
    ("resolution", None),
    ("resolution", True),
    ("resolution", float("inf")),
    ("resolution", float("nan")),
    ("tau", "abc"),
    ("tau", float("nan")),
    ("tau", float("inf")),
    ("a_high", "high"),
    ("a_high", False),
])
def test_bad_type(param, value):
    with pytest.raises(ValueError) as err:
        problems.get("darcy", **{param: value})
    message = str(err.value)
    assert param in message
    assert "expected a " + ("int" if param == "resolution" else "float") in message


def test_cli_strings_are_parsed():
    p = problems.get("darcy", resolution="33", averaging="arithmetic", tau="2.5", a_low="4",
                     a_high="none", forcing="", subsample="2")
    assert p.params["resolution"] == 33 and type(p.params["resolution"]) is int
    assert p.params["tau"] == 2.5 and type(p.params["tau"]) is float
    assert p.params["averaging"] == "arithmetic"
    assert p.params["a_low"] == 4.0
    assert p.params["a_high"] == 12.0 and p.params["forcing"] == 1.0  # "none" / "" -> the defaults
    assert p.params["subsample"] == 2
    # numpy scalars and integral floats are accepted for ints
    assert problems.get("darcy", resolution=np.int64(40)).params["resolution"] == 40
    assert problems.get("darcy", resolution=40.0).params["resolution"] == 40


def test_round_trip_through_strings():
    """What `sciops generate --param key=value` does with a stored parameter set."""
    p = problems.get("darcy", coefficient="multiphase", resolution=40, phase_cells=8, tau=4.0)
    as_text = {k: ("none" if v is None else str(v)) for k, v in p.params.items()}
    assert problems.get(p.name, **as_text).params == p.params


def test_round_trip_keeps_derived_defaults():
    for coefficient, (low, high, forcing) in {"fno": (3.0, 12.0, 1.0), "multiphase": (5.0, 10.0, 10.0),
                                              "lognormal": (None, None, 1.0)}.items():
        p = problems.get("darcy", coefficient=coefficient)
        assert (p.params["a_low"], p.params["a_high"], p.params["forcing"]) == (low, high, forcing)
        assert problems.get(p.name, **p.params).params == p.params


def test_param_allowed_text():
    assert Param("k", 1, int, "", min=1).allowed() == "a int in [1, inf]"
    assert Param("s", "a", str, "", choices=("a", "b")).allowed() == "one of a, b"


REPO_ROOT = Path(__file__).resolve().parents[2]


def test_package_imports_from_outside_the_repository(tmp_path):
    """sciops.solvers / sciops.problems come from the package-dir mapping of the installed
    project, not from the current directory; no top-level `solvers` / `problems` leaks."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import importlib.util, sciops.solvers, sciops.problems\n"
            "print(sciops.solvers.__file__)\n"
            "print(sciops.problems.__file__)\n"
            "for top in ('solvers', 'problems'):\n"
            "    print(top, importlib.util.find_spec(top))\n"
            "spec = importlib.util.find_spec('datasets')\n"
            "print('datasets', spec and spec.origin)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert Path(lines[0]).name == "__init__.py" and Path(lines[0]).parent.name == "solvers"
    assert Path(lines[1]).parent.name == "problems"
    assert lines[2] == "solvers None" and lines[3] == "problems None"
    # `datasets` may be another library (Hugging Face); it must never be ours.
    assert lines[4] == "datasets None" or "sciops" not in lines[4] and str(REPO_ROOT) not in lines[4]


def test_parameter_choices_kept_beside_the_problems_equal_the_solvers():
    from sciops.problems import darcy, navier_stokes, particles, shallow_water
    from sciops.solvers import darcy as fd
    from sciops.solvers import mpm, sphere_grid, sw_initial
    from sciops.solvers import navier_stokes as ns

    assert darcy.FACE_AVERAGES == fd.FACE_AVERAGES and darcy.LINEAR_SOLVERS == fd.LINEAR_SOLVERS
    assert navier_stokes.FORCINGS == tuple(ns.FORCINGS)
    assert shallow_water.GRIDS == sphere_grid.GRIDS and shallow_water.BALANCES == sw_initial.BALANCES
    assert particles.KINDS == mpm.KINDS and particles.BACKENDS == mpm.BACKENDS
    assert particles.SCENES == tuple(mpm.FAMILIES) + ("mesh",)


@pytest.mark.parametrize("argv", [["--help"], ["problems"], ["info", "{file}"]])
def test_the_quick_verbs_import_neither_torch_nor_scipy(argv, tmp_path):
    """`sciops --help`, `problems` and `info` start in a fraction of a second: nothing heavy is imported."""
    import subprocess
    import sys

    import h5py

    file = tmp_path / "not-sciops.h5"
    with h5py.File(file, "w") as h5:
        h5["x"] = [1.0]
    code = ("import sys\nfrom sciops.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'scipy') if m in sys.modules])")
    args = [a.format(file=file) for a in argv]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "[]"
