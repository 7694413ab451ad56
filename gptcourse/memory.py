"""How much memory a training step needs, estimated from the shapes (chapter 10).

`estimate_memory` adds up weights, gradients, AdamW's moments, saved activations and the
loss's (B, T, vocab) tensors; `measure_saved_activations` checks the activations on any
device; `attention_benchmark_memory` sizes chapter 4's attention timing. What fits where,
and the largest batch, are in `gptcourse.gpu_budget`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .checks import one_of, optional_positive_int, positive_int
from .config import ALIASES, PRESETS, GPTConfig
from .device import autocast, autocast_dtype
from .flops import FAMILIES, batch_shape, model_config, num_parameters
from .train import cross_entropy_loss

ATTENTION_KINDS = ("sdpa", "manual")
_GPT_NAMES = ", ".join(map(repr, [*PRESETS, *ALIASES]))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, part by part (an estimate: see `estimate_memory`); chapter 10."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # the tensors autograd saves for the backward pass
    logits: int  # the loss's (B, T, vocab) gradients, alive with the saved log-softmax when the backward starts

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    @property
    def model_state(self) -> int:
        """Weights, gradients and optimizer state: what each model keeps between its steps."""
        return self.weights + self.gradients + self.optimizer

    def to_dict(self) -> dict[str, int]:
        """The five parts and their total, in bytes."""
        return {**dataclasses.asdict(self), "total": self.total}


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _gpt_config(config: Any) -> GPTConfig:
    """`config` as a `GPTConfig`, or an error that names what it is and where its memory is found."""
    if isinstance(config, GPTConfig) or (isinstance(config, str) and config in (*PRESETS, *ALIASES)):
        return GPTConfig.coerce(config)
    # Another family's (appendix B's Llama, registered with gptcourse.flops when imported): its
    # layers save other tensors than a GPT's, which is all this counts.
    family = FAMILIES.get(type(config))
    for each in FAMILIES.values():
        if (isinstance(config, str) and config in each.presets) or (isinstance(config, Mapping) and each.mapping_key in config):
            family = each
    if family is not None:
        model = family.model_class.__name__
        what = f"config={config!r} is a {model} preset" if isinstance(config, str) else f"config is a {model}'s"
        raise ValueError(
            f"{what}, and estimate_memory estimates a GPT's: it counts the tensors our GPT saves for the backward "
            f"pass, layer by layer (chapter 10), and a {model} saves others. For a {model}, measure instead: "
            f"measure_saved_activations({model}(config), batch_size, seq_len) gives its activations on any device, "
            f"and its weights, gradients and AdamW state are 16 bytes a parameter (16 * {model}(config)."
            f"num_parameters()). GPT presets: {_GPT_NAMES}."
        )
    if isinstance(config, str):
        raise ValueError(
            f"config={config!r} is not a GPT preset: choose one of {_GPT_NAMES}, or pass a GPTConfig. estimate_memory "
            "estimates GPTs only; a Llama's memory (appendix B) is measured: measure_saved_activations(Llama(config), "
            "batch_size, seq_len)."
        )
    return GPTConfig.coerce(config)


def estimate_memory(
    config: GPTConfig | Mapping[str, Any] | str,
    batch_size: int,
    seq_len: int | None = None,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
    device_type: str = "cuda",
    training: bool = True,
    loss_chunk: int | None = None,
) -> MemoryEstimate:
    """The memory of one training step: weights + gradients + AdamW state + activations.

    Defined in chapter 10. Model state is fp32: 4 + 4 + 8 bytes per parameter. Activations,
    counted by hand from our code (a test checks them on CPU): 16d + 4 + h numbers per token
    and layer with SDPA; ``attention="manual"`` keeps the B·h·T² weights instead of the
    log-sum-exp. Under autocast the matmuls' inputs and weight copies are in ``dtype``; the
    residual stream stays fp32, on a GPU the softmax too. ``logits``: the loss's two fp32
    (B, T, vocab) gradients, alive beside the saved log-softmax as the backward starts (``loss_chunk``,
    appendix C: a chunk's). Allocator, cuBLAS and fragmentation add to this (`measure_training`). GPTs only.
    """
    cfg = _gpt_config(config)
    b, t = batch_shape(cfg, batch_size, seq_len)
    one_of("attention", attention, ATTENTION_KINDS)
    loss_chunk = optional_positive_int("loss_chunk", loss_chunk)
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
    if half != fp32:
        activations += half * (layers * 12 * d * d + d * v)  # autocast's copies of the weight matrices
    if loss_chunk is not None:  # appendix C: the loss saves the gradients of the head's input and weight
        activations += btd * fp32 + v * d * fp32
        rows = min(loss_chunk, b * t)
        # A chunk's fp32 logits, turned in place into its gradient (and its autocast copy); as the
        # backward starts, the saved gradient of the head's input times the loss's gradient (that
        # of the weight becomes the weights' gradient, counted in `gradients`). No (B, T, V) tensor.
        logits = rows * v * (fp32 + (half if half != fp32 else 0)) + btd * fp32
        return MemoryEstimate(weights, fp32 * params, 2 * fp32 * params, activations, logits)
    activations += b * t * v * fp32  # the log-softmax output, saved by cross_entropy
    # At the start of the backward, log-softmax's saved output and the gradients entering and
    # leaving its backward are three fp32 (B, T, V) tensors at once, in any precision (a live
    # count on the CPU checks it: tests/test_memory.py). Gradients of the weights are not alive
    # yet at that moment, so the sum below is a slight over-estimate there: a margin.
    logits = 2 * b * t * v * fp32
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


def attention_benchmark_memory(
    batch_size: int,
    n_heads: int,
    seq_len: int,
    emb_dim: int,
    dtype: torch.dtype = torch.float32,
    attention: str = "manual",
    training: bool = True,
) -> MemoryEstimate:
    """The memory of one multi-head attention layer's forward (and backward), as chapter 4 times it.

    Defined for chapter 4's timing, used in chapter 10. An upper bound, no optimizer: fp32
    weights (4·d² + 4·d) and gradients; seven (B, T, d) tensors (input, Q, K, V, heads'
    output, merged, projected) and their gradients, in ``dtype``; with ``"manual"``, three
    (B, h, T, T) matrices at once (masked and scaled scores, softmax; backward: the saved
    softmax and two gradients) and the (T, T) bool mask; with SDPA, an fp32 log-sum-exp a row.
    """
    b, h, t, d = (positive_int(n, v) for n, v in (("batch_size", batch_size), ("n_heads", n_heads), ("seq_len", seq_len), ("emb_dim", emb_dim)))
    one_of("attention", attention, ATTENTION_KINDS)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float32), got {dtype!r}.")
    if d % h:
        raise ValueError(f"emb_dim ({d}) must be divisible by n_heads ({h}): each head gets emb_dim // n_heads dimensions.")
    size, passes = _bytes(dtype), 2 if training else 1  # a gradient for every activation
    weights = 4 * (4 * d * d + 4 * d)  # W_query, W_key, W_value, out_proj, with biases, fp32
    activations = 7 * b * t * d * size * passes
    if attention == "manual":
        activations += 3 * b * h * t * t * size + t * t  # + the causal mask, one byte a position
    else:
        activations += b * h * t * 4
    return MemoryEstimate(weights, weights if training else 0, 0, activations, 0)
