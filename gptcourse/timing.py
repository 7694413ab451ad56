"""Timing done right: warm-up, synchronize, several samples (chapter 10).

The first calls are slow (kernel selection, allocator growth, AdamW's state), the host
only *queues* GPU kernels, and one sample is noise: `time_calls` handles all three.
`make_train_step` is the step chapter 10 times; `compare` times models side by side in
rounds whose order rotates (`rotation`), `compare_calls` any calls so (chapter 8); and
`measure_matmuls`, `measure_peak_flops` (their fastest: the roof) and `measure_bandwidth`
measure what the device can reach (MFU on a CPU, the roofline).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .checks import non_negative_int, optional_positive_int, positive_int
from .chunked_loss import chunked_model_loss
from .device import autocast, get_device, needs_grad_scaler
from .peaks import tf32_enabled
from .train import cross_entropy_loss


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work: GPU kernels run asynchronously (chapter 10)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_calls(fn: Callable[[], Any], device: torch.device | str, repeats: int = 5, warmup: int = 2) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls.

    Defined in chapter 10. On a GPU each call is timed by CUDA events recorded around it
    (the host only queues the work; the events mark when the GPU ran it); elsewhere with
    ``time.perf_counter`` after synchronizing.
    """
    repeats, warmup = non_negative_int("repeats", repeats), non_negative_int("warmup", warmup)
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def make_train_step(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    dtype: torch.dtype,
    lr: float = 0.0,
    fused: bool | None = None,
    loss_chunk: int | None = None,
) -> Callable[[], None]:
    """One training step (forward, loss, backward, AdamW) as a function of no arguments.

    Defined in chapter 10. `model(inputs)` must return logits (B, T, vocab); other models
    are adapted in ``benchmarks/peers.py``. The loss is `cross_entropy_loss` under autocast
    in `dtype`, with a gradient scaler for fp16. ``lr=0``: the optimizer does all its work,
    the weights stay. ``fused=True``: AdamW in a few fused kernels (`fused_adamw_supported`);
    None: PyTorch's default ("foreach" on a GPU: one kernel per operation over all tensors).
    ``loss_chunk``: the head and loss `loss_chunk` rows at a time (`chunked_model_loss`).
    """
    loss_chunk = optional_positive_int("loss_chunk", loss_chunk)
    device = inputs.device
    if fused and not fused_adamw_supported(device):
        raise ValueError(
            f"fused=True: this PyTorch ({torch.__version__}) has no fused AdamW for {device.type} tensors; "
            "pass fused=None for its default implementation."
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=fused)
    scaler = torch.amp.GradScaler(device.type) if needs_grad_scaler(dtype) else None

    def step() -> None:
        with autocast(device, dtype):
            if loss_chunk is None:
                loss = cross_entropy_loss(model(inputs), targets)
            else:  # appendix C: no (B·T, vocab) tensor
                loss = chunked_model_loss(model, inputs, targets, loss_chunk)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    step.optimizer = optimizer  # type: ignore[attr-defined]
    return step


