"""Runs: the run spec (config.json as dataclasses), model building and device choice, and the
atomic storage of run directories. Below training, serving and the workflows; above operators."""
from sciops.runs.spec import DataSpec, FieldSpec, OperatorSpec, ProblemSpec, RunSpec

__all__ = ["DataSpec", "FieldSpec", "OperatorSpec", "ProblemSpec", "RunSpec"]
