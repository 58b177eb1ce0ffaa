"""``sciops train``: the operator's kind trains it, in this process or on N under torchrun."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from sciops import kinds
from sciops.training import distributed, load_toml


def settings(operator: str, data: str | Path, config_file: str | Path | None, hparams: dict,
             options: dict) -> tuple[kinds.Kind, dict, object]:
    """The kind, the hyperparameters and the training settings (an instance of the kind's ``Config``)
    from a TOML file, then ``hparams`` and the command-line ``options`` (None: not given)."""
    kind = kinds.for_training(operator, data)  # the operator takes this data's kind
    file_hparams, training = load_toml(config_file, kind.Config) if config_file else ({}, {})
    fields = sorted(f.name for f in dataclasses.fields(kind.Config))
    for option, value in options.items():
        if value is not None:
            if option not in fields:
                raise ValueError(f"--{option.replace('_', '-')} does not apply to operator {operator}; "
                                 f"its training settings are {', '.join(fields)}")
            training[option] = value
    return kind, {**file_hparams, **hparams}, kind.Config(**training)


def train_run(operator: str, data: str | Path, output: str | Path, *, kind: kinds.Kind, hparams: dict, config,
              resume: bool = False, force: bool = False, quiet: bool = False, nproc: int | None = None,
              argv: list[str] | None = None) -> tuple[int | None, str | None]:
    """Train; (exit code of a torchrun launch or None, the summary line or None on ranks other than 0)."""
    ranks = distributed.context()
    if nproc is not None and nproc != 1:
        if not kind.DISTRIBUTED:
            raise ValueError(f"operator {operator} trains in one process; leave out --nproc")
        if ranks.enabled:
            raise ValueError("--nproc starts torchrun itself; leave it out of a command that runs under torchrun")
        distributed.check_launch(operator, data, config, nproc)
        return distributed.launch([*argv, "--nproc", "1"], nproc), None  # the last --nproc wins
    try:
        summary = kind.train(operator, data, output, hparams=hparams, config=config, resume=resume,
                             progress=None if not quiet else False, force=force)
    finally:
        distributed.shutdown()
    if not ranks.is_main:
        return None, None
    best = summary["best_val"]
    return None, (f"trained {operator} into {output}: best epoch {summary['best_epoch']}/{summary['epochs']}, "
                  + ", ".join(f"val {k} {v:.4g}" for k, v in best.items())
                  + f", {summary['seconds_per_epoch']:.2f} s/epoch")
