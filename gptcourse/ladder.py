"""The optimisation ladder: one change at a time, each kept, each measured (chapter 10).

fp32 with manual attention and the default AdamW → TF32 → autocast → SDPA → compile →
fused AdamW → vocabulary 50,304 → chunked loss (appendix C) → largest batch. Each rung
keeps those below it, so its speed-up is what it adds. `run_ladder` reports tokens/s, MFU
against the datasheet and the measured matmul peak of the rung's own precision, and GPU memory beside `estimate_memory`;
a rung that does not apply is skipped with the reason; one out of memory says so, and the
ladder goes on. ``benchmarks/ladder.py --record`` keeps a GPU's rows in
``gptcourse/results/ladder.csv``, which `recorded_markdown` shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from . import gpu_budget
from .checks import non_negative_int, one_of, optional_positive_int, positive_int
from .config import GPTConfig
from .device import GIB, autocast_dtype, device_name, get_device, memory_cap
from .flops import batch_shape
from .gpu_budget import find_max_batch_size, fit_batch_size, largest_batch
from .memory import estimate_memory
from .mfu import TrainingMeasurement, measure_training
from .model import GPT
from .timing import fused_adamw_supported, make_train_step, rotation

# A CPU's ladder: GPT-2's own vocabulary (so that the padding rung is GPT-2's), everything
# else small enough for two cores to climb every rung in about 10 s. The LM head and the
# loss over 50,257 logits then take most of the time; a smaller width would save little.
CPU_CONFIG = GPTConfig(vocab_size=50257, context_length=128, emb_dim=128, n_heads=4, n_layers=2)
GPU_MAX_BATCH = 64  # the largest-batch rung's ceiling on a GPU: enough to reach a plateau
CPU_BATCH_MULTIPLE = 2  # on a CPU the largest-batch rung tries only twice the batch: speed is flat there
# The chunked loss's rows a chunk: on a GPU, 8 chunks of GPT-2 small's 8 × 1024 (each (1024, 50,304)
# fp32 logits: 0.2 GB, not 1.6); on a CPU, 4 of the 2 × 128 rows.
LOSS_CHUNK, CPU_LOSS_CHUNK = 1024, 64


@dataclass(frozen=True)
class Setup:
    """What a training step runs with: the ladder's state, which each rung changes (chapter 10)."""

    config: GPTConfig
    batch_size: int
    seq_len: int
    dtype: torch.dtype = torch.float32  # the autocast dtype; fp32 means no autocast
    float32_matmul_precision: str = "highest"  # PyTorch's default: fp32 matmuls really in fp32
    attention: str = "manual"
    compile: bool = False
    fused: bool | None = None  # AdamW(fused=...); None: PyTorch's default (foreach on a GPU)
    loss_chunk: int | None = None  # the LM head and loss this many rows at a time (appendix C); None: at once


