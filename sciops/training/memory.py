"""The memory a training run needs, estimated before its first step: :func:`training_memory`.

Parameters count four times (weights, gradients and AdamW's two moments). Activations are measured,
not guessed: the training loss of one and of two samples is computed while a ``saved_tensors_hooks``
adds up the storage autograd keeps for the backward pass; the difference is what each sample of a
batch adds, counted twice (the saved tensors and the gradients flowing back), the rest is shared,
and :data:`RUNTIME_BYTES` covers the epoch's own buffers.
``scripts/bench_training_memory.py`` compares the estimate with the growth of a real epoch's peak
memory. The estimate guards against runs that cannot fit; it is not an allocator's account.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from sciops.datasets.resources import ResourceError, available_memory, format_bytes

RUNTIME_BYTES = 128 * 2**20  # an epoch's buffers beyond parameters and activations (thread pools, allocator)


def _saved_bytes(model: torch.nn.Module, step: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd keeps for the backward pass of ``step()`` (parameters excluded, each storage
    counted once), plus its result."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    # the estimate must not change the run it guards: eval mode, the random state and buffers
    # (e.g. a step counter that seeds a loss's sampling) restored afterwards
    training, buffers = model.training, [b.clone() for b in model.buffers()]
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = step()
    finally:
        model.train(training)
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
    return total + out.numel() * out.element_size()


def training_memory(model: torch.nn.Module, step: Callable[[int], torch.Tensor]) -> tuple[int, int]:
    """(fixed bytes, bytes per sample of a batch) to train ``model`` with AdamW, where ``step(k)``
    computes the training loss of a batch of k samples. What the backward keeps is measured at one
    and two samples: the difference is the per-sample part, the rest is shared by the batch (a
    physics loss's quadrature tensors, for example)."""
    one, two = _saved_bytes(model, lambda: step(1)), _saved_bytes(model, lambda: step(2))
    per_sample = max(two - one, 0)
    fixed = RUNTIME_BYTES + 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    return fixed + 2 * (one - per_sample), 2 * per_sample


def available_on(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_memory()


def check_training_memory(model: torch.nn.Module, step: Callable[[int], torch.Tensor], batch_size: int, device, *,
                          what: str) -> None:
    """``ResourceError`` naming the estimate and the largest batch size that fits, when a batch of
    ``batch_size`` would not fit in the memory ``device`` has free (``step(k)``: a k-sample loss)."""
    have = available_on(torch.device(device))
    if have is None:
        return
    fixed, per_sample = training_memory(model, step)
    need = fixed + batch_size * per_sample
    if need <= have:
        return
    fits = (have - fixed) // per_sample if per_sample else 0
    hint = f"the largest batch size that fits: {fits}" if fits >= 1 else "no batch size fits; use a smaller model"
    raise ResourceError(f"{what} needs about {format_bytes(need)} of memory at batch size {batch_size} "
                        f"({format_bytes(have)} available); {hint} (estimates; --force runs it anyway)")
