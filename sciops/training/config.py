"""Training settings and their TOML form.

A config file has two optional tables::

    [operator]            # hyperparameters of the operator (see `sciops train OP --help`)
    modes = 12
    width = 32

    [training]            # fields of TrainConfig
    epochs = 40
    loss = "h1"

Command-line options override the file; the file overrides the defaults below.

``batch_size`` is the global batch: the samples of one optimiser step over all processes. Under
torchrun with W processes each takes ``batch_size / W`` of them (W must divide it), so the same
settings give the same training whatever W is (see :mod:`sciops.training.distributed`).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sciops.value_types import EXPECTED, fits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEDULERS = ("onecycle", "cosine", "step", "none")


def _expected_type(annotation: str, value) -> str | None:
    """What a field annotated ``annotation`` (e.g. "int | None") must hold, or None if ``value`` fits."""
    base = annotation.removesuffix(" | None")
    if value is None and base != annotation:
        return None
    if base == "list[str]":
        return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else "a list of strings"
    kind = {t.__name__: t for t in EXPECTED}.get(base)
    return None if kind is None or fits(value, kind) else EXPECTED[kind]


def check_types(settings) -> None:
    """ValueError naming the first field of the dataclass ``settings`` whose value has the wrong type
    (a TOML ``batch_size = "abc"`` failed later with a TypeError traceback)."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        what = _expected_type(f.type, value)
        if what is not None:
            raise ValueError(f"training config: {f.name}={value!r} has the wrong type; expected {what}")


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 32  # global batch, over all processes
    lr: float = 5e-3
    weight_decay: float = 1e-4
    scheduler: str = "onecycle"
    loss: str = "h1"
    metrics: list[str] = field(default_factory=lambda: ["l2", "h1"])
    select: str = "l2"  # validation metric that picks the best checkpoint
    val_fraction: float = 0.1
    n_train: int | None = None  # use only the first n_train samples (after the validation split)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_types(self)
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}"),
            (0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1)"),
            (self.select in self.metrics, f"select ({self.select!r}) must be one of metrics {self.metrics}"),
            (self.n_train is None or self.n_train >= 1, "n_train must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"training config: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def split(self, n_samples: int, source: str | Path) -> tuple[int, int]:
        """(n_train, n_val) for a file of ``n_samples``: validation is the last ``val_fraction``."""
        n_val = max(1, round(self.val_fraction * n_samples))
        n_train = n_samples - n_val
        if self.n_train is not None:
            if self.n_train > n_train:
                raise ValueError(f"n_train={self.n_train} but {source} has only {n_train} "
                                 f"training samples after holding out {n_val} for validation")
            n_train = self.n_train
        if n_train < 1:
            raise ValueError(f"{source} has {n_samples} samples: too few to hold out validation samples and train")
        return n_train, n_val


def load_toml(path: str | Path, config_class: type = TrainConfig) -> tuple[dict, dict]:
    """(operator hyperparameters, training settings) from a TOML file; the settings are checked
    against the fields of ``config_class`` (the grid trainer's TrainConfig by default)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"operator", "training"})
    if unknown:
        raise ValueError(f"{path}: unknown table [{unknown[0]}]; expected [operator] and [training]")
    training = data.get("training", {})
    fields = {f.name for f in dataclasses.fields(config_class)}
    bad = sorted(set(training) - fields)
    if bad:
        raise ValueError(f"{path}: unknown training setting {bad[0]!r}; expected one of {', '.join(sorted(fields))}")
    return data.get("operator", {}), training