def fused_adamw_supported(device: torch.device | str) -> bool:
    """True where ``torch.optim.AdamW(..., fused=True)`` works: CUDA, and CPU since torch 2.4 (chapter 10)."""
    try:
        torch.optim.AdamW([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except RuntimeError:  # "`fused=True` requires all the params to be ... of supported devices"
        return False
    return True


# The square matmuls chapter 10 sweeps: its roofline's points, and the sizes whose fastest
# is the measured peak. Small sizes fit a CPU's caches and can be its fastest.
PEAK_SIZES = {"cuda": (256, 512, 1024, 2048, 4096, 8192), "cpu": (32, 64, 128, 256, 512, 1024)}

_MEASURED_MATMULS: dict[tuple[str, str, tuple[int, ...], bool], dict[int, float]] = {}


def measure_matmuls(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    sizes: Sequence[int] | None = None,
    repeats: int = 7,
    warmup: int = 2,
    refresh: bool = False,
) -> dict[int, float]:
    """FLOP/s of an (n×n)·(n×n) matmul for each n in `sizes`, the median of `repeats` calls.

    Defined in chapter 10. ``sizes`` defaults to `PEAK_SIZES` (the GPU's on a GPU, else
    the CPU's). Remembered per (device, dtype, sizes, TF32 setting), so that a notebook's
    roofline and its MFUs share one measurement; ``refresh=True`` measures again.
    """
    device = get_device() if device is None else torch.device(device)
    default = PEAK_SIZES["cuda" if device.type == "cuda" else "cpu"]
    sizes = tuple(positive_int("sizes", n) for n in (default if sizes is None else sizes))
    if not sizes:
        raise ValueError("sizes: give at least one matrix size n, e.g. sizes=(256, 1024).")
    repeats = positive_int("repeats", repeats)
    key = (str(device), str(dtype), sizes, dtype == torch.float32 and tf32_enabled())
    if key in _MEASURED_MATMULS and not refresh:
        return dict(_MEASURED_MATMULS[key])
    generator = torch.Generator(device="cpu").manual_seed(0)
    flops = {}
    for n in sizes:
        a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
        times = time_calls(lambda a=a, b=b: a @ b, device, repeats=repeats, warmup=warmup)
        flops[n] = 2 * n**3 / statistics.median(times)
    _MEASURED_MATMULS[key] = flops
    return dict(flops)


def measure_peak_flops(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    sizes: Sequence[int] | None = None,
    repeats: int = 7,
    warmup: int = 2,
    refresh: bool = False,
) -> float:
    """The achievable matmul FLOP/s, the roof: the fastest of `measure_matmuls` over `sizes`.

    Defined in chapter 10. The one definition of a device's measured peak, which MFU on a
    CPU (or an unlisted GPU) is taken against. Not one size: on a CPU a matrix that fits
    the caches can run twice as fast as a large one. Remembered like `measure_matmuls`.
    """
    return max(measure_matmuls(device, dtype, sizes, repeats, warmup, refresh).values())


def measure_bandwidth(device: torch.device | str | None = None, n_bytes: int = 256 * 2**20, repeats: int = 7) -> float:
    """Memory bandwidth in bytes/s: a copy of `n_bytes` reads and writes each byte once (chapter 10)."""
    device = get_device() if device is None else torch.device(device)
    n_bytes, repeats = positive_int("n_bytes", n_bytes), positive_int("repeats", repeats)
    src = torch.ones(max(1, n_bytes // 4), device=device)
    dst = torch.empty_like(src)
    times = time_calls(lambda: dst.copy_(src), device, repeats=repeats)
    return 2 * src.numel() * 4 / statistics.median(times)


@dataclass(frozen=True)
class Comparison:
    """Step times of models trained side by side by `compare` (chapter 10).

    ``step_times[name][r]`` holds the times of the steps of round r, in seconds;
    ``orders[r]`` the order the models ran in that round. The first model is the
    reference the ratios are taken against.
    """

    tokens_per_step: int
    step_times: Mapping[str, tuple[tuple[float, ...], ...]]
    orders: tuple[tuple[str, ...], ...]
    peak_memory: Mapping[str, int | None]  # torch.cuda.max_memory_allocated() of each model (GPU only)

    @property
    def reference(self) -> str:
        return next(iter(self.step_times))

    def all_step_times(self, name: str) -> list[float]:
        """Every timed step of one model, round after round."""
        return [t for times in self.step_times[name] for t in times]

    def tokens_per_second(self, name: str) -> float:
        """Tokens/s of one model at its median step time over all rounds."""
        return self.tokens_per_step / statistics.median(self.all_step_times(name))

    def ratios(self, name: str) -> list[float]:
        """The reference's speed ÷ `name`'s speed, one per round (> 1: the reference is faster)."""
        return [
            statistics.median(theirs) / statistics.median(ours)
            for ours, theirs in zip(self.step_times[self.reference], self.step_times[name], strict=True)
        ]

    def ratio(self, name: str) -> float:
        """The median of the per-round `ratios`."""
        return statistics.median(self.ratios(name))


def rotation(names: Sequence[str], round_index: int) -> tuple[str, ...]:
    """The order of round r: the candidates from the (r mod n)-th on, then the others.

    Defined in chapter 10: A B C, B C A, C A B, ... so that over n rounds each candidate
    runs in every place once, and none always first (or always after the same one).
    """
    k = non_negative_int("round_index", round_index) % max(1, len(names))
    return tuple(names[k:]) + tuple(names[:k])


def compare(
    models: Mapping[str, nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    rounds: int = 6,
    steps_per_round: int = 3,
    warmup: int = 3,
    dtype: torch.dtype = torch.float32,
) -> Comparison:
    """Time a training step of each model, in rounds whose order rotates; chapter 10.

    Why rounds: on a busy machine the model timed right after another can read a few
    percent slower; a ratio taken within a round compares measurements made moments apart.
    Each model runs the same `make_train_step` (lr=0, autocast in `dtype`) on the same
    batch, `warmup` steps untimed, then `steps_per_round` a round. Round r starts with model
    r mod n (A B C, B C A, ...): over a multiple of n rounds each takes every place equally
    often. The first model is the reference of `Comparison.ratios`.
    """
    if not models:
        raise ValueError("models: give at least one model to time, as {name: model}.")
    rounds, steps_per_round = positive_int("rounds", rounds), positive_int("steps_per_round", steps_per_round)
    warmup = non_negative_int("warmup", warmup)
    device = inputs.device
    names = list(models)
    steps = {name: make_train_step(model.train(), inputs, targets, dtype) for name, model in models.items()}
    times: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    peak_memory: dict[str, int | None] = dict.fromkeys(names)
    orders = []
    try:
        for name in names:
            time_calls(steps[name], device, repeats=0, warmup=warmup)
        for r in range(rounds):
            order = rotation(names, r)
            orders.append(order)
            for name in order:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times[name].append(tuple(time_calls(steps[name], device, repeats=steps_per_round, warmup=0)))
                if device.type == "cuda":
                    peak_memory[name] = max(peak_memory[name] or 0, torch.cuda.max_memory_allocated(device))
    finally:
        for model in models.values():
            model.zero_grad(set_to_none=True)
    return Comparison(inputs.numel(), {n: tuple(t) for n, t in times.items()}, tuple(orders), peak_memory)


def compare_calls(
    calls: Mapping[str, Callable[[], Any]],
    device: torch.device | str,
    rounds: int = 6,
    calls_per_round: int = 3,
    warmup: int = 1,
    tokens_per_call: int = 1,
) -> Comparison:
    """Time functions of no arguments side by side, in rotating rounds as `compare` does.

    Defined in chapter 8, for work that is not a training step: generating text, one
    decoding step. The first is the reference of `Comparison.ratios`; `tokens_per_call`
    is what `Comparison.tokens_per_second` counts (e.g. the tokens one call generates).
    """
    if not calls:
        raise ValueError("calls: give at least one function to time, as {name: fn}.")
    rounds, calls_per_round = positive_int("rounds", rounds), positive_int("calls_per_round", calls_per_round)
    warmup, tokens_per_call = non_negative_int("warmup", warmup), positive_int("tokens_per_call", tokens_per_call)
    names = list(calls)
    for name in names:
        time_calls(calls[name], device, repeats=0, warmup=warmup)
    orders = tuple(rotation(names, r) for r in range(rounds))
    times: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    for order in orders:
        for name in order:
            times[name].append(tuple(time_calls(calls[name], device, repeats=calls_per_round, warmup=0)))
    return Comparison(tokens_per_call, {n: tuple(t) for n, t in times.items()}, orders, dict.fromkeys(names))
