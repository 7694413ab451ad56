"""What fits on the GPU a student has, and what to do when it does not (chapter 10).

The course's GPU is most often a Colab T4, about 14.5 GiB free. Every GPU configuration a
notebook runs is a `GPURun` in `GPU_RUNS`, sized by `estimate_memory` to fit a T4 (tested
on a CPU) and fitted to the memory free on the GPU itself (`GPURun.fit`). One budget,
`SAFETY_FRACTION` of `available_memory` unless one is given; one search, `largest_batch`.
An out-of-memory error is caught and explained (`out_of_memory_lesson`), never a crash.
"""

from __future__ import annotations

import gc
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

from .checks import non_negative_int, one_of, optional_positive_int, positive_int
from .config import PRESETS, GPTConfig
from .device import GIB, autocast_dtype, get_device, memory_cap
from .flops import batch_shape, model_config, num_parameters
from .memory import ATTENTION_KINDS, MemoryEstimate, attention_benchmark_memory, attention_of, estimate_memory
from .timing import make_train_step, synchronize

T4_FREE_BYTES = int(14.5 * GIB)  # a Colab T4 after the CUDA context: 15 GiB minus ~0.5 GiB
# The estimate leaves out the caching allocator's rounding, cuBLAS workspaces and
# fragmentation: plan to use at most this share of what is available.
SAFETY_FRACTION = 0.85

# What the allocators say when they cannot allocate: PyTorch's own error is
# torch.cuda.OutOfMemoryError; cuBLAS, cuDNN and the CPU allocator ("can't allocate memory") raise RuntimeErrors.
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                 "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "not enough memory")  # fmt: skip


class EstimatedOutOfMemoryError(torch.cuda.OutOfMemoryError):
    """Not even batch 1 fits by the estimate: refused before allocating, caught as an out-of-memory error (chapter 10)."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for every way a step fails for want of memory (chapter 10)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m.lower() in str(error).lower() for m in _OOM_MESSAGES)


# ------------------------------------------------------------------ the memory there is


def free_memory(device: torch.device | str = "cuda") -> int:
    """Bytes this process can still allocate on a CUDA GPU, under the memory cap if set (chapter 10)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device={str(device)!r}: free_memory is for a CUDA GPU; on a CPU, size by estimate_memory alone.")
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached by PyTorch, reusable
    cap = memory_cap()
    if cap is not None:
        free = min(free, cap - torch.cuda.memory_allocated(device))
    return max(0, free)


