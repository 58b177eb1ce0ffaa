"""SpecBoost (Qin et al. 2024): a second operator trained on the residual of a trained first one.

    prediction(x) = first(x) + r * second((x - mu_in) / sd_in),   mu_in, sd_in: the first's

``first`` is a trained run (any operator, with its own normalisation), frozen; ``second`` is a
fresh operator of the same family, by default with the same hyperparameters. ``r = g s``: s is the
per-channel standard deviation of the first model's residual on the training data (measured in
``initialize``), so the second model learns an O(1) target - the residual the first one's spectral
bias leaves, mostly the high frequencies - and g is a learned gain that starts at zero, so the
boosted model starts exactly at the first one's prediction.

Training: ``sciops train specboost --data FILE -o RUN2 --set base=RUN1``. The base run's
config (operator and normalisation) is embedded in the hyperparameters and both models' weights
are in RUN2's checkpoint, so RUN2 loads as one surrogate on its own, without RUN1.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sciops.operators.base import Operator, RunReader


class SpecBoost(Operator):
    """Args:
        base: the run directory of the trained first operator (read when training starts).
        second: hyperparameters of the second operator that differ from the first's.
        base_config: filled in from ``base`` (the first run's operator and normalisation).
    """

    raw_io = True  # both stages normalise themselves

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, ndim: int = 2, geometry: str = "bounded",
                 time_steps: int | None = None, input_steps: int | None = None, base: str = "",
                 second: dict | None = None, base_config: dict | None = None):
        super().__init__()
        from sciops.operators import build, build_normalized

        if not base_config:
            raise ValueError("specboost needs the run it boosts: --set base=RUN_DIR")
        op = base_config["operator"]
        mine = (in_channels, out_channels, time_steps, input_steps)
        if (op["in_channels"], op["out_channels"], op.get("time_steps"), op.get("input_steps")) != mine:
            raise ValueError(f"the base run maps {op['in_channels']} -> {op['out_channels']} channels with "
                             f"time_steps={op.get('time_steps')}, input_steps={op.get('input_steps')}, but this data "
                             f"has {in_channels} -> {out_channels} with time_steps={time_steps}, input_steps={input_steps}")
        self.first = build_normalized(op, base_config["normalization"])
        self.first.requires_grad_(False)
        hparams = {**op["hyperparameters"], **(second or {})}
        extra = {k: v for k, v in (("time_steps", time_steps), ("input_steps", input_steps)) if v is not None}
        self.second = build(op["name"], in_channels=in_channels, out_channels=out_channels, ndim=ndim,
                            geometry=geometry, **extra, **hparams)
        self.gain = nn.Parameter(torch.zeros(out_channels))  # zero: start at the first model's prediction
        self.register_buffer("residual_std", torch.ones(out_channels))
        self._base = base

    @classmethod
    def prepare_hyperparameters(cls, hparams: dict, problem, runs: RunReader) -> dict:
        """Embed the base run's operator and normalisation (checked against the data's problem)."""
        if not hparams.get("base"):
            raise ValueError("specboost needs the run it boosts: --set base=RUN_DIR")
        run = Path(hparams["base"])
        config = runs.config(run)
        if config["operator"]["name"] == "specboost":
            raise ValueError(f"{run} is already a specboost run; boost its base run instead")
        if problem.name != config["problem"]["name"]:  # the residual to learn is the base run's on this data
            raise ValueError(f"the data to boost on hold {problem.name} data, but {run} was trained on "
                             f"{config['problem']['name']}")
        problem.check_same_operator(problem.params, config["problem"]["params"], "the data to boost on")
        base_config = {"operator": config["operator"], "normalization": config["normalization"]}
        return {**hparams, "base": str(run.resolve()), "base_config": base_config}

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, y: torch.Tensor, runs: RunReader) -> None:
        """Load the first run's weights and measure its residual's scale on training pairs."""
        self.first.load_state_dict(runs.weights(self._base, x.device))
        self.first.eval()
        residual = (y - self.first(x)).transpose(0, 1).reshape(y.shape[1], -1)
        self.residual_std.copy_(residual.std(1).clamp_min(1e-12))

    def train(self, mode: bool = True):
        super().train(mode)
        self.first.eval()  # frozen stage stays in inference mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.first(x)
        z = self.first.normalize_inputs(x)
        correction = self.second(z)
        scale = (self.gain * self.residual_std).view(1, -1, *([1] * (correction.dim() - 2)))
        return first + scale * correction
