"""The LM head and the loss, a chunk of rows at a time (appendix C).

A training step's loss holds three fp32 (B·T, vocab) tensors at once: the logits, the
log-softmax saved for the backward pass, and the gradient of the logits. For GPT-2 small
at batch 8 × 1024 that is half of the step's memory. `chunked_cross_entropy` computes
the same loss and gradients `chunk_size` rows at a time, so that the largest tensor is
(chunk_size, vocab); `measure_peak_memory` shows the difference, on a CPU too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .checks import positive_int
from .device import profiler_quietly


def _check(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> None:
    """Clear errors for shapes and dtypes that do not go together."""
    if hidden.dim() not in (2, 3) or hidden.shape[:-1].numel() == 0:
        raise ValueError(
            f"hidden must have shape (B, T, d) or (N, d) with at least one row, got "
            f"{tuple(hidden.shape)}: pass model(inputs, head=False)."
        )
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"weight must have shape (vocab, d) with d = hidden's last size "
            f"({hidden.shape[-1]}), got {tuple(weight.shape)}: pass the head's weight."
        )
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(
            f"targets must have shape {tuple(hidden.shape[:-1])}, one per row of "
            f"hidden, got {tuple(targets.shape)}."
        )
    if targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"targets must hold token ids (long), got {targets.dtype}.")
    autocasting = torch.is_autocast_enabled(hidden.device.type)
    if hidden.dtype != weight.dtype and not autocasting:
        raise TypeError(
            f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must have one dtype "
            "outside autocast: cast one, or run under torch.autocast."
        )


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Loss and both gradients in the forward pass; the backward only scales them.

    Why not torch.utils.checkpoint per chunk: it would compute every chunk's logits
    twice, in the forward and again in the backward (a third more LM-head FLOPs). This
    computes them once, and keeps only the two gradients, (N, d) and (vocab, d).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,  # (N, d)
        weight: torch.Tensor,  # (vocab, d)
        targets: torch.Tensor,  # (N,)
        chunk_size: int,
        grads: tuple[bool, bool],  # whether hidden, weight need a gradient
    ) -> torch.Tensor:
        device = hidden.device.type
        # Under autocast the matmuls run in its dtype, as the plain LM head's would; the
        # inputs are cast once here, not once a chunk, and the softmax stays in fp32.
        dtype = hidden.dtype
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
        h, w = hidden.to(dtype), weight.to(dtype)
        n = hidden.shape[0]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if grads[0] else None
        fp32 = torch.float32
        grad_weight = torch.zeros_like(weight, dtype=fp32) if grads[1] else None
        with torch.autocast(device, enabled=False):
            for start in range(0, n, chunk_size):
                rows = slice(start, start + chunk_size)
                logits = (h[rows] @ w.T).float()  # (c, vocab): the largest tensor here
                target = targets[rows].unsqueeze(1)
                picked = logits.gather(1, target)  # (c, 1): the targets' logits
                # log-sum-exp and softmax in place (torch.logsumexp would allocate two
                # more (c, vocab) tensors): x − max, exp, sum, then divide by the sum.
                top = logits.amax(dim=1, keepdim=True)
                exp = logits.sub_(top).exp_()
                sums = exp.sum(dim=1, keepdim=True)
                total += (top + sums.log() - picked).sum()
                if grad_hidden is None and grad_weight is None:
                    continue
                # softmax − one-hot, in place. Not yet divided by N: in fp16, (p − 1)/N
                # and p/N would underflow to 0; the fp32 results are divided instead.
                g = exp.div_(sums)
                g.scatter_add_(1, target, torch.full_like(picked, -1))
                g = g.to(dtype)
                if grad_hidden is not None:
                    grad_hidden[rows] = (g @ w).float().div_(n)
                if grad_weight is None:
                    continue
                if g.dtype == fp32:  # added in place: no second (vocab, d) tensor
                    grad_weight.addmm_(g.T, h[rows], alpha=1 / n)
                else:
                    grad_weight += (g.T @ h[rows]).float().div_(n)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total / n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        # grad_output is 1, or the gradient scaler's scale: the saved gradients times
        # it, in place, so that no second (vocab, d) tensor is made. Hence one backward
        # per graph.
        if getattr(ctx, "scaled", False):
            raise RuntimeError(
                "chunked_cross_entropy's backward ran twice on one graph "
                "(retain_graph=True): its saved gradients are scaled in place. "
                "Compute the loss again instead."
            )
        ctx.scaled = True
        scaled = [
            None if g is None else g.mul_(grad_output.to(g.dtype))
            for g in ctx.saved_tensors
        ]
        return scaled[0], scaled[1], None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """`cross_entropy_loss(hidden @ weight.T, targets)`, `chunk_size` rows at a time.

    Defined in appendix C. `hidden` (B, T, d) or (N, d), `weight` (vocab, d), `targets`
    (B, T) or (N,). The loss and its gradients for `hidden` and `weight` are those of
    the plain loss (to rounding), but no (N, vocab) tensor is ever made: the largest is
    (chunk_size, vocab). Under autocast the matmuls run in its dtype, softmax in fp32.
    """
    chunk_size = positive_int("chunk_size", chunk_size)
    _check(hidden, weight, targets)
    d = hidden.shape[-1]
    on = torch.is_grad_enabled()
    grads = (on and hidden.requires_grad, on and weight.requires_grad)
    return _ChunkedCrossEntropy.apply(
        hidden.reshape(-1, d), weight, targets.reshape(-1), chunk_size, grads
    )


def chunked_model_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """A GPT's mean loss on (inputs, targets), its head run by `chunked_cross_entropy`.

    Defined in appendix C: ``model(inputs, head=False)`` gives the final-normed hidden
    states, and ``model.out_head.weight`` (the tied token embedding) is the head.
    """
    head = getattr(model, "out_head", None)
    if not isinstance(head, nn.Linear):
        raise TypeError(
            f"chunked_model_loss needs a GPT (a model with an out_head, whose forward "
            f"takes head=False); got a {type(model).__name__}."
        )
    hidden = model(inputs, head=False)  # (B, T, d)
    return chunked_cross_entropy(hidden, head.weight, targets, chunk_size)


def measure_peak_memory(fn: Callable[[], Any], device: torch.device | str) -> int:
    """Peak bytes of tensors allocated while ``fn()`` runs, above those already there.

    Defined in appendix C. On a CUDA GPU, `torch.cuda.max_memory_allocated`; on a CPU,
    which keeps no such counter, the running sum of the allocations and frees the
    profiler records (``profile_memory=True``), at its highest.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    activities = [torch.profiler.ProfilerActivity.CPU]
    with profiler_quietly(activities=activities, profile_memory=True) as prof:
        fn()
    # Each "[memory]" record is one allocation (+bytes) or free (−bytes), in time order.
    # kineto_results is the profiler's raw record: its public tables sum per operator.
    records = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type().name == "CPU"
    ]
    peak = live = 0
    for _, nbytes in sorted(records):
        live += nbytes
        peak = max(peak, live)
    return peak