def host_memory_available() -> int:
    """Bytes of RAM the system can still give this process (``MemAvailable``), chapter 10."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # not Linux: what sysconf knows (free pages, a lower bound)
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_memory(device: torch.device | str) -> int:
    """Bytes a step may use: `free_memory` on a CUDA GPU, the RAM available elsewhere (chapter 10)."""
    device = torch.device(device)
    return free_memory(device) if device.type == "cuda" else host_memory_available()


def release_memory(*models: torch.nn.Module) -> None:
    """Give back what a finished or failed step held: gradients, unreachable tensors, the CUDA cache (chapter 10)."""
    for model in models:
        model.zero_grad(set_to_none=True)
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ out of memory, a lesson

_ADVICE = (
    "What helps, cheapest first: a smaller batch (activations grow with it); a shorter context "
    "(manual attention's T×T weights grow as T²); mixed precision (fp16 on a T4, bf16 on Ampere "
    "and newer: half the activations); SDPA attention (no T×T matrix); fewer models on the GPU "
    "at once (del them, then gptcourse.gpu_budget.release_memory())."
)


class OutOfMemoryLesson:
    """The context manager `out_of_memory_lesson` returns; ``.happened`` and ``.error`` say what it caught."""

    def __init__(self, what: str = "this cell", models: Iterable[torch.nn.Module] = ()):
        if not isinstance(what, str) or not what.strip():
            raise ValueError(f"what must name the cell's work in a few words, e.g. 'the manual-vs-SDPA timing', got {what!r}.")
        self.what = what
        self.models = tuple(models)
        bad = [m for m in self.models if not isinstance(m, torch.nn.Module)]
        if bad:
            raise TypeError(f"models must be torch.nn.Module objects whose gradients can be dropped, got {bad[0]!r}.")
        self.error: str | None = None  # the error's first line, once one was caught

    @property
    def happened(self) -> bool:
        """True once an out-of-memory error was caught here."""
        return self.error is not None

    def __enter__(self) -> OutOfMemoryLesson:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None or not is_out_of_memory(exc):
            return False  # no error, or one that is not about memory: it propagates unchanged
        self.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        traceback.clear_frames(tb)  # its frames hold the failed step's activations
        exc.__traceback__ = None
        release_memory(*self.models)
        print(self.lesson())
        return True  # handled: the cell ends here, the notebook goes on

    def lesson(self) -> str:
        """What happened, what was done about it, and what to change (a few lines for the notebook)."""
        lines = [f"Out of memory in {self.what}: {self.error}"]
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            lines.append(f"Memory freed (gradients dropped, the cache emptied): {free_memory('cuda') / GIB:.1f} GiB free now.")
        lines.append(_ADVICE)
        lines.append("Change the sizes at the top of this cell and run it again; the cells after it go on without its results.")
        return "\n".join(lines)


def out_of_memory_lesson(what: str = "this cell", models: Iterable[torch.nn.Module] = ()) -> OutOfMemoryLesson:
    """Catch an out-of-memory error in a notebook cell and teach from it, instead of crashing (chapter 10).

        with out_of_memory_lesson("the manual-vs-SDPA timing", models=[model]) as oom:
            ...   # the cell's GPU work

    The failed step's memory is freed (frames cleared, gradients of ``models`` dropped, the
    cache emptied) and a few lines say what to change. Other errors propagate unchanged.
    """
    return OutOfMemoryLesson(what, models)


# ------------------------------------------------------------------ the batch that fits


def largest_batch(fits: Callable[[int], bool], start: int, ceiling: int, bisect: bool = False) -> int:
    """The largest batch up to `ceiling` for which ``fits(batch)``, or 0 if not even 1 (chapter 10).

    From `start`, the batch doubles while it fits (up to `ceiling`), or halves until it
    does: powers of two, the sizes the notebooks use. ``bisect=True`` then narrows the gap
    between the last batch that fit and the first that did not, down to one.
    """
    start, ceiling = positive_int("start", start), positive_int("ceiling", ceiling)
    if start > ceiling:
        raise ValueError(f"start ({start}) must be at most ceiling ({ceiling}): the search never goes past the ceiling.")
    good, bad = (start, None) if fits(start) else (0, start)
    while bad is None and good < ceiling:  # grow
        trial = min(2 * good, ceiling)
        good, bad = (trial, None) if fits(trial) else (good, trial)
    while good == 0 and bad > 1:  # shrink
        trial = bad // 2
        good, bad = (trial, bad) if fits(trial) else (0, trial)
    while bisect and good and bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def _limit(available: int) -> int:
    return int(SAFETY_FRACTION * available)


def _available(device: torch.device, budget: int | None, resident: int = 0) -> tuple[int, str]:
    """Bytes available to a step (a given budget less what is resident, or what is there) and a phrase naming them."""
    if budget is not None:
        budget = positive_int("budget", budget)
        less = f" less {resident / GIB:.1f} GiB kept alongside" if resident else ""
        return budget - resident, f"{budget / GIB:.1f} GiB budget{less}"
    available = available_memory(device)
    return available, f"{available / GIB:.1f} GiB {'free on' if device.type == 'cuda' else 'of RAM available on'} {device}"


def _fit(wanted: int, seq_len: int, need: Callable[[int], int], device: torch.device, budget: int | None, resident: int) -> tuple[int, str]:
    """The largest batch, halving from `wanted`, whose `need` is within the limit: (batch, reason)."""
    available, where = _available(device, budget, resident)
    limit, share = _limit(available), f"{SAFETY_FRACTION:.0%}"
    batch = largest_batch(lambda b: need(b) <= limit, wanted, wanted)
    if batch == 0:
        raise EstimatedOutOfMemoryError(
            f"Not even batch 1 × {seq_len} fits: it needs {need(1) / GIB:.2f} GiB by the estimate, more than {share} of the "
            f"{where}. Use a shorter context, mixed precision, SDPA attention, or free memory (del other models, then "
            "gptcourse.gpu_budget.release_memory())."
        )
    if batch == wanted:
        return batch, f"batch {batch} × {seq_len} fits: the estimate, {need(batch) / GIB:.1f} GiB, is within {share} of the {where}"
    return batch, (
        f"batch {wanted} → {batch} × {seq_len}: batch {wanted} needs {need(wanted) / GIB:.1f} GiB by the estimate, more than "
        f"{share} of the {where}; batch {batch} needs {need(batch) / GIB:.1f} GiB"
    )


def fit_batch_size(
    config: GPTConfig | Mapping[str, Any] | str,
    batch_size: int,
    seq_len: int | None = None,
    dtype: torch.dtype = torch.float32,
    attention: str = "sdpa",
    device: torch.device | str | None = None,
    budget: int | None = None,
    models: int = 1,
    resident: int = 0,
    training: bool = True,
) -> tuple[int, str]:
    """The largest batch ≤ `batch_size`, halving, whose step fits: (batch, a one-line reason).

    Defined in chapter 10. "Fits": `estimate_memory` for ``models`` models at once (only
    the one running has activations) is within `SAFETY_FRACTION` of what is available on
    `device`, or of ``budget`` bytes less ``resident`` (a plan, e.g. for a T4 on a CPU).
    Raises `EstimatedOutOfMemoryError` if not even batch 1 fits.
    """
    cfg = GPTConfig.coerce(config)
    batch_size, seq_len = batch_shape(cfg, batch_size, seq_len)
    models, resident = positive_int("models", models), non_negative_int("resident", resident)
    if resident and budget is None:
        raise ValueError("resident is for a plan with a budget: on a GPU, free_memory already leaves out what is allocated.")
    device = get_device() if device is None else torch.device(device)

    def need(batch: int) -> int:
        one = estimate_memory(cfg, batch, seq_len, dtype, attention, device.type, training)
        return one.total + (models - 1) * one.model_state

    need(1)  # a bad dtype or attention fails here, by name, before any message about memory
    return _fit(batch_size, seq_len, need, device, budget, resident)


def find_max_batch_size(
    model: torch.nn.Module,
    config: GPTConfig | Mapping[str, Any] | str | None = None,
    seq_len: int | None = None,
    dtype: torch.dtype | None = None,
    memory_budget: int | None = None,
    max_batch_size: int = 4096,
    by: str | None = None,
    steps: int = 3,
) -> int:
    """The largest batch whose training step fits, up to ``max_batch_size`` (0 if not even 1 fits).

    Defined in chapter 10. `largest_batch` grows the batch 1, 2, 4, ... then bisects. ``by="running"``
    (the default on a CUDA GPU without a ``memory_budget``) tries ``steps`` real training steps per
    batch: memory peaks in the second step (AdamW's state, the last step's gradients), and only an
    allocation failure means "does not fit"; off CUDA, only batches whose estimate is within
    `SAFETY_FRACTION` of the RAM available are tried. ``by="estimate"`` compares `estimate_memory`
    with ``memory_budget``, by default `SAFETY_FRACTION` of `available_memory`.
    """
    cfg = model_config(model, config)
    _, seq_len = batch_shape(cfg, 1, seq_len)
    max_batch_size = positive_int("max_batch_size", max_batch_size)
    steps = positive_int("steps", steps)
    memory_budget = optional_positive_int("memory_budget", memory_budget)
    device = next(model.parameters()).device
    dtype = autocast_dtype(device) if dtype is None else dtype
    if by is None:
        by = "running" if device.type == "cuda" and memory_budget is None else "estimate"
    one_of("by", by, ("running", "estimate"))
    attention = attention_of(model)
    def by_estimate(limit: int, ceiling: int) -> int:  # the largest batch whose estimate is within limit
        return largest_batch(lambda b: estimate_memory(cfg, b, seq_len, dtype, attention, device.type).total <= limit, 1, ceiling, True)
    if by == "running":
        if memory_budget is not None:
            raise ValueError("memory_budget is for by='estimate'; by='running' tries real steps against the memory there is.")
        if device.type == "meta":
            raise ValueError("by='running' needs a model with real weights; a meta-device model has only shapes: use by='estimate'.")
        if device.type != "cuda":  # Linux overcommits: a step the RAM cannot hold is killed (OOM killer), not refused
            max_batch_size = by_estimate(_limit(host_memory_available()), max_batch_size)
        return largest_batch(lambda b: _fits_by_running(model, b, seq_len, dtype, steps), 1, max_batch_size, True) if max_batch_size else 0
    return by_estimate(memory_budget if memory_budget is not None else _limit(available_memory(device)), max_batch_size)


def _allocate_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Make AdamW allocate its state now (fp16's scaler may skip the first steps): a zero update at lr 0."""
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    model.zero_grad(set_to_none=True)


