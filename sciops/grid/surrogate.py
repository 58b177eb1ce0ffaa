"""The Surrogate: a trained operator used exactly where ``problem.solve`` was used.

``sciops.load(run_dir)`` returns a :class:`Surrogate`. ``surrogate.solve(inputs)`` (or
``surrogate(inputs)``) takes and returns what the problem's ``solve`` does: a bare array of shape
(batch, *space) (or one sample, (*space)) for a problem with one input field, a dict of such
arrays otherwise; (batch, K, *space) for an input that is a segment of K records; a field with C
channels (a vector or complex field) is (..., C), channel last, as stored (a 2-channel input may
also be passed as complex numbers, read as (real, imaginary)). numpy in gives numpy out; torch in
gives torch out on the input's device. Normalisation is inside.
The operator runs on the input's grid, so any resolution the operator supports is served.

Dtypes and gradients: the operator computes in its own dtype (float32); the answer is cast back to
the input's floating dtype (float64 in, float64 out, equal to the float32 answer to rounding;
integer input gives float32). No autograd graph is built for numpy input nor for torch input that
does not require grad; torch input that requires grad (in grad mode) gives a differentiable answer.
To differentiate through the weights, call ``surrogate.model`` (the plain module).

Speed: a call costs the model's forward plus checks made cheap (the problem's shape check, with the
problem built once; one pass of per-sample statistics that serves both the NaN/Inf check and the
out-of-distribution check; no copy when the batch fits in ``batch_size``): ``scripts/bench_serving.py``
measures the ratio to the bare forward. The surrogate never calls ``torch.set_num_threads``: threads
are process-wide, so they are set once by the caller (torch's default is one per core), never per
call. ``sciops.load(run, compile=True)`` runs the model through ``torch.compile`` (inductor; on CPU
it needs a C++ compiler): the first call pays the compilation, measured 25 s for a small FNO on a
shared 2-core CPU, and the first call at a second input shape as much again (it recompiles with
dynamic shapes; later shapes about 1 s); ``bench_serving.py --compile`` measures it. The compiled
model is ``surrogate._forward``; ``surrogate.model`` stays the plain module.

Trust: ``solve(inputs, return_estimate=True)`` adds a guaranteed bound on each answer's error and
``solve(inputs, tol=...)`` meets a tolerance by letting the reference solver finish (problems with
a certified bound, darcy; see :mod:`sciops.grid.certified`). Inputs outside the summary of the training
inputs kept in the run (:mod:`sciops.runs.input_summary`) are warned about; ``strict=True`` refuses them.
"""
from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from sciops.runs import storage
from sciops.runs.input_summary import WARNING as OOD_WARNING
from sciops.runs.input_summary import Ranges, statistics
from sciops.runs.models import build_model, resolve_device
from sciops.runs.spec import RunSpec

MIN_POINTS = 4  # per dimension: fewer cannot carry a field plus its boundary


