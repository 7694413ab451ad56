"""Appendix C §2–3: what each op of our GPT costs, from shapes alone, and decode's bandwidth.

`op_costs` gives every op class its FLOPs and the least bytes it must move, so its
arithmetic intensity places it on the roofline; `predict_decode` bounds one decode step
by the slower of memory and compute, `measure_decode` times it, and the ratio of the
bytes it must move per second to the bandwidth is its MBU (model bandwidth utilisation).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from .checks import finite_number, non_negative_int, one_of, positive_int
from .config import GPTConfig
from .flops import ConfigLike, matmul_flops, num_parameters
from .kv_cache import KVCache
from .timing import time_calls

# FLOPs per element of the element-wise ops: a convention (a transcendental such as exp or
# tanh counts as one FLOP, as do a compare, an add and a multiply).
ELEMENTWISE_FLOPS: dict[str, int] = {
    "embedding": 1,  # token row + position row
    "layer_norm": 7,  # mean (1), subtract (1), square (1), variance (1), rsqrt·x (1), scale, shift
    "gelu": 8,  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): x³ (2), 2 mul, 2 add, tanh, 0.5·x·(...)
    "softmax": 5,  # max, subtract, exp, sum, divide (the mask and the 1/√hd scale fused in)
    "cross_entropy": 4,  # per logit: max, subtract, exp, sum (the log and the pick are per row)
}
ATTENTION = ("sdpa", "manual")


@dataclass(frozen=True)
class OpCost:
    """An op's FLOPs and the least bytes it must move: its inputs and weights read, its outputs written, once."""

    flops: int
    bytes: int

    @property
    def intensity(self) -> float:
        """FLOPs per byte: below peak ÷ bandwidth the op is memory-bound."""
        return self.flops / self.bytes if self.bytes else float("inf")

    def __add__(self, other: OpCost) -> OpCost:
        return OpCost(self.flops + other.flops, self.bytes + other.bytes)