def _fits_by_running(model: torch.nn.Module, batch: int, seq_len: int, dtype: torch.dtype, steps: int) -> bool:
    """True if `steps` training steps of this batch run; False if one runs out of memory."""
    device = next(model.parameters()).device
    inputs = step = None
    try:
        inputs = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
        step = make_train_step(model, inputs, inputs, dtype)
        _allocate_optimizer_state(model, step.optimizer)
        for _ in range(steps):  # the previous step's gradients are alive in each forward from step 2 on
            step()
        synchronize(device)  # a GPU reports a failed kernel only when waited for
        return True
    except Exception as error:
        if not is_out_of_memory(error):  # only memory errors mean "does not fit"
            raise
        # Its frames hold the failed step's activations and optimizer state: free them now.
        traceback.clear_frames(error.__traceback__)
        error.__traceback__ = None
        return False
    finally:
        inputs = step = None  # the step holds the optimizer and its state: drop both
        release_memory(model)


# ------------------------------------------------------------------ the notebooks' GPU runs

RUN_DTYPES = ("autocast", "fp32")
RUN_MODULES = ("gpt", "attention")


@dataclass(frozen=True)
class GPURun:
    """One GPU configuration a notebook runs: its model, its batch, what else is on the GPU (chapter 10)."""

    chapter: int | str  # 10, or an appendix's letter: "C"
    name: str  # the key in GPU_RUNS, what the notebook writes: GPU_RUNS["ch10-attention"]
    what: str  # what the notebook does with it, in a phrase
    batch_size: int  # the batch on a T4; `fit` lowers it where less memory is free
    seq_len: int
    config: str = "gpt2-small"  # a preset of gptcourse.config.PRESETS ...
    overrides: tuple[tuple[str, Any], ...] = ()  # ... with these fields changed, e.g. (("vocab_size", 50304),)
    dtype: str = "autocast"  # "autocast": fp16 on a T4, bf16 where native; or "fp32" (no autocast)
    attention: str = "sdpa"  # "sdpa" or "manual"
    models_resident: int = 1  # models of this config on the GPU at once, run one at a time
    training: bool = True  # forward, backward and AdamW; False: forward only, under no_grad
    module: str = "gpt"  # a whole GPT, or "attention": one attention layer of the config's width and heads
    alongside: tuple[str, ...] = ()  # presets whose fp32 weights stay on the GPU meanwhile (chapter 10's `model`)

    def __post_init__(self) -> None:
        if not (isinstance(self.chapter, str) and len(self.chapter) == 1 and "A" <= self.chapter <= "Z"):
            positive_int("chapter (a number, or an appendix's capital letter)", self.chapter)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"GPURun.name must be a non-empty str, got {self.name!r}.")
        positive_int("batch_size", self.batch_size)
        positive_int("seq_len", self.seq_len)
        positive_int("models_resident", self.models_resident)
        one_of("GPURun.dtype", self.dtype, RUN_DTYPES)
        one_of("GPURun.attention", self.attention, ATTENTION_KINDS)
        one_of("GPURun.module", self.module, RUN_MODULES)
        for preset in self.alongside:
            one_of("GPURun.alongside preset", preset, PRESETS)
        cfg = self.gpt_config()  # an unknown preset or a bad override fails here, by name
        if self.module == "gpt":
            batch_shape(cfg, self.batch_size, self.seq_len)  # seq_len within the context

    def gpt_config(self) -> GPTConfig:
        """The model's `GPTConfig`: the preset with the overrides."""
        return GPTConfig.from_preset(self.config, **dict(self.overrides))

    def torch_dtype(self, device: torch.device | str | None = None) -> torch.dtype:
        """The dtype it runs in on `device`: autocast's there on a GPU; planned elsewhere, a T4's fp16."""
        if self.dtype == "fp32":
            return torch.float32
        device = torch.device("cuda") if device is None else torch.device(device)
        return autocast_dtype(device) if device.type == "cuda" else torch.float16

    def estimate(self, batch_size: int | None = None, device: torch.device | str | None = None) -> MemoryEstimate:
        """The estimate for one of its models, in its step (training or forward only), at `batch_size`."""
        cfg, dtype = self.gpt_config(), self.torch_dtype(device)
        batch_size = self.batch_size if batch_size is None else batch_size
        if self.module == "attention":
            return attention_benchmark_memory(batch_size, cfg.n_heads, self.seq_len, cfg.emb_dim, dtype, self.attention, self.training)
        return estimate_memory(cfg, batch_size, self.seq_len, dtype, self.attention, "cuda", self.training)

    def memory(self, batch_size: int | None = None, device: torch.device | str | None = None) -> int:
        """Bytes its models need at once: each holds its state, only the one running has activations."""
        one = self.estimate(batch_size, device)
        return one.total + (self.models_resident - 1) * one.model_state

    @property
    def alongside_memory(self) -> int:
        """Bytes of the models kept on the GPU meanwhile: their fp32 weights (their gradients are dropped)."""
        return sum(4 * num_parameters(preset, "all") for preset in self.alongside)

    def fit(self, device: torch.device | str | None = None, budget: int | None = None) -> tuple[int, str]:
        """The largest batch, halving from its own, that fits `device` now (or `budget`): (batch, reason).

        With a ``budget`` (a plan), the models kept alongside are subtracted from it; on a
        GPU, `free_memory` already leaves them out. Raises `EstimatedOutOfMemoryError` if
        not even batch 1 fits.
        """
        if device is None:
            device = torch.device("cuda") if budget is not None else get_device()
        device = torch.device(device)
        resident = self.alongside_memory if budget is not None else 0
        return _fit(self.batch_size, self.seq_len, lambda b: self.memory(b, device), device, budget, resident)


