"""How much memory a training step needs, and the largest batch that fits (chapter 10).

A step holds the weights, their gradients and AdamW's two moments (4 + 4 + 8 bytes per
parameter in fp32), the activations autograd saves for the backward pass, and, when the
backward starts, the logits and their gradient. `estimate_memory` adds these up from the
shapes; `measure_saved_activations` checks the activations on any device;
`find_max_batch_size` tries real steps on a GPU, or bisects on the estimate elsewhere.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .checks import one_of, optional_positive_int, positive_int
from .config import GPTConfig
from .device import autocast, autocast_dtype
from .flops import batch_shape, model_config, num_parameters
from .timing import make_train_step, synchronize
from .train import cross_entropy_loss

ATTENTION_KINDS = ("sdpa", "manual")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, part by part (an estimate: see `estimate_memory`); chapter 10."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # the tensors autograd saves for the backward pass
    logits: int  # the logits and their gradient, alive together when the backward starts

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    def to_dict(self) -> dict[str, int]:
        """The five parts and their total, in bytes."""
        return {**dataclasses.asdict(self), "total": self.total}


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def estimate_memory(
    config: GPTConfig | Mapping[str, Any] | str,
    batch_size: int,
    seq_len: int | None = None,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
    device_type: str = "cuda",
    training: bool = True,
) -> MemoryEstimate:
    """The memory of one training step: weights + gradients + AdamW state + activations.

    Defined in chapter 10. Weights, gradients and AdamW's two moments are fp32: 4 + 4 + 8
    bytes per parameter. Activations are what autograd saves for the backward pass, counted
    from our model's code (a test checks the count against the tensors really saved, on
    CPU): per layer, 16 tensors of B·T·d (the layer norms' inputs and outputs, Q, K, V, the
    attention output, the feed-forward's 4d-wide input and output of GELU), plus the (T×T)
    attention weights with ``attention="manual"`` (B·h·T² numbers; SDPA keeps only a B·h·T
    log-sum-exp). Under autocast (``dtype`` fp16/bf16) the matmuls' inputs are kept in half
    precision, beside half-precision copies of the weights; the residual stream stays fp32;
    on a GPU the softmax runs (and is saved) in fp32. Then the logits: the log-softmax's
    fp32 output is saved, and when the backward starts the logits and their gradient are
    alive too.

    The CUDA caching allocator, cuBLAS workspaces and fragmentation add to this; compare
    with ``torch.cuda.max_memory_allocated()`` (`measure_training` reports both).
    """
    cfg = GPTConfig.coerce(config)
    b, t = batch_shape(cfg, batch_size, seq_len)
    one_of("attention", attention, ATTENTION_KINDS)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float16), got {dtype!r}.")
    d, h, v, layers = cfg.emb_dim, cfg.n_heads, cfg.vocab_size, cfg.n_layers
    params = num_parameters(cfg, "all")
    fp32 = 4
    half = _bytes(dtype)  # == 4 in fp32
    btd = b * t * d
    weights = fp32 * params
    if not training:
        return MemoryEstimate(weights, 0, 0, 0, b * t * v * half)
    per_layer = 2 * btd * fp32  # the residual stream entering each layer norm (fp32 always)
    per_layer += 14 * btd * half  # LN outputs, Q, K, V, attention output, FF 4d in and 4d out
    per_layer += 2 * 2 * b * t * fp32  # the layer norms' means and 1/std
    if attention == "manual":
        softmax_bytes = fp32 if (half != fp32 and device_type == "cuda") else 0  # CUDA autocast: softmax in fp32
        per_layer += b * h * t * t * (half + softmax_bytes)
    else:
        per_layer += b * h * t * fp32  # SDPA keeps only the softmax's log-sum-exp per row
    activations = layers * per_layer + 2 * btd * fp32 + 2 * b * t * fp32  # final layer norm
    activations += b * t * v * fp32  # the log-softmax output, saved by cross_entropy
    if half != fp32:
        activations += half * (layers * 12 * d * d + d * v)  # autocast's copies of the weight matrices
    logits = b * t * v * (half + fp32)  # the logits, and the gradient of the fp32 loss input
    return MemoryEstimate(weights, fp32 * params, 2 * fp32 * params, activations, logits)


def attention_of(model: torch.nn.Module) -> str:
    """The attention kind of a `GPT` ("sdpa" or "manual"), compiled or not (chapter 10)."""
    return getattr(model, "attention", "sdpa")  # a torch.compile'd module forwards the attribute


def measure_saved_activations(
    model: torch.nn.Module, batch_size: int, seq_len: int | None = None, dtype: torch.dtype | None = None
) -> int:
    """Bytes of the tensors autograd saves for backward in one forward + loss (each storage once).

    Defined in chapter 10. Measured with ``torch.autograd.graph.saved_tensors_hooks``, so
    it works on a CPU, where there is no ``max_memory_allocated``. Parameters are left out
    (they are counted as weights); autocast's half-precision weight copies are included.
    ``dtype`` defaults to the device's autocast dtype.
    """
    cfg = model_config(model)
    batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
    device = next(model.parameters()).device
    dtype = autocast_dtype(device) if dtype is None else dtype
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    idx = torch.zeros(batch_size, seq_len, dtype=torch.long, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, dtype):
        cross_entropy_loss(model(idx), idx)
    return sum(saved.values())


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def find_max_batch_size(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    seq_len: int | None = None,
    dtype: torch.dtype | None = None,
    memory_budget: int | None = None,
    max_batch_size: int = 4096,
) -> int:
    """The largest batch whose training step fits in memory (0 if not even 1 fits).

    Defined in chapter 10. On a GPU (and no ``memory_budget``): real training steps, batch
    1, 2, 4, ... until one runs out of memory, then a binary search between the last that
    fit and the first that did not; each out-of-memory error is caught and its memory
    freed. Elsewhere, or with a ``memory_budget`` in bytes: the largest batch whose
    `estimate_memory` fits the budget (default on a CPU: half the memory now available),
    found by the same search. Never more than ``max_batch_size``.
    """
    cfg = model_config(model, config)
    _, seq_len = batch_shape(cfg, 1, seq_len)
    max_batch_size = positive_int("max_batch_size", max_batch_size)
    memory_budget = optional_positive_int("memory_budget", memory_budget)
    device = next(model.parameters()).device
    dtype = autocast_dtype(device) if dtype is None else dtype

    if device.type == "cuda" and memory_budget is None:

        def fits(batch: int) -> bool:
            return _fits_on_gpu(model, batch, seq_len, dtype)

    else:
        budget = memory_budget if memory_budget is not None else _available_memory() // 2
        attention = attention_of(model)

        def fits(batch: int) -> bool:
            return estimate_memory(cfg, batch, seq_len, dtype, attention, device.type).total <= budget

    if not fits(1):
        return 0
    good, bad = 1, None
    while bad is None and good < max_batch_size:  # grow: 1, 2, 4, ...
        trial = min(2 * good, max_batch_size)
        if fits(trial):
            good = trial
        else:
            bad = trial
    while bad is not None and bad - good > 1:  # then halve the gap
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def _fits_on_gpu(model: torch.nn.Module, batch: int, seq_len: int, dtype: torch.dtype) -> bool:
    device = next(model.parameters()).device
    inputs = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
    step = None
    try:
        step = make_train_step(model, inputs, inputs, dtype)
        step()
        synchronize(device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        del inputs, step
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