@dataclass(frozen=True)
class Where:
    """The machine the ladder climbs on, and its options."""

    device: torch.device
    compile_on_cpu: bool
    max_batch_size: int


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: its name, what it changes, and how (chapter 10).

    ``climb(setup, where)`` returns the setup with this rung's change added, or a sentence
    saying why the rung does not apply on this machine.
    """

    name: str
    what: str
    climb: Callable[[Setup, Where], Setup | str]


def _tf32(setup: Setup, where: Where) -> Setup | str:
    if where.device.type != "cuda":
        return f"TF32 is a format of NVIDIA's tensor cores (Ampere and newer); a {where.device.type.upper()} has none"
    major, minor = torch.cuda.get_device_capability(where.device)
    if major < 8:
        return f"TF32 arrived with Ampere (compute capability 8.0); this GPU is {major}.{minor}, so fp32 stays fp32"
    return dataclasses.replace(setup, float32_matmul_precision="high")


def _autocast(setup: Setup, where: Where) -> Setup | str:
    # On a GPU: bf16 where it is native, else fp16 (with a gradient scaler: make_train_step adds
    # one). A CPU trains in fp32 elsewhere in the course; here it tries bf16, which many CPUs have.
    dtype = torch.bfloat16 if where.device.type == "cpu" else autocast_dtype(where.device)
    return dataclasses.replace(setup, dtype=dtype)


def _sdpa(setup: Setup, where: Where) -> Setup | str:
    return dataclasses.replace(setup, attention="sdpa")


def _compile(setup: Setup, where: Where) -> Setup | str:
    if where.device.type != "cuda" and not where.compile_on_cpu:
        return "on a CPU, torch.compile builds C++ code for minutes first (compile_on_cpu=True includes it)"
    return dataclasses.replace(setup, compile=True)


def _fused(setup: Setup, where: Where) -> Setup | str:
    if not fused_adamw_supported(where.device):
        return f"this PyTorch ({torch.__version__}) has no fused AdamW for a {where.device.type.upper()}"
    return dataclasses.replace(setup, fused=True)


def _pad_vocabulary(setup: Setup, where: Where) -> Setup | str:
    vocab = setup.config.vocab_size
    padded = -(-vocab // 64) * 64  # the next multiple of 64: 50,257 -> 50,304
    if padded == vocab:
        return f"the vocabulary, {vocab:,}, is already a multiple of 64"
    return dataclasses.replace(setup, config=dataclasses.replace(setup.config, vocab_size=padded))


def _chunked_loss(setup: Setup, where: Where) -> Setup | str:
    return dataclasses.replace(setup, loss_chunk=LOSS_CHUNK if where.device.type == "cuda" else CPU_LOSS_CHUNK)


def _estimate(setup: Setup, device_type: str) -> int:
    """`estimate_memory` of a setup, in bytes."""
    s = setup
    return estimate_memory(s.config, s.batch_size, s.seq_len, s.dtype, s.attention, device_type, loss_chunk=s.loss_chunk).total


def _fits(model: torch.nn.Module, setup: Setup, device: torch.device, batch: int) -> bool:
    """Whether a chunked-loss step fits: by three real steps on CUDA, else by the estimate (RAM overcommits)."""
    if device.type != "cuda":
        budget = gpu_budget.SAFETY_FRACTION * gpu_budget.available_memory(device)
        return _estimate(dataclasses.replace(setup, batch_size=batch), device.type) <= budget

    def run() -> None:
        inputs = torch.zeros(batch, setup.seq_len, dtype=torch.long, device=device)
        step = make_train_step(model, inputs, inputs, setup.dtype, loss_chunk=setup.loss_chunk)
        for p in model.parameters():  # a zero update: fp16's scaler may skip the first steps' updates
            p.grad = torch.zeros_like(p)
        step.optimizer.step()  # type: ignore[attr-defined]
        for _ in range(3):  # from the second on, the previous step's gradients are alive in the forward
            step()
        torch.cuda.synchronize(device)  # a failed kernel is reported only when waited for

    fits = not isinstance(_guarded(run), _OutOfMemory)
    gpu_budget.release_memory(model)
    return fits


def _largest_batch(setup: Setup, where: Where) -> Setup | str:
    # find_max_batch_size tries real training steps on a GPU (steady state: optimizer state
    # and gradients included) and goes by the estimate elsewhere. It runs the model uncompiled,
    # so that nothing is recompiled for every trial batch: a compiled step usually needs less
    # memory (its fused kernels keep fewer intermediates), and if it needs more, the rung says so.
    with float32_matmul_precision(setup.float32_matmul_precision):
        torch.manual_seed(0)
        model = GPT(setup.config, attention=setup.attention).to(where.device)
        if setup.loss_chunk is None:
            largest = find_max_batch_size(model, setup.config, setup.seq_len, setup.dtype, max_batch_size=where.max_batch_size)
        else:  # find_max_batch_size steps and estimates with the plain loss: the same search, chunked
            largest = largest_batch(partial(_fits, model, setup, where.device), 1, where.max_batch_size, True)
    del model
    gpu_budget.release_memory()
    if largest <= setup.batch_size:
        return f"no larger batch fits: the largest, up to {where.max_batch_size}, is {largest}"
    return dataclasses.replace(setup, batch_size=largest)


LADDER: tuple[Rung, ...] = (
    Rung("fp32", "the baseline: fp32, attention matrix built by hand, PyTorch's default AdamW", lambda s, w: s),
    Rung("tf32", "fp32 matmuls on TF32 tensor cores: torch.set_float32_matmul_precision('high')", _tf32),
    Rung("autocast", "mixed precision: bf16 where native, else fp16 with a gradient scaler", _autocast),
    Rung("sdpa", "fused attention: scaled_dot_product_attention instead of the T×T matrix", _sdpa),
    Rung("compile", "torch.compile: the elementwise chains between matmuls fused", _compile),
    Rung("fused AdamW", "AdamW(fused=True): the whole update in a few kernels", _fused),
    Rung("padded vocab", "the vocabulary padded to a multiple of 64 (GPT-2: 50,257 -> 50,304)", _pad_vocabulary),
    Rung("chunked loss", "the LM head and loss a chunk of rows at a time: no (B·T, vocab) tensor", _chunked_loss),
    Rung("largest batch", "the largest batch that fits in memory", _largest_batch),
)


@dataclass(frozen=True)
class RungResult:
    """What one rung of `run_ladder` measured, or why it did not (chapter 10)."""

    rung: str
    what: str
    device: str  # the GPU's name, or "cpu"
    status: str  # "ran", "skipped" or "out of memory"
    note: str  # why a rung was skipped, what ran out of memory, how the batch was sized
    setup: Setup  # what the rung ran with (for a skipped rung: the setup it left unchanged)
    measurement: TrainingMeasurement | None  # all its timed steps, every round
    round_times: tuple[tuple[float, ...], ...] = ()  # the step times of each round, in seconds

    def round_tokens_per_second(self) -> list[float]:
        """Tokens/s of each round: its median step, one figure a round."""
        tokens = self.setup.batch_size * self.setup.seq_len
        return [tokens / statistics.median(times) for times in self.round_times]

    def speedups(self, reference: RungResult) -> list[float]:
        """This rung's tokens/s ÷ `reference`'s, round by round: measurements moments apart."""
        pairs = zip(self.round_tokens_per_second(), reference.round_tokens_per_second())
        return [ours / theirs for ours, theirs in pairs]

    @property
    def precision(self) -> str | None:
        """The matmuls' precision: fp32, tf32, bf16 or fp16."""
        return None if self.measurement is None else self.measurement.precision

    @property
    def tokens_per_second(self) -> float | None:
        return None if self.measurement is None else self.measurement.tokens_per_second

    @property
    def mfu_datasheet(self) -> float | None:
        """MFU against the datasheet peak; None where there is none (a CPU, a GPU not in PEAKS)."""
        m = self.measurement
        return m.mfu if m is not None and m.peak_source == "datasheet" else None

    @property
    def mfu_measured(self) -> float | None:
        """MFU against the matmul peak measured for this rung's precision."""
        return None if self.measurement is None else self.measurement.mfu_vs_measured

    @property
    def peak_memory(self) -> int | None:
        """torch.cuda.max_memory_allocated() during the steps, in bytes (GPU only)."""
        return None if self.measurement is None else self.measurement.peak_memory

    @property
    def estimated_memory(self) -> int:
        """`estimate_memory` of this rung's setup, in bytes."""
        return _estimate(self.setup, self.device if self.device in ("cpu", "mps") else "cuda")