def _run_table(*runs: GPURun) -> dict[str, GPURun]:
    table: dict[str, GPURun] = {}
    for run in runs:
        if run.name in table:
            raise ValueError(f"Two GPU runs are named {run.name!r}: each name must be unique.")
        table[run.name] = run
    return table


# What the notebooks run when they find a GPU, sized for a T4 (tests/test_gpu_budget.py checks
# each against SAFETY_FRACTION × T4_FREE_BYTES, and that every notebook names its runs here).
GPU_RUNS: dict[str, GPURun] = _run_table(
    GPURun(
        4, "ch04-attention-timing", "the wrapper, batched and SDPA attention modules timed, forward and backward, up to T = 2048",
        batch_size=4, seq_len=2048, overrides=(("context_length", 2048),), dtype="fp32", attention="manual",
        models_resident=3, module="attention",
    ),
    GPURun(
        7, "ch07-training", "pretraining gpt-mini; the hand-written steps' two models stay on the GPU meanwhile",
        batch_size=16, seq_len=128, config="gpt-mini", overrides=(("drop_rate", 0.1),), models_resident=3,
    ),
    GPURun(
        8, "ch08-gpt2-generation", "GPT-2 small beside transformers' reference: logits, and generation up to the full context",
        batch_size=1, seq_len=1024, dtype="fp32", models_resident=2, training=False,
    ),
    GPURun(
        8, "ch08-kv-sizes", "one decoding step timed with and without the KV cache, up to GPT-2 large's shape",
        batch_size=1, seq_len=1024, config="gpt2-large", dtype="fp32", training=False, alongside=("gpt2-small",) * 2,
    ),
    GPURun(
        10, "ch10-model", "chapter 10's model: the measurement, the batch sweep, the memory check",
        batch_size=8, seq_len=1024,
    ),
    GPURun(
        10, "ch10-cold-steps", "a fresh GPT-2 small's first training steps, timed one by one",
        batch_size=8, seq_len=1024, alongside=("gpt2-small",),
    ),
    GPURun(
        10, "ch10-fp32", "the precision comparison's fp32 (or TF32) steps, at half the batch",
        batch_size=4, seq_len=1024, dtype="fp32",
    ),
    GPURun(
        10, "ch10-attention", "manual attention against SDPA at T = 1024, both models on the GPU, timed in turns",
        batch_size=4, seq_len=1024, attention="manual", models_resident=2, alongside=("gpt2-small",),
    ),
    GPURun(
        10, "ch10-context", "the context sweep's narrow GPT (T* = 2,048), B·T = 8192 up to T = 8192",
        batch_size=1, seq_len=8192, alongside=("gpt2-small",),
        overrides=(("emb_dim", 256), ("n_heads", 4), ("n_layers", 4), ("vocab_size", 4096), ("context_length", 8192)),
    ),
    GPURun(
        10, "ch10-compile", "torch.compile'd GPT-2 small against an eager one, both on the GPU, timed in turns",
        batch_size=8, seq_len=1024, models_resident=2, alongside=("gpt2-small",),
    ),
    GPURun("C", "appc-model", "GPT-2 small's training step profiled, then its loss computed plain and in chunks",
           batch_size=8, seq_len=1024),
    GPURun("C", "appc-prefill", "a 16-bit copy of GPT-2 small profiled on a prefill, the training model beside it",
           batch_size=8, seq_len=1024, training=False, alongside=("gpt2-small",)),
    GPURun(
        10, "ch10-vocab", "vocabulary 50304 against 50257, both models on the GPU, timed in turns",
        batch_size=4, seq_len=1024, overrides=(("vocab_size", 50304),), models_resident=2, alongside=("gpt2-small",),
    ),
)


