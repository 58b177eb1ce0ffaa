"""Data-parallel training on several processes: process group, each rank's share of a batch, rank-0 I/O.

Launch. ``torchrun --nproc-per-node N -m sciops train ...`` (several machines: add ``--nnodes``,
``--node-rank`` and ``--rdzv-endpoint``) starts N copies of the command; torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous address, and
:func:`context` reads them. ``sciops train --nproc N`` runs the same thing through torchrun's own
launcher (:func:`launch`). A process group that the caller already initialised is used as it is.

Devices and backends. The device is chosen once from the training config: on CUDA each rank takes
``cuda:LOCAL_RANK`` and the group uses NCCL; on CPU it uses gloo.

Batches. ``batch_size`` is the GLOBAL batch: every optimiser step consumes the same samples, in the
same epoch permutation, as a single-process run. Rank r takes the contiguous slice
``[m r / W, m (r + 1) / W)`` of each global batch of m samples (m = batch_size except for the last
one), so with W dividing batch_size every full batch splits into equal shares of batch_size / W.
DistributedDataParallel averages gradients over ranks; each rank scales its batch-mean loss by
``n_r W / m`` (1 for equal shares), so the averaged gradient is the gradient of the mean over the
whole global batch, also for an uneven last batch. A rank whose share of a last batch is empty
computes the loss of one placeholder sample with weight 0, since every rank must take part in the
gradient reduction. The loss curve therefore equals the single-process one to rounding (about 1e-6).
An operator's own ``training_loss`` runs inside the wrapped module too (:class:`Objective`), and
must be a mean over the batch plus batch-independent terms for that identity to hold; random draws
it makes per sample (DGNO's generative noise) are drawn on each rank from the same generator, so
such a run equals the single-process one in distribution, not to rounding.

Data. Each rank reads only its share of each batch. A file small enough that every local rank can
cache it (local ranks x size < ``AUTO_IN_MEMORY_BYTES``) is loaded whole by each rank, as in
single-process training; a larger one is read lazily, sample by sample, each rank its own share.
Validation is split the same way and the per-rank sums are added with an all-reduce.

Files. Only rank 0 computes normalisation statistics, reads ``config.json``/``state.pt`` on resume
(the others receive them by broadcast, so a node needs no shared run directory) and writes the run
directory; only rank 0 shows progress. An error raised in a rank-0-only step is re-raised on every
rank (:func:`on_main`), so a bad run directory stops the whole job with the same message.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

_OWN_GROUP = False  # whether setup() initialised the default process group (then shutdown() ends it)


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job: global rank and size, rank and size on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} must be an integer (set by torchrun)") from None


def context() -> Context:
    """This process's :class:`Context`, from an initialised process group or torchrun's variables."""
    local = Context(local_rank=_env_int("LOCAL_RANK", 0), local_world_size=_env_int("LOCAL_WORLD_SIZE", 1))
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), local.local_rank, local.local_world_size)
    world, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent; expected 0 <= RANK < WORLD_SIZE")
    if world == 1:
        return Context()
    return Context(rank, world, local.local_rank, max(local.local_world_size, 1))


def rank_device(ctx: Context, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when ``device`` is CUDA under several processes."""
    if not ctx.enabled or device.type != "cuda":
        return device
    if device.index is not None and ctx.local_world_size > 1:
        raise ValueError(f"device {device} names one GPU but {ctx.local_world_size} processes run on this node; "
                         "use --device cuda (rank r takes cuda:LOCAL_RANK)")
    index = ctx.local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {ctx.local_rank} needs cuda:{index} but this node has "
                         f"{torch.cuda.device_count()} CUDA devices; start at most that many processes per node")
    return torch.device("cuda", index)


def setup(ctx: Context, device: torch.device) -> None:
    """Initialise the default process group (NCCL on CUDA, gloo on CPU) unless it exists already."""
    global _OWN_GROUP
    if not ctx.enabled or dist.is_initialized():
        return
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ValueError(f"WORLD_SIZE={ctx.world_size} but {missing[0]} is not set: start the processes with "
                         "torchrun (or sciops train --nproc N)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world_size)
    _OWN_GROUP = True


def shutdown() -> None:
    """Destroy the process group if :func:`setup` created it."""
    global _OWN_GROUP
    if _OWN_GROUP and dist.is_initialized():
        # A finished trainer's DDP wrapper sits in reference cycles that still hold gloo work objects;
        # left to interpreter shutdown, their release aborts the process ("terminate called without
        # an active exception", about one two-rank job in four on 2 cores). Collect them while the
        # group and the interpreter are alive.
        gc.collect()
        dist.destroy_process_group()
    _OWN_GROUP = False


def check_world_size(batch_size: int, world_size: int, n_train: int) -> int:
    """The per-rank batch ``batch_size // world_size``; ValueError if the ranks cannot share the data."""
    if world_size < 1:
        raise ValueError(f"the number of processes must be >= 1, got {world_size}")
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} (the global batch) is not divisible by {world_size} processes; "
                         f"choose a batch size that is a multiple of {world_size}")
    if world_size > n_train:
        raise ValueError(f"{world_size} processes but only {n_train} training samples; "
                         f"use at most {n_train} processes")
    return batch_size // world_size


