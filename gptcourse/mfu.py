"""How fast a GPT trains, and how close that is to what the hardware can do (chapter 10).

Model FLOP Utilization (MFU, PaLM appendix B) = (FLOPs per training step / seconds per
step) / peak FLOP/s **for the precision in use**. The FLOPs are `gptcourse.flops`'s exact
count; the peak is the datasheet's (`gptcourse.peaks`) on a GPU, else the roof measured
here, the fastest square matmul (a CPU, a GPU the table does not know): `choose_peak`.
"""

from __future__ import annotations

import math
import numbers
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .checks import finite_number, non_negative_int, positive_int
from .config import GPTConfig
from .device import GIB, autocast_dtype, device_name
from .flops import batch_shape, count_flops, model_config
from .memory import attention_of, estimate_memory
from .peaks import datasheet_peak, matmul_precision
from .timing import make_train_step, measure_peak_flops, time_calls

MEASURED = "measured matmul"


def choose_peak(device_name: str, precision: str, measured: float | None, given: float | None = None) -> tuple[float, str]:
    """The denominator of MFU, and where it comes from: ``(FLOP/s, source)``. Chapter 10.

    In this order: the peak ``given`` (source "given"); the datasheet figure of a GPU in
    `gptcourse.peaks.PEAKS` for the `precision` the matmuls run in ("datasheet"); else the
    ``measured`` peak, the roof (`gptcourse.timing.measure_peak_flops`), labelled "measured
    matmul" on a CPU and "measured matmul (no datasheet figure for NAME)" on a GPU the
    table does not know, so that an RTX 4090 gets an MFU that says what it is taken against
    rather than an error.
    """
    if given is not None:
        return finite_number("peak", given, strictly_above=0), "given"
    datasheet = datasheet_peak(device_name, precision)
    if datasheet is not None:
        return datasheet, "datasheet"
    if measured is None:
        raise ValueError(
            f"measured: there is no datasheet peak for {device_name!r} in {precision}, and no measured one was given. "
            "Measure it (gptcourse.timing.measure_peak_flops) and pass it, or pass the peak you trust as given=... (FLOP/s)."
        )
    if device_name in ("cpu", "mps"):
        return finite_number("measured", measured, strictly_above=0), MEASURED
    return finite_number("measured", measured, strictly_above=0), f"{MEASURED} (no datasheet figure for {device_name})"


def _step_times(step_times: Iterable[float]) -> tuple[float, ...]:
    """`step_times` as a tuple of seconds, each finite and above 0, or an error naming the first bad one."""
    if isinstance(step_times, (str, bytes, Mapping)) or not isinstance(step_times, Iterable):
        raise TypeError(
            f"step_times must be a list or tuple of seconds, one per step, got {type(step_times).__name__}: "
            "e.g. step_times=[0.105, 0.101, 0.103]."
        )
    times = tuple(step_times)
    if not times:
        raise ValueError("step_times: give at least one step time, in seconds.")
    for i, t in enumerate(times):
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"step_times[{i}] = {t!r} is not a number of seconds: give each step's time as a float.")
        if not math.isfinite(t) or t <= 0:
            raise ValueError(
                f"step_times[{i}] = {t!r} is not a time a step can take: each must be a finite number of seconds "
                "above 0. Time the steps again (synchronise the GPU before reading the clock: gptcourse.timing."
                "time_calls does), and leave out any step the timer did not measure."
            )
    return tuple(float(t) for t in times)


