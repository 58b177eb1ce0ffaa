"""The run spec: what ``config.json`` of a run directory holds, as dataclasses.

A :class:`RunSpec` is written by the trainers when a run starts and completed when it ends; every
other module reads a run through it (``spec.operator.name``, ``spec.problem.params``, ...) rather
than by raw keys. Layout of ``config.json`` (schema 2)::

    schema          2
    sciops_version  the version that wrote it
    operator        name, hyperparameters, parameters (real numbers), and for grid operators the
                    shape the data gave: in_channels, out_channels, ndim, geometry, time_steps, input_steps
    problem         name and params (``sciops.problems.get(name, **params)`` rebuilds it); absent
                    for a particle surrogate saved by hand, without a problem
    fields          inputs, outputs (field names) and units
    data            path, seed, n_samples, n_train, n_val, and resolution (grid) or frames and
                    particles (particle trajectories)
    training        the training settings (TrainConfig or ParticleTrainConfig as a dict)
    normalization   grid runs: per-channel in_mean, in_std, out_mean, out_std
    input_summary   grid runs: summary of the training inputs (``sciops.runs.input_summary``)
    reconstruction, n_sparse, seed    particle runs: the kernel reconstruction and the subsample
    history         summary of the finished training (absent while a run is unfinished)
    refined         the Spectral-Refiner's summary, for a fine-tuned run
    error_estimator trajectory runs, after ``sciops calibrate``: the per-record error estimator and its
                    calibration on the validation trajectories (``sciops.grid.error_estimator.calibrate``:
                    estimator, a, b, slope, margin, amplification, defect_rungs, spearman, rung_errors, seconds);
                    absent before

Schema 1 (sciops before the run spec) had the same keys without ``schema``; it loads unchanged. A
config.json of a newer schema than this sciops reads is refused with a one-line ValueError.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from sciops.runs import storage
from sciops.version import __version__

SCHEMA = 2
FRESH_SEED_OFFSET = 7_919  # base seed of fresh samples = training seed + offset (+1 until disjoint)


@dataclass
class OperatorSpec:
    name: str
    hyperparameters: dict = field(default_factory=dict)
    in_channels: int | None = None
    out_channels: int | None = None
    ndim: int | None = None
    geometry: str | None = None
    time_steps: int | None = None
    input_steps: int | None = None
    parameters: int | None = None  # counted when the model is built; not part of the resume comparison


@dataclass
class ProblemSpec:
    name: str
    params: dict = field(default_factory=dict)

    def build(self):
        """The Problem, rebuilt with ``sciops.problems.get``."""
        from sciops import problems

        return problems.get(self.name, **self.params)


@dataclass
class FieldSpec:
    inputs: list[str]
    outputs: list[str]
    units: dict = field(default_factory=dict)


@dataclass
class DataSpec:
    path: str
    seed: int
    n_samples: int
    n_train: int
    n_val: int
    resolution: list[int] | None = None  # grid runs: the training grid
    frames: int | None = None            # particle runs: frames per trajectory
    particles: int | None = None         # particle runs: particles per trajectory


_PARTS = {"operator": OperatorSpec, "problem": ProblemSpec, "fields": FieldSpec, "data": DataSpec}
# compared when a run resumes: the settings that decide what training computes (the data's path may move)
RESUME_KEYS = ("operator", "problem", "training", "data", "reconstruction", "n_sparse", "seed")


@dataclass
class RunSpec:
    operator: OperatorSpec
    problem: ProblemSpec | None = None
    fields: FieldSpec | None = None
    data: DataSpec | None = None
    training: dict | None = None
    normalization: dict | None = None
    input_summary: dict | None = None
    reconstruction: dict | None = None
    n_sparse: int | None = None
    seed: int | None = None
    history: dict | None = None
    refined: dict | None = None
    error_estimator: dict | None = None
    sciops_version: str = ""
    schema: int = SCHEMA

    def __post_init__(self):
        if not self.sciops_version:
            self.sciops_version = __version__

    # --- JSON form ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON form (``None`` entries of the top level left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, config: dict, source: str | Path = "config.json") -> RunSpec:
        """The spec of a config.json's content; ValueError naming what is missing or of a newer schema."""
        if not isinstance(config, dict):
            raise ValueError(f"{source} does not hold a JSON object")
        config = migrate(config, source)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, value in config.items():
            if key not in known:
                continue  # keys of later minor additions are kept out rather than refused
            part = _PARTS.get(key)
            if part is not None and value is not None:
                names = {f.name for f in dataclasses.fields(part)}
                try:
                    value = part(**{k: v for k, v in value.items() if k in names})
                except (TypeError, AttributeError):
                    required = [f.name for f in dataclasses.fields(part) if f.default is dataclasses.MISSING
                                and f.default_factory is dataclasses.MISSING]
                    raise ValueError(f"{source} is incomplete: its {key!r} entry needs {', '.join(required)}") from None
            values[key] = value
        if not isinstance(values.get("operator"), OperatorSpec):
            raise ValueError(f"{source} is incomplete: missing 'operator'")
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunSpec:
        path = Path(run_dir) / storage.CONFIG
        return cls.from_dict(storage.load_json(path), path)

    def save(self, run_dir: str | Path) -> None:
        storage.save_json(Path(run_dir) / storage.CONFIG, self.to_dict())

    def fresh_seed(self, n: int) -> int:
        """A base seed whose first n sample seeds share nothing with the training file's seeds."""
        from sciops.problems import sample_seed

        if self.data is None:
            raise ValueError("this run records no training data, so fresh samples cannot be told apart from it")
        used = {sample_seed(self.data.seed, i) for i in range(self.data.n_samples)}
        seed = self.data.seed + FRESH_SEED_OFFSET
        while any(sample_seed(seed, i) in used for i in range(n)):
            seed += 1
        return seed

    def copy(self) -> RunSpec:
        return RunSpec.from_dict(json.loads(json.dumps(self.to_dict())))

    # --- resume --------------------------------------------------------------------------------------
    def resume_difference(self, saved: RunSpec) -> str | None:
        """Where this command's settings differ from those of the ``saved`` run ("key.sub: saved vs
        now"), or None when the run may resume."""
        mine, theirs = self.to_dict(), saved.to_dict()
        for spec in (mine, theirs):
            spec.get("operator", {}).pop("parameters", None)
            spec.get("data", {}).pop("path", None)
        for key in RESUME_KEYS:
            if mine.get(key) != theirs.get(key):
                return storage.first_difference(theirs.get(key), mine.get(key), key)
        return None