def share(indices: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's contiguous slice ``[m r / W, m (r + 1) / W)`` of ``indices`` (length m)."""
    m = len(indices)
    return indices[m * ctx.rank // ctx.world_size:m * (ctx.rank + 1) // ctx.world_size]


def open_rank_dataset(path: str | os.PathLike, ctx: Context):
    """Open ``path`` for this rank: cached in memory only if every local rank's copy fits the budget."""
    from sciops.datasets import open_dataset
    from sciops.datasets.reader import AUTO_IN_MEMORY_BYTES

    if ctx.local_world_size <= 1:
        return open_dataset(path)
    lazy = open_dataset(path, in_memory=False)
    nbytes = lazy.n_samples * sum(lazy.fields[n].sample_bytes for n in lazy.input_fields + lazy.output_fields)
    if nbytes * ctx.local_world_size >= AUTO_IN_MEMORY_BYTES:
        return lazy
    lazy.close()
    return open_dataset(path, in_memory=True)


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def on_main(ctx: Context, fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0, its result broadcast to every rank; an exception is raised on every rank."""
    if not ctx.enabled:
        return fn()
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except Exception as exc:  # re-raised below, here with its traceback and elsewhere as a copy
            error = exc
    sent = error
    if sent is not None:
        try:
            pickle.dumps(sent)
        except Exception:
            sent = RuntimeError(f"rank 0 failed: {type(error).__name__}: {error}")
    box = [(result, sent)]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    if error is not None:
        raise error
    result, sent = box[0]
    if sent is not None:
        sent.rank0_copy = True  # rank 0 reports it; the command line prints it once
        raise sent
    return result


def all_sum(ctx: Context, values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over ranks (float64)."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


class Objective(nn.Module):
    """The training loss of a batch as a module, so that DDP wraps the whole loss computation.

    DDP reduces the gradients of the parameters used in its module's forward; an operator's own
    ``training_loss`` (DGNO) does not go through ``model.forward``, so the wrapped unit is this.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, custom_loss: Callable | None, labels: bool, problem):
        super().__init__()
        self.model, self.loss_fn, self.custom_loss, self.labels, self.problem = model, loss_fn, custom_loss, labels, problem

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.custom_loss is None:
            return self.loss_fn(self.model(x), y)
        return self.custom_loss(x, y if self.labels else None, problem=self.problem)


def wrap(objective: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """``objective`` in DistributedDataParallel under several processes, else itself."""
    if not ctx.enabled:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    # a parameter used through a broadcast view (DGNO's decoder weights) gets a gradient laid out
    # unlike DDP's bucket: a copy per step, harmless, but torch warns about it on every rank
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # static_graph: the same parameters take part in every step, and those that never do
    # (e.g. DGNO terms with weight 0) are found once instead of failing the reduction
    return DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                   static_graph=True)


# --- launcher ----------------------------------------------------------------------------------------
def check_launch(operator: str, data: str | os.PathLike, cfg, nproc: int) -> None:
    """The checks a launcher makes before starting ``nproc`` ranks (operator, data file, batch split)."""
    from sciops.datasets import open_dataset
    from sciops.operators import hyperparameters

    hyperparameters(operator)
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    with open_dataset(data, in_memory=False) as ds:
        n_train, _ = cfg.split(ds.n_samples, Path(data))
    check_world_size(cfg.batch_size, nproc, n_train)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def launch(argv: list[str], nproc: int) -> int:
    """Run ``python -m sciops *argv`` on ``nproc`` local ranks with torchrun's launcher; the exit code.

    The launch configuration of ``torchrun --standalone --nproc-per-node nproc -m sciops *argv``
    (c10d rendezvous on a free local port, no restarts), given to torch's ``elastic_launch``
    directly so that no option of the sciops command is read as one of torchrun's. Without
    ``OMP_NUM_THREADS`` each rank gets (CPUs // nproc) threads. Returns 2 when every failed rank
    exited with 2 (bad input, already reported by the ranks), 1 for any other failure.
    """
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    omp = os.environ.get("OMP_NUM_THREADS")
    if omp is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, _cpus() // nproc))
    # the launcher leaves its own handlers on these (Ctrl-C would raise its SignalException in the caller)
    handled = [getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT") if hasattr(signal, name)]
    handlers = {sig: signal.getsignal(sig) for sig in handled}
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    # the ranks report their own errors; the agent's log line about a failed rank would repeat them
    agent_log = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "sciops", *argv)
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        if codes == [2]:
            return 2
        ranks = ", ".join(str(r) for r in sorted(exc.failures))
        print(f"sciops: error: rank {ranks} failed (exit code {', '.join(map(str, codes))})", file=sys.stderr)
        return 1
    finally:
        agent_log.setLevel(level)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                if handler is not None:  # None: a handler set outside Python, left as the launcher made it
                    signal.signal(sig, handler)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    return 0