@dataclass(frozen=True)
class TrainingMeasurement:
    """What `measure_training` measured (chapter 10). Times in seconds, memory in bytes, FLOPs exact."""

    device: str  # the GPU's name, or "cpu"
    precision: str  # the matmuls' precision, a peak-table key: fp32, tf32, bf16 or fp16
    batch_size: int
    seq_len: int
    step_times: tuple[float, ...]
    flops_per_step: int  # exact, from gptcourse.flops.count_flops (forward + backward)
    peak_flops: float  # the denominator of `mfu`
    peak_source: str  # "datasheet", "given", or "measured matmul" (see `choose_peak`)
    measured_peak_flops: float | None  # a large matmul's FLOP/s on this device, when measured
    peak_memory: int | None  # torch.cuda.max_memory_allocated() during the steps (GPU only)
    estimated_memory: int  # estimate_memory(...).total

    @classmethod
    def from_step_times(
        cls,
        model: torch.nn.Module,
        config: GPTConfig | Mapping[str, Any] | str | None,
        batch_size: int,
        seq_len: int | None,
        step_times: Sequence[float],
        dtype: torch.dtype | None = None,
        peak: float | None = None,
        measure_peak: bool = False,
        peak_memory: int | None = None,
        loss_chunk: int | None = None,
    ) -> TrainingMeasurement:
        """The measurement of training steps timed elsewhere (e.g. by `gptcourse.timing.compare`).

        MFU is against ``peak``, else `choose_peak`'s. ``measure_peak=True`` measures the
        matmul peak on a GPU with a datasheet figure too, so that both MFUs are reported.
        Every step time must be a finite number of seconds above 0: a negative, NaN or zero
        one (a timer misread, a step not synchronised) would make MFU negative, NaN or
        infinite, so it is refused by its index. ``loss_chunk``: the steps' loss was chunked
        (appendix C), which the memory estimate counts.
        """
        step_times = _step_times(step_times)
        cfg = model_config(model, config)
        batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
        device = next(model.parameters()).device
        dtype = autocast_dtype(device) if dtype is None else dtype
        precision = matmul_precision(device, dtype)
        name = device_name(device)
        needs_measured = device.type != "cuda" or measure_peak or (peak is None and datasheet_peak(name, precision) is None)
        measured = measure_peak_flops(device, dtype) if needs_measured else None
        denominator, source = choose_peak(name, precision, measured, peak)
        estimate = estimate_memory(
            cfg, batch_size, seq_len, dtype, attention_of(model), device.type, loss_chunk=loss_chunk
        )
        return cls(
            device=name,
            precision=precision,
            batch_size=batch_size,
            seq_len=seq_len,
            step_times=step_times,
            flops_per_step=count_flops(cfg, batch_size, seq_len, training=True).total,
            peak_flops=denominator,
            peak_source=source,
            measured_peak_flops=measured,
            peak_memory=peak_memory,
            estimated_memory=estimate.total,
        )

    @property
    def step_time(self) -> float:
        """The median step time."""
        return statistics.median(self.step_times)

    @property
    def spread(self) -> float:
        """(slowest − fastest) / median: how noisy the steps were."""
        return (max(self.step_times) - min(self.step_times)) / self.step_time

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size * self.seq_len / self.step_time

    @property
    def flops_per_token(self) -> float:
        return self.flops_per_step / (self.batch_size * self.seq_len)

    @property
    def achieved_flops(self) -> float:
        """Model FLOP/s: the exact FLOPs of a step divided by its median time."""
        return self.flops_per_step / self.step_time

    @property
    def mfu(self) -> float:
        return self.achieved_flops / self.peak_flops

    @property
    def mfu_vs_measured(self) -> float | None:
        """MFU against the measured matmul peak (what this device can actually reach)."""
        return None if self.measured_peak_flops is None else self.achieved_flops / self.measured_peak_flops

    def summary(self) -> str:
        """A few lines for a person: step time and spread, tokens/s, FLOP/s, MFU, memory."""
        lines = [
            f"{self.device}, {self.precision}, batch {self.batch_size} × {self.seq_len} tokens",
            f"  step {self.step_time * 1e3:.1f} ms (median of {len(self.step_times)}, spread {self.spread:.0%}), "
            f"{self.tokens_per_second:,.0f} tokens/s",
            f"  {self.flops_per_token / 1e6:.1f} MFLOP/token -> {self.achieved_flops / 1e9:,.1f} GFLOP/s achieved",
            f"  MFU {self.mfu:.1%} of {self.peak_flops / 1e12:.3g} TFLOP/s ({self.peak_source})",
        ]
        if self.measured_peak_flops is not None and not self.peak_source.startswith(MEASURED):
            lines.append(f"  MFU {self.mfu_vs_measured:.1%} of the measured matmul peak, {self.measured_peak_flops / 1e12:.3g} TFLOP/s")
        if self.mfu > 1 or (self.mfu_vs_measured or 0) > 1:
            lines.append(
                "  (above 100%: the peak was measured while the machine was busier, or at a size that runs slower "
                "than these matmuls; measure_peak_flops(..., refresh=True) measures it again)"
            )
        if self.peak_memory is not None:
            lines.append(f"  peak memory {self.peak_memory / GIB:.2f} GiB (estimate {self.estimated_memory / GIB:.2f} GiB)")
        # a printed line wraps at 88 characters, the width the book's output column shows
        return "\n".join(textwrap.fill(line, width=88, subsequent_indent="    ") for line in lines)


def measure_training(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    batch_size: int = 8,
    seq_len: int | None = None,
    steps: int = 10,
    warmup: int = 3,
    dtype: torch.dtype | None = None,
    peak: float | None = None,
    measure_peak: bool = False,
    seed: int = 0,
    fused: bool | None = None,
    loss_chunk: int | None = None,
) -> TrainingMeasurement:
    """Time `steps` training steps after `warmup` untimed ones; report speed, MFU and memory.

    Defined in chapter 10. ``config`` defaults to ``model.config``, ``seq_len`` to its
    context, ``dtype`` (autocast's) to `autocast_dtype`: bf16 on Ampere and newer, fp16 on
    older GPUs, fp32 on a CPU. MFU is against ``peak``, else `choose_peak`'s;
    ``measure_peak=True`` measures the matmul peak on a GPU too, so both MFUs are reported.
    ``fused`` picks AdamW's implementation; ``loss_chunk`` computes the loss that many rows
    at a time (appendix C). The weights are left unchanged (lr=0), the training mode restored.
    """
    cfg = model_config(model, config)
    batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
    steps, warmup = positive_int("steps", steps), non_negative_int("warmup", warmup)
    device = next(model.parameters()).device
    dtype = autocast_dtype(device) if dtype is None else dtype
    generator = torch.Generator(device="cpu").manual_seed(seed)
    inputs = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=generator).to(device)
    targets = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=generator).to(device)
    was_training = model.training
    model.train()
    step = make_train_step(model, inputs, targets, dtype, fused=fused, loss_chunk=loss_chunk)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        times = time_calls(step, device, repeats=steps, warmup=warmup)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    peak_memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return TrainingMeasurement.from_step_times(
        model, cfg, batch_size, seq_len, times, dtype=dtype, peak=peak, measure_peak=measure_peak, peak_memory=peak_memory,
        loss_chunk=loss_chunk,
    )  # fmt: skip


def measure_throughput(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    batch_size: int = 32,
    **kwargs: Any,
) -> tuple[float, float]:
    """``(tokens_per_second, mfu)`` of training `model` (the SPEC's call); chapter 10.

    A thin wrapper of `measure_training`, with its keyword arguments: MFU against the
    datasheet peak of the precision in use, else the measured matmul peak (`choose_peak`).
    """
    m = measure_training(model, config, batch_size=batch_size, **kwargs)
    return m.tokens_per_second, m.mfu