def migrate(config: dict, source: str | Path = "config.json") -> dict:
    """config.json's content in the current schema (schema 1 is the same layout without ``schema``)."""
    version = config.get("schema", 1)
    if not isinstance(version, int) or version > SCHEMA:
        raise ValueError(f"{source} has run schema {version!r}; this sciops reads schemas 1 to {SCHEMA} "
                         f"(upgrade sciops to load it)")
    return {**config, "schema": SCHEMA}


def check_resume(run_dir: str | Path, spec: RunSpec) -> RunSpec:
    """The saved spec of a run to resume; ValueError when this command's settings differ from it."""
    saved = RunSpec.load(run_dir)
    difference = spec.resume_difference(saved)
    if difference is not None:
        key = difference.split(".")[0].split(":")[0]
        raise ValueError(f"cannot resume {run_dir}: its {key} settings differ from this command's ({difference})")
    return saved


class RunDirectories:
    """Read access to run directories for operators that build on another run
    (``sciops.operators.base.RunReader``)."""

    def config(self, run_dir: str | Path) -> dict:
        return RunSpec.load(storage.check_run_dir(run_dir)).to_dict()

    def weights(self, run_dir: str | Path, device) -> dict:
        return storage.load_tensors(storage.check_run_dir(run_dir) / storage.WEIGHTS, map_location=device)
