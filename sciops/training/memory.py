"""The memory a training run needs, estimated before its first step: :func:`training_memory`.

Parameters count four times (weights, gradients and AdamW's two moments). Activations are measured,
not guessed: one sample goes through the model while a ``saved_tensors_hooks`` adds up the storage
autograd keeps for the backward pass; a batch needs twice that per sample (the saved tensors and
the gradients flowing back), plus :data:`RUNTIME_BYTES` for the epoch's own buffers.
``scripts/bench_training_memory.py`` compares the estimate with the growth of a real epoch's peak
memory; it errs on the safe side (most for the FNO, whose spectral layers keep large complex
intermediates), since its job is to refuse runs that cannot fit before they start.
"""
from __future__ import annotations

import torch

from sciops.datasets.resources import ResourceError, available_memory, format_bytes

RUNTIME_BYTES = 128 * 2**20  # an epoch's buffers beyond parameters and activations (thread pools, allocator)


def _saved_bytes(model: torch.nn.Module, sample: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass of one forward on ``sample`` (parameters excluded,
    each storage counted once)."""
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

    training = model.training
    model.eval()  # and the random state kept: the estimate must not change the run it guards
    try:
        with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(sample)
    finally:
        model.train(training)
    total += out.numel() * out.element_size()
    del out
    return total


def training_memory(model: torch.nn.Module, sample: torch.Tensor) -> tuple[int, int]:
    """(fixed bytes, bytes per sample of a batch) to train ``model`` with AdamW; ``sample`` is one
    input (1, C, ...) on the model's device."""
    fixed = RUNTIME_BYTES + 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    return fixed, 2 * _saved_bytes(model, sample)


def available_on(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_memory()


def check_training_memory(model: torch.nn.Module, sample: torch.Tensor, batch_size: int, device, *,
                          what: str) -> None:
    """``ResourceError`` naming the estimate and the largest batch size that fits, when a batch of
    ``batch_size`` would not fit in the memory ``device`` has free."""
    have = available_on(torch.device(device))
    if have is None:
        return
    fixed, per_sample = training_memory(model, sample)
    need = fixed + batch_size * per_sample
    if need <= have:
        return
    fits = (have - fixed) // per_sample if per_sample else 0
    hint = f"the largest batch size that fits: {fits}" if fits >= 1 else "no batch size fits; use a smaller model"
    raise ResourceError(f"{what} needs about {format_bytes(need)} of memory at batch size {batch_size} "
                        f"({format_bytes(have)} available); {hint} (estimates; --force runs it anyway)")
