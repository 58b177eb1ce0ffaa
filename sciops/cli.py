"""The ``sciops`` command line: problems, generate, merge, info, import, export, train, evaluate, calibrate, invert, finetune, demo.

Exit codes: 0 on success; 2 on bad usage or bad input, with a one-line ``sciops: error: ...``
message and no traceback; 1 with a one-line message when the machine stops the work (a full disk,
a read-only or forbidden path: ``sciops.datasets.resources.WriteError``); 1 with the traceback on an
internal failure. Every verb has
``--help``.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
# file-system conditions of the machine (permissions, read-only or full disks): one line, exit 1
ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)
OUTPUT_OPTIONS = ("output", "plot", "report")  # the verbs' output paths, checked before any work


class UsageError(Exception):
    """Raised by the parser instead of exiting, so main() owns every exit code."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _key_values(pairs: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} must look like key=value")
        out[key.strip()] = value.strip()
    return out


def _json_value(text: str):
    """Hyperparameter values from the command line: JSON if it parses (12, 0.1, [12, 12], true)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# --- verbs ------------------------------------------------------------------------------------------
def cmd_problems(args) -> None:
    from sciops import problems

    for name in problems.names():
        cls = problems.problem_class(name)
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}".rstrip(": "))
        for p in cls.PARAMS:
            default = "auto" if p.default is None else p.default
            print(f"  {p.name:<14} default {default!s:<10} {p.allowed():<40} {p.doc}")


def cmd_generate(args) -> None:
    from sciops import problems
    from sciops.datasets import generate

    problem = problems.get(args.problem, **_key_values(args.param, "--param"))
    if args.dry_run:
        from sciops.datasets.estimates import estimate_text

        print(estimate_text(problem, args.n, args.batch_size, Path(args.output)))
        return
    common = dict(seed=args.seed, resume=args.resume, overwrite=args.overwrite, batch_size=args.batch_size,
                  progress=None if not args.quiet else False, force=args.force)
    if args.workers is not None or args.scheduler is not None:
        from sciops.datasets.sharded import generate_sharded

        path = generate_sharded(problem, args.n, args.output, workers=args.workers, scheduler=args.scheduler,
                                shard_size=args.shard_size, **common)
    elif args.shard_size is not None:
        raise ValueError("--shard-size needs --workers W or --scheduler ADDRESS")
    else:
        path = generate(problem, args.n, args.output, **common)
    print(f"wrote {path}")


def cmd_merge(args) -> None:
    from sciops.datasets.merge import merge

    print(f"wrote {merge(args.index, args.output, overwrite=args.overwrite, force=args.force, progress=None if not args.quiet else False)}")


def cmd_info(args) -> None:
    from sciops.datasets import describe

    print(describe(args.file))


def cmd_import(args) -> None:
    from sciops.datasets.importing import import_file, parse_grid

    result = import_file(args.file, args.output, format=args.format, input_key=args.input_key,
                         output_key=args.output_key, subsample=args.subsample,
                         grid=parse_grid(args.grid) if args.grid else None, geometry=args.geometry,
                         as_problem=args.as_problem, params=_key_values(args.param, "--param") or None,
                         force=args.force, resume=args.resume, overwrite=args.overwrite, batch=args.batch_size,
                         progress=None if not args.quiet else False)
    print(result.message)


def cmd_export(args) -> None:
    """A run directory: its model (``--format``, :mod:`sciops.workflows.export`); a dataset: netCDF."""
    source = Path(args.file)
    if source.is_dir():
        from sciops.runs import storage
        from sciops.workflows.export import export_run

        if not (source / storage.CONFIG).exists():
            raise ValueError(f"{source} is a folder but not a sciops run (no {storage.CONFIG}); "
                             f"export takes a run directory or a dataset file")
        print(export_run(source, args.output, args.format or "exported-program", overwrite=args.overwrite))
        return
    if args.format is not None:
        raise ValueError(f"--format applies to a run directory's model; {source} is exported as netCDF")
    from sciops.datasets.netcdf import export_netcdf

    print(f"wrote {export_netcdf(args.file, args.output, overwrite=args.overwrite)}")


def cmd_train(args) -> int | None:
    from sciops.workflows.training import settings, train_run

    hparams = {k: _json_value(v) for k, v in _key_values(args.set, "--set").items()}
    options = {option: getattr(args, option) for option in ("epochs", "loss", "batch_size", "lr", "seed", "device",
                                                            "n_train")}
    kind, hparams, config = settings(args.operator, args.data, args.config, hparams, options)
    code, line = train_run(args.operator, args.data, args.output, kind=kind, hparams=hparams, config=config,
                           resume=args.resume, force=args.force, quiet=args.quiet, nproc=args.nproc, argv=args.argv)
    if line:
        print(line)
    return code


def cmd_evaluate(args) -> None:
    from sciops.workflows.evaluation import evaluate_run

    print(evaluate_run(args.run_dir, data=args.data, fresh=args.fresh, tol=args.tol, report_path=args.report,
                       plot=args.plot, device=args.device, ladder=not args.no_ladder, steps=args.steps))


def cmd_calibrate(args) -> None:
    from sciops.workflows.calibrate import calibrate_run

    print(calibrate_run(args.run_dir, n_val=args.n_val, data=args.data, estimator=args.estimator))


def cmd_finetune(args) -> None:
    from sciops.workflows.finetune import finetune_run

    print(finetune_run(args.run_dir, args.output, inputs=args.inputs, samples=args.samples, data=args.data,
                       iterations=args.iterations, batch_size=args.batch_size, device=args.device, quiet=args.quiet))


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _residual_std(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--residual-std must be a number or auto, got {text!r}") from None


def cmd_invert(args) -> None:
    from sciops.workflows.inverse_io import invert_files

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    noise = dict(noise_std=args.noise_std) if args.noise_std is not None else dict(snr_db=args.snr_db)
    print(invert_files(args.run_dir, args.obs, args.output, plot=args.plot, device=args.device, **noise,
                       n_samples=args.samples, n_chains=args.chains, steps=args.steps, resolution=args.resolution,
                       prior=args.prior, residual_std=_residual_std(args.residual_std), model_error=args.model_error,
                       seed=args.seed, sampler=args.sampler, pcn_steps=args.pcn_steps, calibration=args.calibration,
                       calibration_size=args.calibration_size))


def cmd_demo(args) -> None:
    from sciops.workflows.demo import run_demo

    run_demo(Path(args.output), quick=args.quick, progress=None if not args.quiet else False)


def _train_help() -> str:
    """The operators, their hyperparameters and the training settings of each kind (imports torch,
    so only `sciops train --help` pays for it)."""
    import dataclasses

    from sciops import kinds

    ops = "\n".join(f"  {name}: " + ", ".join(f"{k}={v!r}" for k, v in
                                              kinds.of_operator(name).hyperparameters(name).items())
                    for name in kinds.operator_names())
    settings = "\n".join(f"  {kind.DESCRIPTION} ({', '.join(kind.operator_names())}): "
                         + ", ".join(f.name for f in dataclasses.fields(kind.Config))
                         for kind in map(kinds.get, kinds.KINDS))
    return (f"operators and their hyperparameters (set with --set or [operator] in --config):\n{ops}\n"
            f"training settings ([training] in --config) by the kind of data:\n{settings}")


class _TrainParser(_Parser):
    def format_help(self):
        self.epilog = self.epilog or _train_help()
        return super().format_help()


# --- parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from sciops.version import __version__

    parser = _Parser(prog="sciops", description="Reference PDE solvers, HDF5 datasets and neural operators "
                     "checked against their solvers.")
    parser.add_argument("--version", action="version", version=f"sciops {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    p = sub.add_parser("problems", help="list problems and their parameters")
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser("generate", help="generate an HDF5 dataset with a reference solver")
    p.add_argument("problem", help="problem name (see `sciops problems`)")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="output HDF5 file")
    p.add_argument("--seed", type=int, default=0, help="base seed; sample i depends only on (seed, i)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="problem parameter (repeatable)")
    p.add_argument("--batch-size", type=int, default=None, help="samples solved and written per batch")
    p.add_argument("--resume", action="store_true", help="continue an interrupted generation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    dist = p.add_mutually_exclusive_group()
    dist.add_argument("--workers", type=int, help="run on a local Dask cluster of W single-threaded processes; "
                      "writes OUTPUT.shards/ and a virtual-dataset index OUTPUT")
    dist.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("--shard-size", type=int, help="samples per shard with --workers/--scheduler "
                   "(default max(32, ceil(N/256)))")
    p.add_argument("--dry-run", action="store_true", help="print the memory and disk estimates, solve nothing")
    p.add_argument("--force", action="store_true", help="run even where the estimates exceed the free memory or disk")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("merge", help="write a sharded dataset as one contiguous file")
    p.add_argument("index", help="index file written by generate --workers/--scheduler")
    p.add_argument("-o", "--output", required=True, help="output HDF5 file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--force", action="store_true", help="run even where the size estimate exceeds the free disk")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("info", help="describe a dataset file")
    p.add_argument("file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("import", help="import another project's dataset (FNO .mat, neuraloperator .pt, PDEBench, "
                       "The Well, .npz) as a sciops dataset")
    p.add_argument("file", help="the file to import; its format is detected from its content")
    p.add_argument("-o", "--output", required=True, help="output HDF5 file")
    p.add_argument("--format", help="mat, pt, pdebench, the-well or npz (default: detected)")
    p.add_argument("--input-key", help="the source's input array (default: the format's usual names)")
    p.add_argument("--output-key", help="the source's output array")
    p.add_argument("--subsample", type=_positive_int, default=1, help="keep every S-th grid point")
    p.add_argument("--grid", help="coordinates where the file has none: x=0:1,y=0:1 (or 0:1 for every axis)")
    p.add_argument("--geometry", help="bounded or periodic (default: the format's, else bounded)")
    p.add_argument("--as", dest="as_problem", metavar="PROBLEM", help="the sciops problem the data solve (e.g. darcy): "
                   "checked on a few samples with its solver, then evaluate --fresh and certification work")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a parameter of the --as problem (repeatable)")
    p.add_argument("--batch-size", type=_positive_int, help="samples read and written per batch")
    p.add_argument("--resume", action="store_true", help="continue an interrupted import")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--force", action="store_true", help="import even where the --as check or the size estimate fails")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="a dataset as CF netCDF-4 (FILE.h5 -o FILE.nc), or a run's model as a "
                       "file that runs without sciops (RUN -o model.pt2 [--format F])")
    p.add_argument("file", help="sciops dataset (HDF5) or grid run directory")
    p.add_argument("-o", "--output", required=True, help="output netCDF file, or model file")
    p.add_argument("--format", help="model format: exported-program (default, .pt2), torchscript (.pt) or onnx "
                   "(.onnx; dgno, mgno and unet only)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_export)

    sub._parser_class = _TrainParser  # its help lists the operators, built only when asked for
    p = sub.add_parser("train", help="train an operator on a dataset", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub._parser_class = _Parser
    p.add_argument("operator", help="operator name (listed below)")
    p.add_argument("--data", required=True, help="training dataset (HDF5)")
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.add_argument("--config", help="TOML file with [operator] and [training] tables")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="operator hyperparameter as JSON (repeatable): --set width=32 --set modes=[6,12,12]")
    p.add_argument("--epochs", type=int)
    p.add_argument("--loss", help="training loss: l2, l1, h1, h-1, h0.5, ... (default h1)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--n-train", type=int, help="train on the first N samples only")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--nproc", type=int, metavar="N", help="train on N processes of this machine with "
                   "DistributedDataParallel (runs torchrun; --batch-size stays the global batch)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="train even where the memory estimate exceeds what is free")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="compare a trained operator with its reference solver")
    p.add_argument("run_dir")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--data", help="evaluate on a stored dataset")
    group.add_argument("--fresh", type=int, help="evaluate on N freshly sampled inputs (default 50)")
    p.add_argument("--plot", help="write a PNG figure of a typical sample, and beside it the surrogate on its "
                   "solver's accuracy-cost curve (<plot>-accuracy-cost.png)")
    p.add_argument("--no-ladder", action="store_true", help="errors only: leave out the solver ladder and the "
                   "equal-accuracy speedup")
    p.add_argument("--report", help="write the report (.md for markdown, else JSON)")
    p.add_argument("--device", help="device for the surrogate (default: CUDA if present)")
    p.add_argument("--tol", type=float, help="also certify the answers to this relative error (darcy): coverage and "
                   "effectivity of the guaranteed bound, the share the solver finishes, the certified time; "
                   "trajectory runs: run the hybrid rollout (solver records where the calibrated estimate exceeds it)")
    p.add_argument("--steps", type=_positive_int, help="with --tol on a trajectory run: roll out this many records "
                   "(default the training horizon; longer ones are checked against the solver run here)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="calibrate a trajectory run's per-record error estimator (for --tol rollouts)",
                       description="Run the surrogate on the run's validation trajectories, fit its error against the "
                                   "record residual or short-solve defect carried from record to record at the "
                                   "measured error amplification, and store the fit in the run "
                                   "(see sciops.grid.error_estimator).")
    p.add_argument("run_dir")
    p.add_argument("--n-val", type=_positive_int, help="validation trajectories (default: the run's n_val)")
    p.add_argument("--data", help="take them from the last rows of this file instead of the training file")
    p.add_argument("--estimator", choices=("auto", "defect", "residual"), default="auto",
                   help="auto (default): the one whose Spearman correlation with the validation errors is highest "
                   "(the defect within 0.01 of the other)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("invert", help="recover the coefficient from observations of u with a trained DGNO",
                       description="Posterior estimate of the Darcy coefficient a (mean and pointwise std) from "
                       "sparse noisy observations of u, with a trained DGNO run (see sciops.workflows.inverse).")
    p.add_argument("run_dir", help="run directory of a trained dgno")
    p.add_argument("--obs", required=True, help="observations: CSV with columns x,y,value, or HDF5 with datasets "
                   "points (M, 2) and values (M,) [and optional a_true (n, n), beta0 (latent,)]")
    p.add_argument("-o", "--output", required=True, help="output HDF5 (a_mean, a_std, a_map, u_mean, u_std, "
                   "band50/95 lo and hi, grid; the calibration coverage as attributes)")
    p.add_argument("--plot", help="write a PNG with true (if in the obs file) / mean / std of a")
    p.add_argument("--resolution", type=int, help="nodes per side of the output grid (default: training grid)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise-std", type=float, help="observation noise standard deviation")
    noise.add_argument("--snr-db", type=float, default=25.0, help="signal-to-noise ratio in dB (default 25)")
    p.add_argument("--samples", type=int, default=200, help="posterior draws (default 200)")
    p.add_argument("--chains", type=int, default=4, help="MAP starts, then sampler chains (default 4)")
    p.add_argument("--steps", type=int, default=100, help="optimisation steps per start (default 100)")
    p.add_argument("--sampler", choices=("pcn", "mixture", "laplace"), default="pcn",
                   help="latent posterior: preconditioned Crank-Nicolson chains (default), a Laplace mixture over "
                   "the MAP modes, or one Laplace approximation")
    p.add_argument("--pcn-steps", type=int, default=400, help="pCN steps per chain, half burn-in (default 400)")
    p.add_argument("--calibration", default="validation", help="held-out labelled problems that calibrate the "
                   "50 %% and 95 %% bands: validation (the run's validation samples, default), a labelled dataset "
                   "file, or none")
    p.add_argument("--calibration-size", type=int, default=8, help="calibration problems used (default 8)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice); the inversion's operations "
                   "are small: on a loaded 2-core machine 1 thread was 10x faster than 2")
    p.add_argument("--residual-std", default="0", help="noise level of the weak-form virtual observables: "
                   "a number (0, the default, leaves the physics term out) or auto (the model's own residual level)")
    p.add_argument("--model-error", type=float, help="relative L2 error of the model's u, added to the "
                   "observation noise (default: measured on the calibration problems, 0 without them)")
    p.add_argument("--prior", choices=("aggregate", "standard"), default="aggregate",
                   help="latent prior: Gaussian fit of the encoded training distribution (default) or N(0, I)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="device (default: CUDA if present)")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("finetune", help="Spectral-Refiner: fine-tune a space-time FNO on the PDE residual",
                       description="Freeze all but the last spectral layer of a trained fno3d / st-fno run, extend "
                                   "it to the full grid and minimise the H^-1 norm of the Navier-Stokes residual over "
                                   "the added modes, on unlabeled inputs (see sciops.workflows.refine).")
    p.add_argument("run_dir", help="run directory of a trained fno3d or st-fno")
    p.add_argument("-o", "--output", required=True, help="run directory for the refined operator")
    p.add_argument("--inputs", help="refine on the inputs of this dataset (labels unused), e.g. the inputs to "
                                    "predict next; default: fresh inputs drawn from the problem")
    p.add_argument("--samples", type=_positive_int, default=None,
                   help="unlabeled inputs drawn from the problem (default 64), or the first N of --inputs (default all)")
    p.add_argument("--iterations", type=_positive_int, default=30,
                   help="L-BFGS iterations, each a pass or more over all samples (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="samples per forward pass (memory; default 8)")
    p.add_argument("--data", help="reference dataset for the time-resolution check (default: the training file)")
    p.add_argument("--device", help="device (default: CUDA if present)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("demo", help="generate, train, evaluate and report on the default Darcy problem")
    p.add_argument("-o", "--output", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--quick", action="store_true", help="a smaller run that finishes in seconds (for smoke tests)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo)
    return parser


def _check_outputs(args) -> None:
    """Before any work, the verb's output paths: a run must not end on an unwritable path."""
    for option in OUTPUT_OPTIONS:
        if getattr(args, option, None):
            from sciops.datasets.resources import check_writable

            target = Path(getattr(args, option))
            folder_expected = option == "output" and args.verb in ("train", "finetune")
            if target.is_dir() and not folder_expected and args.verb in ("evaluate", "invert"):
                raise IsADirectoryError(f"--{option} {target} is a directory; expected a file name")
            if folder_expected and target.exists() and not target.is_dir():
                raise NotADirectoryError(f"-o {target} is a file; expected a run directory")
            check_writable(target, f"--{option}")


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return 2
        args.argv = list(sys.argv[1:] if argv is None else argv)
        _check_outputs(args)
        return args.func(args) or 0
    except UsageError as exc:
        print(f"{exc}\n(run with --help for usage)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `sciops problems | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except (*USER_ERRORS, OSError, RuntimeError) as exc:
        from sciops.datasets.resources import WriteError, error_number

        environment = isinstance(exc, WriteError) or (not isinstance(exc, USER_ERRORS) and
                                                      error_number(exc) in ENVIRONMENT_ERRNOS)
        if not environment and not isinstance(exc, USER_ERRORS):
            raise  # an internal failure: exit 1 with the traceback
        code = 1 if environment else 2
        if getattr(exc, "rank0_copy", False):  # a training rank's copy of rank 0's error, printed there
            return code
        if environment and not isinstance(exc, WriteError):  # e.g. torch.save's RuntimeError on a full disk
            exc = WriteError(getattr(exc, "filename", None) or "output", exc)
        print(f"sciops: error: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("sciops: interrupted (rerun with --resume to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