def compiled(model: torch.nn.Module, device: torch.device):
    """``torch.compile(model)``, or a one-line ValueError when inductor cannot run here."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError("compile=True needs a C++ compiler on the PATH (torch.compile's inductor builds "
                         "CPU kernels with it); install g++ or load without compile")
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            raise ValueError("compile=True needs triton on CUDA (torch.compile's inductor); install it or "
                             "load without compile")
    return torch.compile(model)


class Surrogate:
    def __init__(self, model: torch.nn.Module, spec: RunSpec, device: torch.device, compile: bool = False,
                 run_dir: str | None = None):
        self.model, self.spec, self.device = model.eval(), spec, device
        self.dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self._forward = compiled(self.model, torch.device(device)) if compile else self.model
        self._ranges = Ranges(spec.input_summary) if spec.input_summary else None
        self.inputs, self.outputs = spec.fields.inputs, spec.fields.outputs
        op = spec.operator
        self.ndim = op.ndim
        self.input_steps = op.input_steps  # inputs that are a trajectory segment carry a time axis before the grid
        # one input field feeding several channels is a vector field stored channel-last (..., C)
        self.field_channels = op.in_channels if len(self.inputs) == 1 and op.in_channels > 1 else None
        # likewise one output field from several channels is returned channel-last
        self.output_channels = op.out_channels if len(self.outputs) == 1 and op.out_channels > 1 else None
        self._problem = None
        self.run_dir = run_dir  # the run the error messages name (set by load)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None, compile: bool = False) -> "Surrogate":
        """The surrogate of run directory ``path``; ``compile=True`` serves the model through
        ``torch.compile`` (module docstring)."""
        path = storage.check_run_dir(path)
        spec = RunSpec.load(path)
        missing = [k for k in ("problem", "fields", "normalization") if getattr(spec, k) is None]
        if missing or spec.operator.ndim is None:
            raise ValueError(f"{path / storage.CONFIG} is incomplete: missing {(missing or ['operator.ndim'])[0]!r}")
        device = resolve_device("auto") if device is None else torch.device(device)
        model = build_model(spec)
        state = storage.load_tensors(path / storage.WEIGHTS, map_location="cpu")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path / storage.WEIGHTS} does not match the operator in config.json "
                             f"({storage.load_error(exc)})") from None
        return cls(model.to(device), spec, device, compile=compile, run_dir=str(path))

    @property
    def problem(self):
        """The Problem this operator was trained for, rebuilt from the run spec."""
        if self._problem is None:
            self._problem = self.spec.problem.build()
        return self._problem

    def _to_tensor(self, inputs) -> tuple[torch.Tensor, bool, bool, torch.device | None, torch.dtype | np.dtype]:
        """Channel-first batch tensor in the model's dtype, whether the input was one sample, torch or
        numpy, its device, and the dtype to answer in."""
        fields = inputs if isinstance(inputs, dict) else {self.inputs[0]: inputs}
        if isinstance(inputs, dict):
            missing = [k for k in self.inputs if k not in fields]
            if missing:
                raise ValueError(f"input field {missing[0]!r} missing; expected fields {self.inputs}")
        elif len(self.inputs) != 1:
            raise ValueError(f"this operator takes several input fields {self.inputs}: pass a dict")
        self.problem.check_input_shapes({k: tuple(np.shape(fields[k])) for k in self.inputs})  # what solve refuses
        arrays = [fields[k] for k in self.inputs]
        if self.field_channels == 2:  # a complex field (radar's adjoint image) may come as complex numbers
            arrays = [torch.view_as_real(a) if isinstance(a, torch.Tensor) and a.is_complex()
                      else np.stack([a.real, a.imag], -1) if np.iscomplexobj(a) else a for a in arrays]
        is_torch = isinstance(arrays[0], torch.Tensor)
        source_device = arrays[0].device if is_torch else None
        if is_torch:
            tensors = arrays
            out_dtype = arrays[0].dtype if arrays[0].is_floating_point() else torch.float32
        else:
            arrays = [np.asarray(a) for a in arrays]
            out_dtype = arrays[0].dtype if np.issubdtype(arrays[0].dtype, np.floating) else np.dtype(np.float32)
            tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"input fields have different shapes {sorted(shapes)}")
        shape = shapes.pop()
        if self.field_channels is not None:  # (..., C) -> channel-first below; C checked here
            if not shape or shape[-1] != self.field_channels:
                raise ValueError(f"input of shape {shape} does not fit: expected a trailing axis of "
                                 f"{self.field_channels} channels (batch, {self.ndim} grid dims, {self.field_channels})")
            tensors = [t.movedim(-1, 0) for t in tensors]
            shape = shape[:-1]
        dims = self.ndim + (self.input_steps is not None)
        if len(shape) not in (dims, dims + 1) or (self.input_steps is not None and shape[-dims] != self.input_steps):
            one = f"{self.input_steps} records, " * (self.input_steps is not None) + f"{self.ndim} grid dims"
            one += f", {self.field_channels} channels" * (self.field_channels is not None)
            raise ValueError(f"input of shape {shape + (self.field_channels,) * (self.field_channels is not None)} "
                             f"does not fit: expected (batch, {one}) or ({one})")
        single = len(shape) == dims
        grid = shape[-self.ndim:]
        if min(grid) < MIN_POINTS:
            raise ValueError(f"grid {grid} is too small: this operator needs at least {MIN_POINTS} points per dimension")
        tensors = [t.to(self.device, self.dtype) for t in tensors]
        x = (tensors[0] if self.field_channels is not None
             else tensors[0].unsqueeze(-dims - 1) if len(tensors) == 1 else torch.stack(tensors, dim=-dims - 1))
        if self.field_channels is not None and not single:
            x = x.transpose(0, 1)  # (C, batch, *space) -> (batch, C, *space)
        if single:
            x = x.unsqueeze(0)
        return x, single, is_torch, source_device, out_dtype

    def solve(self, inputs, batch_size: int = 64, *, return_estimate: bool = False, tol: float | None = None,
              strict: bool = False, steps: int | None = None):
        """Predict outputs for ``inputs`` (see module docstring).

        ``return_estimate=True``: ``(outputs, bounds)``, a guaranteed bound on each answer's relative
        error; ``tol``: answers whose bound exceeds it are finished by the reference solver (see
        :mod:`sciops.grid.certified`; numpy in and out, problems with ``certified = True``). Inputs outside
        the training inputs' summary are warned about; ``strict=True`` refuses them. Trajectory operators:
        ``steps`` and/or ``tol`` give a :class:`sciops.grid.hybrid.HybridResult`, the rollout over
        ``steps`` records handed to the solver where the calibrated estimate exceeds ``tol``.
        """
        if steps is not None or (tol is not None and not self.problem.certified):
            from sciops.grid.hybrid import march

            if return_estimate:
                raise ValueError("return_estimate is for certified problems; a rollout's HybridResult carries its "
                                 "per-record estimates (with tol)")
            self._warn_or_refuse(self.out_of_distribution(inputs), strict, stacklevel=3)
            return march(self, inputs, tol=tol, steps=steps, batch_size=batch_size)
        if return_estimate or tol is not None:
            from sciops.grid.certified import certify

            if isinstance(inputs, torch.Tensor):
                raise ValueError("return_estimate and tol take numpy inputs (the bound is computed in float64 "
                                 "with the solver's operators, outside autograd)")
            answer = certify(self, inputs, tol, batch_size, strict=strict)
            return (answer.outputs, answer.bounds) if return_estimate else answer.outputs
        return self._predict(inputs, batch_size, strict)

    def out_of_distribution(self, inputs) -> np.ndarray:
        """(batch,) bool, or a bool for one sample: inputs outside the summary of the training inputs
        (all False for runs trained before sciops kept one)."""
        x, single, *_ = self._to_tensor(inputs)
        flagged = self._screen(x)
        return flagged[0] if single else flagged

    def _screen(self, x: torch.Tensor) -> np.ndarray:
        """Out-of-distribution flags (N,); a ValueError naming the first sample with NaN or Inf. One
        pass of statistics serves both: a non-finite sample has a non-finite min or max."""
        if self._ranges is None or not len(x):
            finite = torch.isfinite(x).flatten(1).all(1).cpu().numpy()
            stats = None
        else:
            stats = statistics(x, roughness=self._ranges.same_grid(x))
            finite = np.isfinite(stats[:, :2]).all((1, 2))
        if not finite.all():
            raise ValueError(f"input sample {int(np.argmin(finite))} contains NaN or Inf")
        return self._ranges.outside(stats) if stats is not None else np.zeros(len(x), dtype=bool)

    @staticmethod
    def _warn_or_refuse(flagged, strict: bool, stacklevel: int = 4) -> None:
        """Warn about out-of-distribution inputs (at the caller ``stacklevel`` frames up), or refuse them
        with ``strict``."""
        flagged = np.atleast_1d(flagged)
        if flagged.any():
            message = (f"{int(flagged.sum())} of {flagged.size} {OOD_WARNING} (sciops.runs.input_summary); the operator's "
                       f"answers there are extrapolation")
            if strict:
                raise ValueError(message + "; strict=True refuses them")
            warnings.warn(message, stacklevel=stacklevel)

    def _predict(self, inputs, batch_size: int, strict: bool = False):
        x, single, is_torch, source_device, out_dtype = self._to_tensor(inputs)
        self._warn_or_refuse(self._screen(x), strict)
        # a graph only for input that asks for one (no_grad, not inference_mode: tensors an operator
        # caches must serve autograd later)
        with contextlib.nullcontext() if x.requires_grad else torch.no_grad():
            if 0 < len(x) <= batch_size:
                y = self._forward(x)
            else:  # an empty batch gives an empty batch, as problem.solve does (shaped by a zero sample: FFTs refuse empty input)
                batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)] or [x.new_zeros((1,) + x.shape[1:])]
                y = torch.cat([self._forward(b) for b in batches])[:len(x)]
        # y is (batch, channels, [time,] *space): one array per output field, batch dim dropped for one sample
        if self.output_channels is not None:
            out = {self.outputs[0]: y.movedim(1, -1)}
        else:
            out = {name: y[:, c] for c, name in enumerate(self.outputs)}
        if single:
            out = {k: v[0] for k, v in out.items()}
        out = {k: (v.to(source_device, out_dtype) if is_torch else v.cpu().numpy().astype(out_dtype, copy=False))
               for k, v in out.items()}
        return out if len(out) > 1 else out[self.outputs[0]]

    def certify(self, inputs, tol: float | None = None, batch_size: int = 64):
        """The whole certified answer (:class:`sciops.grid.certified.Certified`): outputs, bounds, solver
        iterations, refined samples, out-of-distribution flags and seconds."""
        from sciops.grid.certified import certify

        return certify(self, inputs, tol, batch_size)

    __call__ = solve

    def __repr__(self) -> str:
        op = self.spec.operator
        return (f"Surrogate({op.name} for {self.spec.problem.name}, "
                f"{op.parameters if op.parameters is not None else '?'} parameters, device={self.device})")
