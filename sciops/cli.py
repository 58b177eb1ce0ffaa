"""The ``sciops`` command line: problems, generate, merge, info, train, evaluate, invert, demo.

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
MIN_REFINE_GAIN = 1e-3  # a fine-tuning that lowers the residual by less than this is reported as no gain
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


def _train_config(args, config_class):
    """Hyperparameters and the training settings (an instance of the operator kind's ``config_class``)."""
    import dataclasses

    from sciops.training import load_toml

    hparams, training = load_toml(args.config, config_class) if args.config else ({}, {})
    hparams.update({k: _json_value(v) for k, v in _key_values(args.set, "--set").items()})
    fields = sorted(f.name for f in dataclasses.fields(config_class))
    for option in ("epochs", "loss", "batch_size", "lr", "seed", "device", "n_train"):
        value = getattr(args, option)
        if value is not None:
            if option not in fields:
                raise ValueError(f"--{option.replace('_', '-')} does not apply to operator {args.operator}; "
                                 f"its training settings are {', '.join(fields)}")
            training[option] = value
    return hparams, config_class(**training)


def cmd_train(args) -> int | None:
    from sciops import kinds
    from sciops.training import distributed

    kind = kinds.for_training(args.operator, args.data)  # the operator takes this data's kind
    train = kind.get("train")
    hparams, config = _train_config(args, kind.get("config"))
    ranks = distributed.context()
    if args.nproc is not None and args.nproc != 1:
        if not kind.distributed:
            raise ValueError(f"operator {args.operator} trains in one process; leave out --nproc")
        if ranks.enabled:
            raise ValueError("--nproc starts torchrun itself; leave it out of a command that runs under torchrun")
        distributed.check_launch(args.operator, args.data, config, args.nproc)
        return distributed.launch([*args.argv, "--nproc", "1"], args.nproc)  # the last --nproc wins
    try:
        summary = train(args.operator, args.data, args.output, hparams=hparams, config=config, resume=args.resume,
                        progress=None if not args.quiet else False, force=args.force)
    finally:
        distributed.shutdown()
    if not ranks.is_main:
        return None
    best = summary["best_val"]
    print(f"trained {args.operator} into {args.output}: best epoch {summary['best_epoch']}/{summary['epochs']}, "
          + ", ".join(f"val {k} {v:.4g}" for k, v in best.items())
          + f", {summary['seconds_per_epoch']:.2f} s/epoch")


def cmd_evaluate(args) -> None:
    import sciops
    from sciops import kinds
    from sciops.evaluation import public

    kind = kinds.of_run(args.run_dir)  # grid fields or particle trajectories: its own evaluation
    markdown, summary_line = kind.get("markdown"), kind.get("summary_line")
    surrogate = sciops.load(args.run_dir, device=args.device)
    if "history" not in surrogate.config:  # written when training ends
        print(f"note: the training of {args.run_dir} has not finished (interrupted, or still running); its best "
              f"weights so far are evaluated", file=sys.stderr)
    fresh = None if args.data else (50 if args.fresh is None else args.fresh)
    if args.tol is not None and not getattr(surrogate.problem, "certified", False):
        from sciops.certified import certified_problems

        raise ValueError(f"--tol: problem {surrogate.problem.name} has no certified error bound; problems with one: "
                         f"{', '.join(certified_problems())}")
    extra = {"tol": args.tol} if args.tol is not None else {}
    report = kind.get("evaluate")(surrogate, fresh=fresh, data=args.data, **extra)
    if args.report:  # before the figure: the figures are the report's, a failed plot must not lose them
        from sciops.checkpoint import atomic_write

        text = markdown(report) if args.report.endswith(".md") else json.dumps(public(report), indent=2) + "\n"
        atomic_write(Path(args.report), lambda f: f.write(text.encode()))
    if args.plot:
        kind.get("plot")(report, args.plot)
    print(summary_line(report))


def cmd_finetune(args) -> None:
    import torch

    import sciops
    from sciops.datasets import open_dataset
    from sciops.evaluation import check_same_geometry, fresh_seed
    from sciops.refine import check_refinable, refine

    surrogate = sciops.load(args.run_dir, device=args.device)
    check_refinable(surrogate.config, args.run_dir)  # before any data is read or sampled
    data = Path(args.data or surrogate.config["data"]["path"])
    reference = None
    if args.data and not data.is_file():
        raise FileNotFoundError(f"--data {data} not found")
    if data.is_file():  # reference records for the time-resolution check
        dataset = open_dataset(data)
        check_same_geometry(dataset.problem, surrogate.problem, data)
        x, y = dataset.get_batch(list(range(min(4, dataset.n_samples))))
        start = x[:, 0] if x.dim() == y.dim() - 1 else x[:, 0, -1]
        reference = (start, y[:, 0])
    else:
        print(f"warning: {data} not found; the time-resolution check of the residual is skipped", file=sys.stderr)
    if args.inputs:  # the inputs of a dataset (e.g. those to predict next); its outputs are not used
        with open_dataset(args.inputs) as dataset:
            check_same_geometry(dataset.problem, surrogate.problem, args.inputs)
            count = dataset.n_samples if args.samples is None else min(args.samples, dataset.n_samples)
            inputs = dataset.get_inputs(list(range(count)))[:, 0]
    else:  # unlabeled inputs drawn from the problem, on seeds used neither in training nor by evaluate --fresh
        count = 64 if args.samples is None else args.samples
        seed = fresh_seed(surrogate.config, count) + 1
        inputs = torch.as_tensor(surrogate.problem.sample_inputs(count, seed))
    summary = refine(args.run_dir, args.output, inputs=inputs, reference=reference, iterations=args.iterations,
                     batch_size=args.batch_size, device=args.device, progress=None if not args.quiet else False)
    before, after = summary["relative_residual_before"], summary["relative_residual_after"]
    print(f"refined {args.run_dir} into {args.output}: relative H^-1 residual {before:.4g} -> {after:.4g} "
          f"in {summary['iterations']} iterations ({summary['seconds']:.1f} s)")
    if not after < (1 - MIN_REFINE_GAIN) * before:
        print(f"warning: fine-tuning lowered the residual by less than {MIN_REFINE_GAIN:.1%}; {args.output} predicts "
              f"as {args.run_dir} does. The refiner trains only the modes the run truncates, so it gains where those "
              f"carry error (fewer modes than the grid resolves, records fine in time); see sciops.refine",
              file=sys.stderr)


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
    import sciops
    from sciops.inverse import invert, plot_inversion, read_observations

    obs = read_observations(args.obs)
    surrogate = sciops.load(args.run_dir, device=args.device)
    noise = dict(noise_std=args.noise_std) if args.noise_std is not None else dict(snr_db=args.snr_db)
    result = invert(surrogate, obs["points"], obs["values"], **noise, n_samples=args.samples, n_chains=args.chains,
                    steps=args.steps, resolution=args.resolution, prior=args.prior, beta0=obs.get("beta0"),
                    residual_std=_residual_std(args.residual_std), model_error=args.model_error, seed=args.seed)
    a_true = obs.get("a_true")
    if a_true is not None and a_true.shape != result.a_mean.shape:
        a_true = None  # stored on another grid: not comparable pointwise
    result.save(args.output, a_true=a_true)
    if args.plot:
        plot_inversion(result, args.plot, a_true=a_true, points=obs["points"])
    line = (f"inverted {len(obs['values'])} observations into {args.output}: noise std {result.noise_std:.3g}, "
            f"mean a std {float(result.a_std.mean()):.3g}, {result.seconds:.1f} s")
    if a_true is not None:
        import numpy as np

        err = np.linalg.norm(result.a_mean - a_true) / np.linalg.norm(a_true)
        line += f", rel. L2 error of a {err:.3g}"
    print(line)


def cmd_demo(args) -> None:
    from sciops.demo import run_demo

    run_demo(Path(args.output), quick=args.quick, progress=None if not args.quiet else False)


# --- parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from sciops import __version__

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

    import dataclasses

    from sciops import kinds

    ops = "\n".join(f"  {name}: " + ", ".join(f"{k}={v!r}" for k, v in
                                              kinds.of_operator(name).get("hyperparameters")(name).items())
                    for name in kinds.operator_names())
    settings = "\n".join(f"  {kind.description} ({', '.join(kind.operator_names())}): "
                         + ", ".join(f.name for f in dataclasses.fields(kind.get("config")))
                         for kind in kinds.KINDS.values())
    p = sub.add_parser("train", help="train an operator on a dataset",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=f"operators and their hyperparameters (set with --set or [operator] in --config):\n{ops}\n"
                              f"training settings ([training] in --config) by the kind of data:\n{settings}")
    p.add_argument("operator", help="operator name: " + ", ".join(kinds.operator_names()))
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
    p.add_argument("--plot", help="write a PNG figure of a typical sample")
    p.add_argument("--report", help="write the report (.md for markdown, else JSON)")
    p.add_argument("--device", help="device for the surrogate (default: CUDA if present)")
    p.add_argument("--tol", type=float, help="also certify the answers to this relative error (darcy): coverage and "
                   "effectivity of the guaranteed bound, the share the solver finishes, the certified time")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("invert", help="recover the coefficient from observations of u with a trained DGNO",
                       description="Posterior estimate of the Darcy coefficient a (mean and pointwise std) from "
                       "sparse noisy observations of u, with a trained DGNO run (see sciops.inverse).")
    p.add_argument("run_dir", help="run directory of a trained dgno")
    p.add_argument("--obs", required=True, help="observations: CSV with columns x,y,value, or HDF5 with datasets "
                   "points (M, 2) and values (M,) [and optional a_true (n, n), beta0 (latent,)]")
    p.add_argument("-o", "--output", required=True, help="output HDF5 (a_mean, a_std, a_map, u_mean, u_std, grid)")
    p.add_argument("--plot", help="write a PNG with true (if in the obs file) / mean / std of a")
    p.add_argument("--resolution", type=int, help="nodes per side of the output grid (default: training grid)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise-std", type=float, help="observation noise standard deviation")
    noise.add_argument("--snr-db", type=float, default=25.0, help="signal-to-noise ratio in dB (default 25)")
    p.add_argument("--samples", type=int, default=200, help="posterior draws (default 200)")
    p.add_argument("--chains", type=int, default=4, help="MAP starts (default 4)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps per start (default 300)")
    p.add_argument("--residual-std", default="0", help="noise level of the weak-form virtual observables: "
                   "a number (0, the default, leaves the physics term out) or auto (the model's own residual level)")
    p.add_argument("--model-error", type=float, default=0.0, help="relative L2 error of the model's u (e.g. its "
                   "validation error), added to the observation noise so the posterior width accounts for it")
    p.add_argument("--prior", choices=("aggregate", "standard"), default="aggregate",
                   help="latent prior: Gaussian fit of the encoded training distribution (default) or N(0, I)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="device (default: CUDA if present)")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("finetune", help="Spectral-Refiner: fine-tune a space-time FNO on the PDE residual",
                       description="Freeze all but the last spectral layer of a trained fno3d / st-fno run, extend "
                                   "it to the full grid and minimise the H^-1 norm of the Navier-Stokes residual over "
                                   "the added modes, on unlabeled inputs (see sciops.refine).")
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


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return 2
        args.argv = list(sys.argv[1:] if argv is None else argv)
        from sciops.datasets.resources import check_writable

        for option in OUTPUT_OPTIONS:  # before any work: a run must not end on an unwritable path
            if getattr(args, option, None):
                target = Path(getattr(args, option))
                folder_expected = option == "output" and args.verb in ("train", "finetune")
                if target.is_dir() and not folder_expected and args.verb in ("evaluate", "invert"):
                    raise IsADirectoryError(f"--{option} {target} is a directory; expected a file name")
                if folder_expected and target.exists() and not target.is_dir():
                    raise NotADirectoryError(f"-o {target} is a file; expected a run directory")
                check_writable(target, f"--{option}")
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
