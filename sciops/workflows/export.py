"""``sciops export RUN -o FILE``: a trained grid operator as a file that runs without sciops.

The exported model is the run's :class:`~sciops.normalization.NormalizedOperator`: raw channel-first
inputs (batch, C_in, [K,] *grid) to raw outputs (batch, C_out, [T,] *grid), the normalisation
included - what ``Surrogate.solve`` computes after it has put the fields channel-first. Formats:

* ``exported-program`` (``.pt2``, ``torch.export.save``; load with ``torch.export.load(f).module()``),
* ``torchscript`` (``.pt``, ``torch.jit.trace``; load with ``torch.jit.load``),
* ``onnx`` (``.onnx``, ``torch.onnx.export(dynamo=True)``; needs ``onnx`` and ``onnxscript``, the
  ``export`` extra). Operators with complex-valued spectral layers (every FFT or spherical-harmonic
  operator) have no ONNX form; only ``dgno``, ``mgno`` and ``unet`` (and ``specboost`` over them) export.

The batch dimension is always dynamic. The grid is dynamic where the export keeps it so (checked on
a second grid, :func:`export_model`); otherwise the file takes the run's training grid only and refuses
others (exported program and ONNX by their shape checks, TorchScript by a guard added around the trace).
Before the file is written the artefact is compared with the model on the training grid (batch 2 and 3)
and on the second grid; a difference above 1e-5 (relative to the output's scale) is an error.

The file carries what is needed to use it (``sciops.json``: format, input and output fields, their
units and layout, the grid, whether batch and grid are dynamic, and the run spec): an extra file of
the exported program and TorchScript archives, a metadata entry of the ONNX model; :func:`read_metadata`
reads it back. Files are written atomically.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from sciops.files import atomic_write

FORMATS = {"exported-program": ".pt2", "torchscript": ".pt", "onnx": ".onnx"}
ONNX_OPERATORS = ("dgno", "mgno", "unet")  # the others compute with complex tensors (FFT, SHT), absent from ONNX
METADATA = "sciops.json"
TOLERANCE = 1e-5


def formats_for(operator) -> list[str]:
    """The formats an operator (its run-spec entry, an object or dict) exports to."""
    op = operator if isinstance(operator, dict) else vars(operator)
    name = op["name"]
    if name == "specboost":  # both stages are of the base run's family
        name = (op.get("hyperparameters", {}).get("base_config") or {}).get("operator", {}).get("name", name)
    return [f for f in FORMATS if f != "onnx" or name in ONNX_OPERATORS]


def export_run(run_dir: str | Path, output: str | Path, format: str = "exported-program",
               overwrite: bool = False) -> str:
    """Export the model of grid run ``run_dir`` to ``output``; the line the CLI prints."""
    from sciops import kinds
    from sciops.grid.surrogate import Surrogate

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if kinds.of_run(run_dir) is not kinds.get("grid"):
        raise ValueError(f"{run_dir} is a particle run; sciops export writes grid operators only")
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    surrogate = Surrogate.load(run_dir, device="cpu")
    meta = export_model(surrogate.model, surrogate.spec, output, format)
    grid = "any grid" if meta["dynamic"]["grid"] else f"the grid {'x'.join(map(str, meta['grid']))} only"
    return f"wrote {output} ({format}, {meta['operator']}: any batch, {grid})"


def export_model(model: torch.nn.Module, spec, output: str | Path, format: str = "exported-program") -> dict:
    """Export ``model`` (the run's NormalizedOperator) described by run spec ``spec`` to ``output``;
    returns the metadata written with it. ValueError (one line) for a format the operator lacks or an
    artefact that does not reproduce the model."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    op = spec.operator
    able = formats_for(op)
    if format not in able:
        raise ValueError(f"operator {op.name} cannot be exported as {format} (its spectral layers compute with "
                         f"complex tensors, which ONNX lacks); formats that work: {', '.join(able)}")
    if spec.data is None or not spec.data.resolution:
        raise ValueError("this run records no training grid to export the model for")
    model = model.eval().cpu()
    grid = list(spec.data.resolution)
    other = [n + 2 * max(1, n // 8) for n in grid]
    x = {"grid": _example(model, op, grid, 2), "batch": _example(model, op, grid, 3, seed=1),
         "other": _example(model, op, other, 2, seed=2)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {"grid": model(x["grid"]), "batch": model(x["batch"])}
        try:
            expected["other"] = model(x["other"])
        except (ValueError, RuntimeError):  # the operator itself refuses the second grid
            expected["other"] = None
        if format == "exported-program":
            artefact, run = _exported_program(model, x["grid"], op.ndim)
        elif format == "torchscript":
            artefact, run = _torchscript(model, x["grid"])
        else:
            artefact, run = _onnx(model, x["grid"], op.ndim, op.name)
        for key in ("grid", "batch"):
            _compare(run(x[key]), expected[key], f"{op.name} as {format}", key)
        dynamic_grid = expected["other"] is not None and _reproduces(run, x["other"], expected["other"])
        if format == "torchscript" and not dynamic_grid:
            artefact, run = _torchscript_guarded(artefact, grid)
            _compare(run(x["batch"]), expected["batch"], f"{op.name} as {format}", "batch")
    meta = metadata(spec, format, grid, dynamic_grid)
    data = _serialise(format, artefact, meta)
    atomic_write(Path(output), lambda f: f.write(data))
    return meta


def metadata(spec, format: str, grid: list[int], dynamic_grid: bool) -> dict:
    """What the exported file records about how to use it (written as ``sciops.json``)."""
    op, fields = spec.operator, spec.fields
    steps_in = f"{op.input_steps} input records, " if op.input_steps else ""
    steps_out = f"{op.time_steps} output records, " if op.time_steps else ""
    run = {k: v for k, v in spec.to_dict().items() if k != "history"}
    return {
        "format": format, "operator": op.name, "sciops_version": spec.sciops_version,
        "inputs": list(fields.inputs) if fields else None, "outputs": list(fields.outputs) if fields else None,
        "units": dict(fields.units) if fields else {},
        "input_layout": f"(batch, {op.in_channels} channels, {steps_in}{op.ndim} grid dims), float32, raw units",
        "output_layout": f"(batch, {op.out_channels} channels, {steps_out}{op.ndim} grid dims), float32, raw units",
        "grid": grid, "geometry": op.geometry,
        "problem": {"name": spec.problem.name, "params": spec.problem.params} if spec.problem else None,
        "dynamic": {"batch": True, "grid": bool(dynamic_grid)},
        "normalization": "included",
        "run_spec": run,
    }


def read_metadata(path: str | Path) -> dict:
    """The ``sciops.json`` an exported file carries (any of the three formats)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):  # zip archive: exported program or TorchScript
        import zipfile

        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith(f"/{METADATA}") or name == METADATA:
                    return json.loads(z.read(name))
        raise ValueError(f"{path} holds no {METADATA}: not a model written by sciops export")
    try:
        import onnx
    except ImportError:
        raise ValueError(f"{path} is not a zip archive; reading ONNX files needs onnx (pip install "
                         f"'sciops[export]')") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise ValueError(f"{path} is neither an exported program, TorchScript nor ONNX file") from None
    for entry in model.metadata_props:
        if entry.key == METADATA:
            return json.loads(entry.value)
    raise ValueError(f"{path} holds no {METADATA}: not a model written by sciops export")


# --- the formats ------------------------------------------------------------------------------------

def _dynamic_shapes(x: torch.Tensor, ndim: int) -> tuple[dict]:
    dims = {0: torch.export.Dim("batch", min=1)}
    dims.update({i: torch.export.Dim.AUTO for i in range(x.dim() - ndim, x.dim())})
    return (dims,)


def _exported_program(model, x, ndim: int):
    ep = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(x, ndim))
    return ep, ep.module()


def _torchscript(model, x):
    traced = torch.jit.trace(model, (x,), check_trace=False)
    return traced, traced


class _GridGuard(torch.nn.Module):
    """A traced model that refuses grids other than the one it was traced on (the trace keeps them fixed)."""

    def __init__(self, traced, grid: list[int]):
        super().__init__()
        self.model, self.grid = traced, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[x.dim() - len(self.grid):] != self.grid:
            raise ValueError("this exported model runs on the grid " + str(self.grid) + " only, not "
                             + str(x.shape[x.dim() - len(self.grid):]))
        return self.model(x)


def _torchscript_guarded(traced, grid: list[int]):
    guarded = torch.jit.script(_GridGuard(traced, list(grid)))
    return guarded, guarded


def _onnx(model, x, ndim: int, name: str):
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ValueError("onnx export needs onnx and onnxscript: pip install 'sciops[export]'") from None
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=_dynamic_shapes(x, ndim),
                                    input_names=["inputs"], output_names=["outputs"], verbose=False,
                                    report=False)
    except Exception as exc:  # the exporter's errors are long reports: keep their first line
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ValueError(f"operator {name} could not be exported as onnx ({first}); formats that work: "
                         f"exported-program, torchscript") from None
    proto = program.model_proto
    data = proto.SerializeToString()
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("checking the onnx export needs onnxruntime: pip install 'sciops[export]'") from None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"inputs": inputs.numpy()})[0])

    return proto, run


def _serialise(format: str, artefact, meta: dict) -> bytes:
    text = json.dumps(meta, indent=1)
    buffer = io.BytesIO()
    if format == "exported-program":
        torch.export.save(artefact, buffer, extra_files={METADATA: text})
    elif format == "torchscript":
        with warnings.catch_warnings():  # torch.jit.save's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(artefact, buffer, _extra_files={METADATA: text})
    else:
        entry = artefact.metadata_props.add()
        entry.key, entry.value = METADATA, text
        return artefact.SerializeToString()
    return buffer.getvalue()


# --- inputs and checks ------------------------------------------------------------------------------

def _example(model, op, grid: list[int], batch: int, seed: int = 0) -> torch.Tensor:
    """Inputs (batch, C_in, [K,] *grid) spread as the training inputs (their per-channel mean and std)."""
    shape = (batch, op.in_channels) + ((op.input_steps,) if op.input_steps else ()) + tuple(grid)
    gen = torch.Generator().manual_seed(seed)
    mean = model._bcast(model.in_mean, torch.empty(shape)) if hasattr(model, "in_mean") else 0.0
    std = model._bcast(model.in_std, torch.empty(shape)) if hasattr(model, "in_std") else 1.0
    x = torch.randn(shape, generator=gen) * std + mean
    if op.name == "dgno":
        x = x.abs() + 0.1  # DGNO takes a positive coefficient (its encoder reads log a)
    return x.float()


def _error(got: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.abs().max().item() if expected.numel() else 0.0
    return (got - expected).abs().max().item() / max(scale, 1.0)


def _reproduces(run, x, expected) -> bool:
    try:
        got = run(x)
    except Exception:  # a fixed-shape artefact refuses the other grid
        return False
    return tuple(got.shape) == tuple(expected.shape) and _error(got, expected) <= TOLERANCE


def _compare(got, expected, what: str, which: str) -> None:
    if tuple(got.shape) != tuple(expected.shape):
        raise ValueError(f"{what}: the export gives shape {tuple(got.shape)}, the model {tuple(expected.shape)}")
    error = _error(got, expected)
    if not error <= TOLERANCE:
        batch = "another batch size" if which == "batch" else "the training grid"
        raise ValueError(f"{what} does not reproduce the model on {batch} (relative difference {error:.1e} > "
                         f"{TOLERANCE:g})")