@contextlib.contextmanager
def float32_matmul_precision(setting: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision(setting)`` inside the block, the previous setting after (chapter 10)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(setting)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _sized_to_fit(setup: Setup, device: torch.device) -> tuple[Setup, str]:
    """On a GPU, the batch halved until the first rung (the hungriest: fp32, the T×T matrix
    kept) fits by the estimate (`gptcourse.gpu_budget.fit_batch_size`); every rung but the
    last then runs at that batch, so that their speeds compare."""
    if device.type != "cuda":
        return setup, ""
    batch, reason = fit_batch_size(setup.config, setup.batch_size, setup.seq_len, setup.dtype, setup.attention, device)
    return dataclasses.replace(setup, batch_size=batch), (reason if batch != setup.batch_size else "")


def _measure(setup: Setup, device: torch.device, steps: int, warmup: int, seed: int) -> TrainingMeasurement:
    with float32_matmul_precision(setup.float32_matmul_precision):
        torch.manual_seed(seed)
        model: torch.nn.Module = GPT(setup.config, attention=setup.attention).to(device)
        if setup.compile:
            model = torch.compile(model)
        # measure_peak=True: the matmul peak of this rung's precision (TF32 included), measured
        # under the same settings, is the second denominator.
        return measure_training(
            model, setup.config, batch_size=setup.batch_size, seq_len=setup.seq_len, steps=steps, warmup=warmup,
            dtype=setup.dtype, measure_peak=True, seed=seed, fused=setup.fused, loss_chunk=setup.loss_chunk,
        )  # fmt: skip


def default_workload(device: torch.device | str) -> dict[str, Any]:
    """The sizes `run_ladder` climbs with when none are given: GPT-2 small at T = 1024, batch 8,
    on a GPU; `CPU_CONFIG` at T = 128, batch 2, elsewhere; `steps` timed a rung and round
    (chapter 10)."""
    if torch.device(device).type == "cuda":
        return {"config": GPTConfig.from_preset("gpt2-small"), "batch_size": 8, "seq_len": 1024, "steps": 3, "warmup": 2, "rounds": 3}
    return {"config": CPU_CONFIG, "batch_size": 2, "seq_len": 128, "steps": 1, "warmup": 1, "rounds": 3}


def run_ladder(
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    batch_size: int | None = None,
    seq_len: int | None = None,
    device: torch.device | str | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    compile_on_cpu: bool = False,
    max_batch_size: int | None = None,
    skip: Sequence[str] = (),
    seed: int = 0,
    verbose: bool = False,
    rounds: int | None = None,
) -> list[RungResult]:
    """Climb `LADDER` on `device`: every rung's measurement, in order. Defined in chapter 10.

    Sizes left as None come from `default_workload`. The rungs that apply are timed in
    ``rounds`` rounds, in an order that rotates (`gptcourse.timing.rotation`), each time a
    fresh model from ``seed`` (`measure_training`, lr=0, dropout off): a speed-up is taken
    within a round (`RungResult.speedups`). On a GPU the batch is first sized so that the
    hungriest rung fits; the last rung seeks the largest batch up to ``max_batch_size``.
    ``skip`` names rungs to leave out; ``verbose=True`` prints the table (`format_ladder`).
    """
    device = get_device(None if device is None else str(device))  # which applies a memory cap, if one is set
    defaults = default_workload(device)
    cfg = GPTConfig.coerce(defaults["config"] if config is None else config)
    cfg = dataclasses.replace(cfg, drop_rate=0.0)
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    batch_size, seq_len = batch_shape(cfg, batch_size, defaults["seq_len"] if seq_len is None else seq_len)
    steps = positive_int("steps", defaults["steps"] if steps is None else steps)
    warmup = non_negative_int("warmup", defaults["warmup"] if warmup is None else warmup)
    rounds = positive_int("rounds", defaults["rounds"] if rounds is None else rounds)
    ceiling = optional_positive_int("max_batch_size", max_batch_size)
    if ceiling is None:
        ceiling = GPU_MAX_BATCH if device.type == "cuda" else CPU_BATCH_MULTIPLE * batch_size
    where = Where(device, compile_on_cpu, ceiling)
    for left_out in skip:
        one_of("skip", left_out, [rung.name for rung in LADDER])

    setup, note = _sized_to_fit(Setup(cfg, batch_size, seq_len), device)
    name = device_name(device)
    if verbose:
        print(ladder_header(cfg, setup, device, rounds))
    planned: list[tuple[Rung, str, str, Setup]] = []  # (rung, status, note, setup), climbed once
    for rung in LADDER:
        climbed = "left out (skip=...)" if rung.name in skip else _guarded(partial(rung.climb, setup, where))
        if isinstance(climbed, Setup):
            setup = climbed
            planned.append((rung, "ran", note, setup))
        elif isinstance(climbed, _OutOfMemory):
            planned.append((rung, "out of memory", climbed.note, setup))
        else:  # the reason it does not apply here
            planned.append((rung, "skipped", climbed, setup))
        note = ""
    setups = {rung.name: s for rung, status, _, s in planned if status == "ran"}
    measured: dict[str, list[TrainingMeasurement]] = {rung: [] for rung in setups}
    failed: dict[str, str] = {}
    for r in range(rounds):
        for rung_name in rotation([n for n in setups if n not in failed], r):
            s = setups[rung_name]
            m = _guarded(partial(_measure, s, device, steps, warmup, seed))
            if isinstance(m, _OutOfMemory):  # reported, and the ladder goes on without it
                failed[rung_name] = m.note
            else:
                measured[rung_name].append(m)
            if s.compile:  # every round compiles afresh (warm-up), as the first did
                torch._dynamo.reset()  # drop the compiled graphs, and the memory they hold on to
            gpu_budget.release_memory()
    results = []
    for rung, status, note, s in planned:
        if rung.name in failed:
            status, note = "out of memory", failed[rung.name]
        ms = measured.get(rung.name, []) if status == "ran" else []
        results.append(RungResult(rung.name, rung.what, name, status, note, s, _pooled(ms), tuple(m.step_times for m in ms)))
    if verbose:
        print("\n".join(format_rung(r, results[0]) for r in results))
    return results


@dataclass(frozen=True)
class _OutOfMemory:
    note: str  # the error, in a line


def _guarded(work: Callable[[], Any]) -> Any:
    """``work()``, or `_OutOfMemory` if it ran out of memory; other errors propagate."""
    error = None
    try:
        return work()
    except Exception as err:  # only an allocation failure is this rung's result; others propagate
        if not gpu_budget.is_out_of_memory(err):
            raise
        message = str(err).splitlines()[0] if str(err) else ""
        error = f"{type(err).__name__}: {message[:160]}{'…' if len(message) > 160 else ''}"  # CUDA's run long
    gpu_budget.release_memory()  # outside the except block, so that its traceback (and tensors) are gone
    return _OutOfMemory(error)


def _pooled(measurements: list[TrainingMeasurement]) -> TrainingMeasurement | None:
    """One measurement of a rung's rounds: every step of every round, the highest memory."""
    if not measurements:
        return None
    memory = [m.peak_memory for m in measurements if m.peak_memory is not None]
    steps = tuple(t for m in measurements for t in m.step_times)
    return dataclasses.replace(measurements[0], step_times=steps, peak_memory=max(memory) if memory else None)


_COLUMNS = (
    f"{'rung':<14}{'prec':>5}{'batch':>6}{'tokens/s':>10}{'× fp32':>7}{'rounds':>11}"
    f"{'sheet':>7}{'matmul':>8}{'GiB':>6}{'est.':>6}"
)


def ladder_header(config: GPTConfig, setup: Setup, device: torch.device, rounds: int = 1) -> str:
    """The lines above the ladder's table: what was measured, where (chapter 10)."""
    if device.type == "cuda":
        cap = memory_cap()
        name = device_name(device) + ("" if cap is None else f" capped to {cap / GIB:g} GiB")
    else:
        threads = torch.get_num_threads()
        name = f"{device.type}, {threads} thread{'s' if threads > 1 else ''}"
    shape = f"L{config.n_layers} h{config.n_heads} d{config.emb_dim} V{config.vocab_size}, T = {setup.seq_len}"
    return (
        f"optimisation ladder on {name}, torch {torch.__version__}: {shape}\n"
        f"× fp32: the median over {rounds} round(s) of the speed-up over fp32 in the same round;\n"
        "rounds: the lowest and highest of them. MFU against the datasheet peak (sheet) and the\n"
        "measured matmul peak (matmul) of the rung's precision; memory: measured peak (GPU),\n"
        "and estimate_memory, in GiB\n" + _COLUMNS
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _gib(value: int | None) -> str:
    return "—" if value is None else f"{value / GIB:.2f}"


def format_rung(result: RungResult, first: RungResult | None = None) -> str:
    """One line of the ladder's table; ``× fp32``: the speed-up over `first`, the median of
    the rounds', and ``rounds`` their lowest and highest (chapter 10)."""
    if result.status != "ran":
        return _wrapped(f"{result.status}: {result.note}", result.rung)
    ratios = result.speedups(first) if first is not None and first.status == "ran" else []
    speedup = f"{statistics.median(ratios):.2f}" if ratios else "—"
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios and result is not first else "—"
    line = (
        f"{result.rung:<14}{result.precision:>5}{result.setup.batch_size:>6}{result.tokens_per_second:>10,.0f}"
        f"{speedup:>7}{spread:>11}{_percent(result.mfu_datasheet):>7}{_percent(result.mfu_measured):>8}"
        f"{_gib(result.peak_memory):>6}{_gib(result.estimated_memory):>6}"
    )
    return line + ("\n" + _wrapped(f"({result.note})") if result.note else "")


def _wrapped(text: str, first: str = "") -> str:
    """`text` in lines of at most 88 characters, under the table's second column."""
    return textwrap.fill(text, width=88, initial_indent=f"{first:<14}", subsequent_indent=" " * 14)


def format_ladder(results: list[RungResult]) -> str:
    """The ladder as a table, one rung a line, speed-ups over the first rung (chapter 10)."""
    if not results:
        return _COLUMNS
    return "\n".join([_COLUMNS, *(format_rung(r, results[0]) for r in results)])


def recorded_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """Recorded ladders (`gptcourse.results.LADDER_RESULTS`) as Markdown: for each run, its
    device, memory cap, date, torch version and command, then its rungs (chapter 10)."""
    run_of = ("date", "device", "memory_cap_gib", "torch", "command")
    blocks: list[list[str]] = []
    previous = None
    for row in rows:
        run = tuple(row.get(k, "") for k in run_of)
        if run != previous:
            date, device, cap, version, command = run
            capped = f" (capped to {cap} GiB)" if cap else ""
            blocks.append(
                [
                    f"**{device}**{capped}, {date}, torch {version}: `{command}`",
                    "",
                    "| rung | precision | batch | tokens/s | MFU (datasheet) | MFU (measured) | memory GiB | estimate GiB | note |",
                    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
                ]
            )
            previous = run
        if row.get("status") == "ran":
            figures = [row["precision"], row["batch_size"], f"{float(row['tokens_per_second']):,.0f}"]
            figures += [f"{float(row[k]):.1%}" if row[k] else "—" for k in ("mfu_datasheet", "mfu_measured")]
            figures += [row[k] or "—" for k in ("peak_memory_gib", "estimated_memory_gib")] + [row["note"]]
        else:  # skipped, or out of memory: no figures, the reason
            figures = ["—"] * 7 + [f"{row['status']}: {row['note']}"]
        blocks[-1].append("| " + " | ".join([row["rung"], *figures]) + " |")
    return "\n\n".join("\n".join(block) for block in blocks)