def element_size(dtype: torch.dtype) -> int:
    """Bytes per number of `dtype`: 4 for float32, 2 for bfloat16/float16."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}.")
    return torch.empty((), dtype=dtype).element_size()


def matmul_cost(m: int, k: int, n: int, size: int, count: int = 1) -> OpCost:
    """`count` (m×k)·(k×n) products: 2·m·k·n FLOPs, (m·k + k·n + m·n)·size bytes each.

    The weights (k×n) are read at `size` too: under autocast they are read as the cast copy.
    """
    return OpCost(count * matmul_flops(m, k, n), count * (m * k + k * n + m * n) * size)


def _elementwise(kind: str, elements: int, size: int, training: bool) -> OpCost:
    # Forward: read each element and write it once (2 accesses). The backward reads the
    # input and the incoming gradient and writes the gradient (3 more) and does about
    # twice the forward's arithmetic. Layer norm's statistics (fp32) are per row: left out.
    accesses, passes = (5, 3) if training else (2, 1)
    return OpCost(passes * ELEMENTWISE_FLOPS[kind] * elements, accesses * elements * size)


def op_costs(
    config: ConfigLike,
    batch_size: int,
    new_tokens: int,
    past_tokens: int = 0,
    *,
    training: bool = False,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
) -> dict[str, OpCost]:
    """FLOPs and least bytes per op class, summed over all layers, for `new_tokens` per sequence.

    After `past_tokens` cached ones (prefill: 0; a decode step: ``new_tokens=1``). The
    matmuls' FLOPs are chapter 9's `count_flops` for a prefill or a training pass. With
    ``training=True``: forward + backward. A matmul's backward is two matmuls of the same
    shapes (dL/dx = dL/dy·Wᵀ, dL/dW = xᵀ·dL/dy), each moving as many bytes: 3× in all.
    """
    cfg = GPTConfig.coerce(config)
    b, t = positive_int("batch_size", batch_size), positive_int("new_tokens", new_tokens)
    past = non_negative_int("past_tokens", past_tokens)
    one_of("attention", attention, ATTENTION)
    if past + t > cfg.context_length:
        raise ValueError(
            f"past_tokens + new_tokens = {past + t} is more than the context length {cfg.context_length}: "
            "the model cannot read that many tokens. Use fewer, or a config with a longer context_length."
        )
    if training and past:
        raise ValueError("training=True: a training pass has no cached tokens; pass past_tokens=0.")
    size, passes = element_size(dtype), 3 if training else 1
    L, d, v, h, hd = cfg.n_layers, cfg.emb_dim, cfg.vocab_size, cfg.n_heads, cfg.head_dim
    n, keys = b * t, past + t  # tokens in this pass; keys each new token's query meets

    def mm(m: int, k: int, n_: int, count: int = 1) -> OpCost:
        return matmul_cost(m, k, n_, size, passes * count)

    costs = {
        "embedding": _elementwise("embedding", n * d, size, training) + OpCost(0, n * d * size),  # 2 rows read
        "layer_norm": _elementwise("layer_norm", (2 * L + 1) * n * d, size, training),
        "qkv": mm(n, d, 3 * d, L),
    }
    # Attention per head: scores (t×hd)·(hd×keys), then weights (t×keys)·(keys×hd).
    scores = mm(t, hd, keys, L * b * h)
    values = mm(t, keys, hd, L * b * h)
    if attention == "sdpa":
        # One fused kernel: Q read, K and V read (the cached ones too), the output written;
        # the (t×keys) weights stay on chip.
        io = passes * L * (n * d + 2 * b * keys * d + n * d) * size
        costs["attn_kernel"] = OpCost(scores.flops + values.flops, io)
    else:
        # Explicit: the scores are written, read by the softmax and written again, read by @V.
        costs["attn_matmul"] = scores + values
        costs["softmax"] = _elementwise("softmax", L * b * h * t * keys, size, training)
    costs["out_proj"] = mm(n, d, d, L)
    costs["mlp"] = mm(n, d, 4 * d, L) + mm(n, 4 * d, d, L)
    costs["gelu"] = _elementwise("gelu", L * n * 4 * d, size, training)
    costs["lm_head"] = mm(n, d, v)
    if training:
        # Cross-entropy over (n × vocab) logits: read forward; read again, and the gradient
        # written, backward (3 accesses); its arithmetic ×3 like every op's.
        costs["loss"] = OpCost(3 * ELEMENTWISE_FLOPS["cross_entropy"] * n * v, 3 * n * v * size)
    return costs


def matmul_weight_count(config: ConfigLike) -> int:
    """Numbers in the weight matrices a token multiplies: 12·L·d² in the blocks + d·V (the head)."""
    return num_parameters(config, "matmul")


def decode_step_bytes(
    config: ConfigLike, batch_size: int, context: int, dtype: torch.dtype = torch.float32
) -> dict[str, int]:
    """The least bytes one decode step moves: one new token per sequence after `context` cached.

    ``weights``: every parameter read once (a position row per sequence; the tied
    embedding read once, as the head). ``kv_cache``: 2·L·B·context·d numbers read, the new
    2·L·B·d written. ``activations``: what the ops read and write besides (small).
    """
    cfg = GPTConfig.coerce(config)
    b, ctx = positive_int("batch_size", batch_size), positive_int("context", context)
    size, L, d = element_size(dtype), cfg.n_layers, cfg.emb_dim
    costs = op_costs(cfg, b, 1, ctx, dtype=dtype, attention="sdpa")
    weights = (num_parameters(cfg, "no_position") + b * d) * size
    kv_cache = 2 * L * b * (ctx + 1) * d * size
    # op_costs counts the matmuls' weights, the kernel's K and V and the embedding's rows in
    # its bytes: the rest is activations. (Biases and norms' parameters: in `weights` only.)
    counted = (matmul_weight_count(cfg) + 2 * b * d) * size + kv_cache
    activations = sum(c.bytes for c in costs.values()) - counted
    return {"weights": weights, "kv_cache": kv_cache, "activations": activations}


@dataclass(frozen=True)
class DecodePrediction:
    """The roofline's bound for one decode step: the slower of moving its bytes and doing its FLOPs."""

    batch_size: int
    context: int
    bytes: int
    flops: int
    memory_seconds: float  # bytes / bandwidth
    compute_seconds: float  # flops / peak

    @property
    def seconds(self) -> float:
        return max(self.memory_seconds, self.compute_seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size / self.seconds

    @property
    def bound(self) -> str:
        """"memory" or "compute": which limit sets the step's time."""
        return "memory" if self.memory_seconds >= self.compute_seconds else "compute"


def predict_decode(
    config: ConfigLike,
    batch_size: int,
    context: int,
    bandwidth: float,
    peak: float,
    dtype: torch.dtype = torch.float32,
) -> DecodePrediction:
    """One decode step's predicted time at `bandwidth` (bytes/s) and `peak` (FLOP/s).

    Its bytes are `decode_step_bytes`; its FLOPs `op_costs` of one new token after
    `context` (matmuls dominate).
    """
    bandwidth = finite_number("bandwidth (bytes/s, e.g. measure_bandwidth())", bandwidth, strictly_above=0.0)
    peak = finite_number("peak (FLOP/s, e.g. measure_peak_flops())", peak, strictly_above=0.0)
    n_bytes = sum(decode_step_bytes(config, batch_size, context, dtype).values())
    flops = sum(c.flops for c in op_costs(config, batch_size, 1, context, dtype=dtype).values())
    return DecodePrediction(batch_size, context, n_bytes, flops, n_bytes / bandwidth, flops / peak)


def largest_memory_bound_batch(
    config: ConfigLike,
    context: int,
    bandwidth: float,
    peak: float,
    dtype: torch.dtype = torch.float32,
    cap: int = 2**16,
) -> int:
    """The largest batch whose predicted decode step is memory-bound (0 if none; `cap` at most).

    Compute time grows with the batch faster than memory time (the weights are read once
    for all sequences), so there is one switch point: found by doubling, then bisecting.
    """
    cap = positive_int("cap", cap)

    def memory_bound(b: int) -> bool:
        return predict_decode(config, b, context, bandwidth, peak, dtype).bound == "memory"

    if not memory_bound(1):
        return 0
    low = 1  # memory-bound
    while low < cap and memory_bound(min(2 * low, cap)):
        low = min(2 * low, cap)
    if low == cap:
        return cap
    high = min(2 * low, cap)  # compute-bound
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if memory_bound(mid) else (low, mid)
    return low


@dataclass(frozen=True)
class DecodeMeasurement:
    """Measured decode steps of `batch_size` sequences after `context` cached tokens, and their bytes."""

    batch_size: int
    context: int
    step_seconds: tuple[float, ...]
    bytes: int  # decode_step_bytes: the least the step must move

    @property
    def seconds(self) -> float:
        """The median step."""
        return statistics.median(self.step_seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size / self.seconds

    @property
    def achieved_bandwidth(self) -> float:
        """Bytes per second the step had to move, at its measured speed."""
        return self.bytes / self.seconds

    def mbu(self, bandwidth: float) -> float:
        """Model bandwidth utilisation: the achieved bandwidth over the device's (bytes/s)."""
        bandwidth = finite_number("bandwidth (bytes/s, e.g. measure_bandwidth())", bandwidth, strictly_above=0.0)
        return self.achieved_bandwidth / bandwidth


def filled_cache(
    config: GPTConfig,
    batch_size: int,
    context: int,
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None = None,
) -> KVCache:
    """A `KVCache` holding `context` tokens of random keys and values, as a prefill would leave it.

    A decode step costs the same whatever the values; a real prefill would take minutes on
    a CPU at a large batch × context.
    """
    cache = KVCache(config.n_layers)
    shape = (batch_size, config.n_heads, context, config.head_dim)
    where = generator.device if generator is not None else device
    for layer in range(config.n_layers):
        for store in (cache.keys, cache.values):
            store[layer] = torch.randn(shape, generator=generator, device=where).to(device=device, dtype=dtype)
    return cache


def measure_decode(
    model: torch.nn.Module,
    batch_size: int,
    context: int,
    *,
    repeats: int = 5,
    warmup: int = 2,
    generator: torch.Generator | None = None,
) -> DecodeMeasurement:
    """Time one decode step of `model` (a GPT) after `context` cached tokens per sequence.

    Each call runs ``model(next_ids, cache=cache, last_only=True)`` in eval mode, without
    gradients, from the same `context` tokens (the cache is restored before every call),
    timed by `time_calls`. The cache holds random keys and values (`filled_cache`).
    """
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"model must be a GPT (with a GPTConfig as .config), got {type(model).__name__}.")
    b, ctx = positive_int("batch_size", batch_size), positive_int("context", context)
    if ctx + 1 > cfg.context_length:
        raise ValueError(
            f"context must be less than the model's context_length {cfg.context_length}, got {ctx}: "
            "the step adds one token after the cached ones. Pass a shorter context."
        )
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    cache = filled_cache(cfg, b, ctx, device, dtype, generator)
    keys, values = list(cache.keys), list(cache.values)
    ids_device = generator.device if generator is not None else device
    next_ids = torch.randint(cfg.vocab_size, (b, 1), generator=generator, device=ids_device).to(device)

    def step() -> None:
        # The step appends one token: put back the `context`-token tensors so each call
        # reads the same bytes (a list copy, no data copied).
        cache.keys, cache.values = list(keys), list(values)
        model(next_ids, cache=cache, last_only=True)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            times = time_calls(step, device, repeats=positive_int("repeats", repeats), warmup=warmup)
    finally:
        model.train(was_training)
        cache.keys, cache.values = keys, values
    n_bytes = sum(decode_step_bytes(cfg, b, ctx, dtype).values())
    return DecodeMeasurement(b, ctx, tuple(times), n_bytes)