def fits(run_or_bytes: GPURun | int, device: torch.device | str | None = None, budget: int | None = None) -> bool:
    """True if a `GPURun` (at its batch) or a number of bytes fits `SAFETY_FRACTION` of what is available.

    Defined in chapter 10: the test `GPURun.fit` makes, against what is free on `device`
    (default `get_device()`) or, for a plan, ``budget`` less what a run keeps alongside.
    """
    if budget is not None:
        budget = positive_int("budget", budget)
    device = (torch.device("cuda") if budget is not None else get_device()) if device is None else torch.device(device)
    if isinstance(run_or_bytes, GPURun):
        need = run_or_bytes.memory(device=device)
        resident = run_or_bytes.alongside_memory if budget is not None else 0
    elif isinstance(run_or_bytes, int) and not isinstance(run_or_bytes, bool):
        need, resident = non_negative_int("bytes", run_or_bytes), 0
    else:
        raise TypeError(f"fits takes a GPURun or a number of bytes (int), got {run_or_bytes!r}.")
    return need <= _limit(_available(device, budget, resident)[0])


def t4_plan() -> list[tuple[GPURun, int, int]]:
    """Each run of `GPU_RUNS` on a T4: (run, bytes its models need, the limit), chapter 10.

    The limit: `SAFETY_FRACTION` of `T4_FREE_BYTES` less the weights kept alongside.
    """
    return [(run, run.memory(device="cuda"), _limit(T4_FREE_BYTES - run.alongside_memory)) for run in GPU_RUNS.values()]
