"""The GPU configurations the notebooks run, kept as data, and the batch that fits (chapter 10).

Every size a notebook picks when it finds a GPU is a `GPURun` in `GPU_RUNS`, so that one test
(tests/test_gpu_runs.py) checks on a CPU that each fits a Colab T4 by the estimate: the
memory of the models it holds at once (`estimate_memory`, or `attention_benchmark_memory`
for chapter 4's single layer), plus the models kept on the GPU meanwhile, within
`SAFETY_FRACTION` of `T4_FREE_BYTES`. On the GPU itself a notebook asks ``run.fit(device)``
(or `fit_batch_size`) for the batch that fits the memory free there now: the run's own batch
on a T4, a smaller one when less is free (another process, a capped GPU, a smaller card).

    >>> batch, reason = GPU_RUNS["ch10-attention"].fit(device)
    >>> print(reason)
    batch 4 × 1024 fits: the estimate, 9.0 GiB, is within 85% of the 14.5 GiB free on cuda
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .checks import non_negative_int, one_of, positive_int
from .config import PRESETS, GPTConfig
from .device import autocast_dtype, get_device
from .flops import batch_shape, num_parameters
from .gpu_budget import GIB, SAFETY_FRACTION, T4_FREE_BYTES, EstimatedOutOfMemoryError, available_memory
from .memory import ATTENTION_KINDS, MemoryEstimate, attention_benchmark_memory, estimate_memory

RUN_DTYPES = ("autocast", "fp32")
RUN_MODULES = ("gpt", "attention")


@dataclass(frozen=True)
class GPURun:
    """One GPU configuration a notebook runs: its model, its batch, what else is on the GPU (chapter 10)."""

    chapter: int
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
        positive_int("chapter", self.chapter)
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

        On a GPU, `free_memory` already leaves out what the models kept alongside hold; with a
        ``budget`` (a plan: e.g. `T4_FREE_BYTES` on a CPU), they are subtracted from it.
        Raises `EstimatedOutOfMemoryError` if not even batch 1 fits.
        """
        if device is None:
            device = torch.device("cuda") if budget is not None else get_device()
        device = torch.device(device)
        resident = self.alongside_memory if budget is not None else 0
        return _halve_until_fits(self.batch_size, self.seq_len, lambda b: self.memory(b, device), device, budget, resident)


def _run_table(*runs: GPURun) -> dict[str, GPURun]:
    table: dict[str, GPURun] = {}
    for run in runs:
        if run.name in table:
            raise ValueError(f"Two GPU runs are named {run.name!r}: each name must be unique.")
        table[run.name] = run
    return table


# What the notebooks run when they find a GPU, sized for a T4 (tests/test_gpu_runs.py checks
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
        10, "ch10-model", "chapter 10's model: the measurement, the batch and context sweeps (B·T = 8192), the memory check",
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
        10, "ch10-attention", "manual attention against SDPA at T = 1024: the manual one stores every T×T matrix",
        batch_size=4, seq_len=1024, attention="manual", alongside=("gpt2-small",),
    ),
    GPURun(
        10, "ch10-compile", "torch.compile'd GPT-2 small (compiled code needs no more than eager)",
        batch_size=8, seq_len=1024, alongside=("gpt2-small",),
    ),
    GPURun(
        10, "ch10-vocab", "vocabulary 50304 against 50257, both models on the GPU, timed in turns",
        batch_size=4, seq_len=1024, overrides=(("vocab_size", 50304),), models_resident=2, alongside=("gpt2-small",),
    ),
)


def _limit(available: int) -> int:
    return int(SAFETY_FRACTION * available)


def _where(device: torch.device, budget: int | None, resident: int) -> tuple[int, str]:
    """Memory available to the run and a phrase naming it."""
    if budget is not None:
        budget = positive_int("budget", budget)
        less = f" less {resident / GIB:.1f} GiB kept alongside" if resident else ""
        return budget - resident, f"{budget / GIB:.1f} GiB budget{less}"
    available = available_memory(device)
    return available, f"{available / GIB:.1f} GiB {'free on' if device.type == 'cuda' else 'of RAM available on'} {device}"


def _halve_until_fits(
    wanted: int, seq_len: int, need: Callable[[int], int], device: torch.device, budget: int | None, resident: int
) -> tuple[int, str]:
    available, where = _where(device, budget, resident)
    limit = _limit(available)
    share = f"{SAFETY_FRACTION:.0%}"
    batch = wanted
    while need(batch) > limit:
        if batch == 1:
            raise EstimatedOutOfMemoryError(
                f"Not even batch 1 × {seq_len} fits: it needs {need(1) / GIB:.2f} GiB by the estimate, more than {share} of the "
                f"{where}. Use a shorter context, mixed precision, SDPA attention, or free memory (del other models, then "
                "gptcourse.gpu_budget.release_memory())."
            )
        batch //= 2  # halving keeps the powers of two the notebooks use
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

    Defined in chapter 10. "Fits": `estimate_memory` for ``models`` models of this config
    on the device at once (each holds its weights, gradients and AdamW state; only the one
    running has activations) is at most `SAFETY_FRACTION` of the memory available: on a
    CUDA GPU what is free there now (`free_memory`: what is already allocated is left out),
    elsewhere the RAM available; or, for a plan, of ``budget`` bytes less ``resident``
    bytes the plan keeps elsewhere on the device (e.g. ``device="cuda",
    budget=T4_FREE_BYTES`` on a CPU). Raises `EstimatedOutOfMemoryError` (an
    out-of-memory error, so `out_of_memory_lesson` explains it) if not even batch 1 fits.
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
    return _halve_until_fits(batch_size, seq_len, need, device, budget, resident)


def fits(run_or_bytes: GPURun | int, device: torch.device | str | None = None, budget: int | None = None) -> bool:
    """True if a `GPURun` (at its batch) or a number of bytes fits `SAFETY_FRACTION` of what is available.

    Defined in chapter 10. Available: what is free on `device` now (default `get_device()`;
    a GPU's `free_memory` already leaves out what is allocated), or, for a plan, ``budget``
    bytes less what a run keeps alongside (``fits(run, budget=T4_FREE_BYTES)``): the same
    test as `GPURun.fit` makes.
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
    available = budget - resident if budget is not None else available_memory(device)
    return need <= _limit(available)


def t4_plan() -> list[tuple[GPURun, int, int]]:
    """Each run of `GPU_RUNS` against a T4: (run, bytes its models need, the limit: 85% of what is left).

    Defined in chapter 10. What is left: `T4_FREE_BYTES` less the weights of the models the
    run keeps alongside. A run fits a T4 by the estimate when its need is within the limit.
    """
    return [(run, run.memory(device="cuda"), _limit(T4_FREE_BYTES - run.alongside_memory)) for run in GPU_RUNS.values()]
