"""gptcourse.gpu_budget, on a CPU (chapter 10): out-of-memory errors and the lesson, the memory
there is, the one search for the batch that fits, and every GPU run of the notebooks against a T4."""

from __future__ import annotations

import dataclasses
import gc
import json
import re
import types
import weakref
from pathlib import Path

import pytest
import torch

from gptcourse import GPT, GPTConfig, gpu_budget
from gptcourse.device import GIB, MEMORY_CAP_VARIABLE
from gptcourse.flops import meta_model
from gptcourse.gpu_budget import (
    GPU_RUNS,
    SAFETY_FRACTION,
    T4_FREE_BYTES,
    EstimatedOutOfMemoryError,
    GPURun,
    _run_table,
    available_memory,
    find_max_batch_size,
    fit_batch_size,
    fits,
    free_memory,
    is_out_of_memory,
    largest_batch,
    out_of_memory_lesson,
    release_memory,
    t4_plan,
)
from gptcourse.memory import estimate_memory

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
SMALL_WEIGHTS = 4 * 124_439_808  # GPT-2 small's fp32 weights, kept alongside in chapter 10


OUT_OF_MEMORY = [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 14.75 GiB total capacity)"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB."),
    EstimatedOutOfMemoryError("Not even batch 1 × 1024 fits"),
]
NOT_OUT_OF_MEMORY = [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)"),
    ValueError("out of memory"),  # a ValueError is a bad argument, whatever it says
    KeyboardInterrupt(),
]


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_every_allocation_failure_is_out_of_memory(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", NOT_OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_other_errors_are_not(error):
    assert not is_out_of_memory(error)


def fake_gpu(monkeypatch, free, reserved, allocated, total=80 * GIB):
    """Pretend torch.cuda has a GPU with these numbers of bytes; record the fraction it is capped to."""
    capped = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: types.SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction, device=None: capped.append(fraction))
    return capped


def test_free_memory_counts_the_cache_and_obeys_the_cap(monkeypatch):
    fake_gpu(monkeypatch, free=10 * GIB, reserved=3 * GIB, allocated=2 * GIB)
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert free_memory("cuda") == 11 * GIB  # 1 GiB reserved but unused is PyTorch's to reuse
    assert available_memory("cuda") == 11 * GIB
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "4")
    assert free_memory("cuda") == 2 * GIB  # the cap less what is allocated


def test_free_memory_is_for_a_gpu_and_available_memory_for_any_device():
    with pytest.raises(ValueError, match="free_memory is for a CUDA GPU"):
        free_memory("cpu")
    assert 0 < available_memory("cpu") < 2**50


def test_release_memory_drops_gradients_and_empties_the_cache(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    model = GPT(TINY)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    release_memory(model)
    assert all(p.grad is None for p in model.parameters()) and emptied == [True]


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_the_lesson_catches_out_of_memory_and_the_notebook_goes_on(error, capsys):
    model = GPT(TINY)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    with out_of_memory_lesson("the manual-vs-SDPA timing", models=[model]) as oom:
        raise error
    printed = capsys.readouterr().out
    assert oom.happened and oom.error == str(error).splitlines()[0]
    assert printed.startswith(f"Out of memory in the manual-vs-SDPA timing: {oom.error}")
    for advice in ["smaller batch", "shorter context", "mixed precision", "SDPA", "run it again"]:
        assert advice in printed, f"the lesson should mention {advice!r}"
    assert all(p.grad is None for p in model.parameters())


def test_the_lesson_lets_other_errors_through_unchanged(capsys):
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError) as caught, out_of_memory_lesson() as oom:
        raise error
    assert caught.value is error and not oom.happened and capsys.readouterr().out == ""
    with out_of_memory_lesson() as oom:
        pass
    assert not oom.happened and oom.error is None and capsys.readouterr().out == ""


def test_the_lesson_frees_the_failed_step_before_emptying_the_cache(monkeypatch):
    # The traceback holds the failed forward's frames, and they hold its activations: the
    # lesson must let them go before it empties the CUDA cache, or the cache keeps them.
    freed_before_release = []
    activations = None

    def fake_release(*models):
        freed_before_release.append(activations() is None)

    def forward():
        nonlocal activations
        hidden = torch.ones(1000)
        activations = weakref.ref(hidden)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(gpu_budget, "release_memory", fake_release)
    with out_of_memory_lesson("a step"):
        forward()
    assert freed_before_release == [True]


def test_the_lesson_rejects_bad_arguments():
    with pytest.raises(ValueError, match="what must name the cell's work"):
        out_of_memory_lesson("")
    with pytest.raises(TypeError, match="models must be torch.nn.Module objects"):
        out_of_memory_lesson("a step", models=[torch.zeros(1)])


# ------------------------------------------------------------------ the one search


def trials_of(limit):
    """A `fits` for a device of `limit` samples, and the list of batches it was asked about."""
    asked: list[int] = []

    def fits_(batch: int) -> bool:
        asked.append(batch)
        return batch <= limit

    return fits_, asked


def test_a_notebook_run_halves_from_its_batch():
    fits_, asked = trials_of(5)
    assert largest_batch(fits_, 8, 8) == 4 and asked == [8, 4], "powers of two: 8, then 4"
    fits_, asked = trials_of(5)
    assert largest_batch(fits_, 4, 4) == 4 and asked == [4], "a batch that fits is kept"
    fits_, asked = trials_of(0)
    assert largest_batch(fits_, 8, 8) == 0 and asked == [8, 4, 2, 1]


def test_a_free_search_grows_then_bisects():
    fits_, asked = trials_of(37)
    assert largest_batch(fits_, 1, 100, bisect=True) == 37
    assert asked[:8] == [1, 2, 4, 8, 16, 32, 64, 48], "doubling until 64 fails, then the gap halved"
    fits_, asked = trials_of(1000)
    assert largest_batch(fits_, 1, 100, bisect=True) == 100 and asked[-1] == 100, "never past the ceiling"
    fits_, _ = trials_of(37)
    assert largest_batch(fits_, 100, 100, bisect=True) == 37, "halving first, then bisecting, finds the same"
    fits_, _ = trials_of(37)
    assert largest_batch(fits_, 1, 100) == 32, "without bisect: the largest power of two"


def test_the_search_rejects_bad_bounds():
    with pytest.raises(ValueError, match="start must be a positive int, got 0"):
        largest_batch(lambda b: True, 0, 8)
    with pytest.raises(ValueError, match=r"start \(16\) must be at most ceiling \(8\)"):
        largest_batch(lambda b: True, 16, 8)


def test_one_budget_for_every_search(monkeypatch):
    # By default every search plans on SAFETY_FRACTION of the memory available, on any device:
    # find_max_batch_size, fit_batch_size and fits agree on which batch fits.
    need = {b: estimate_memory(TINY, b).total for b in range(1, 65)}
    available = int(need[37] / SAFETY_FRACTION) + 1  # 37 fits, 38 does not
    assert int(SAFETY_FRACTION * available) < need[38]
    monkeypatch.setattr(gpu_budget, "available_memory", lambda device: available)
    assert find_max_batch_size(GPT(TINY), max_batch_size=64) == 37
    assert [b for b in need if fits(need[b], device="cpu")] == list(range(1, 38))
    assert fit_batch_size(TINY, 64, device="cpu")[0] == 32  # halving: 64, then 32


# ------------------------------------------------------------------ the largest batch, by estimate and by running


def test_find_max_batch_size_with_a_budget():
    model = GPT(TINY)
    budget = estimate_memory(TINY, 37, dtype=torch.float32).total
    assert find_max_batch_size(model, memory_budget=budget) == 37
    assert find_max_batch_size(model, memory_budget=budget - 1) == 36
    assert find_max_batch_size(model, memory_budget=10) == 0
    assert find_max_batch_size(model, memory_budget=10**15, max_batch_size=100) == 100
    assert find_max_batch_size(model) >= 1  # default budget: SAFETY_FRACTION of the RAM available
    # Shapes are all the estimate needs: GPT-2 medium on the meta device, against a T4's 15 GiB.
    medium = find_max_batch_size(meta_model("gpt2-medium", "sdpa"), memory_budget=15 * GIB, dtype=torch.float16)
    assert estimate_memory("gpt2-medium", medium, dtype=torch.float16).total <= 15 * GIB
    assert estimate_memory("gpt2-medium", medium + 1, dtype=torch.float16).total > 15 * GIB


@pytest.mark.parametrize("max_batch_size", [0, -1])
def test_find_max_batch_size_rejects_a_limit_below_one(max_batch_size):
    with pytest.raises(ValueError, match=f"max_batch_size must be a positive int, got {max_batch_size}"):
        find_max_batch_size(GPT(TINY), max_batch_size=max_batch_size)


def test_find_max_batch_size_rejects_bad_sizes():
    with pytest.raises(ValueError, match="memory_budget must be a positive int"):
        find_max_batch_size(GPT(TINY), memory_budget=0)
    with pytest.raises(ValueError, match="seq_len must be at most the context length"):
        find_max_batch_size(GPT(TINY), seq_len=100)


class FakeGPU:
    """A device memory of `limit` bytes and a training step that fills it as a real one does.

    Step k: the forward needs the weights, the gradients left by step k-1 (if any), AdamW's
    state (from step 0's update on) and `per_sample` bytes a sample; the backward drops the old
    gradients and makes new ones; the first update allocates the state. Past `limit`, the
    allocation fails with `error`. A step (and its state) left alive by an earlier trial, or
    gradients left on the model, count against the next trial: `leaks` records them.
    """

    WEIGHTS, GRADIENTS, STATE, PER_SAMPLE = 1_000, 1_000, 2_000, 100

    def __init__(self, model, limit, error):
        self.model, self.limit, self.error = model, limit, error
        self.states_alive = 0
        self.leaks: list[str] = []
        self.trials: list[int] = []
        self.fail_at: int | None = None  # a batch whose step has a bug (not a memory error)
        self.skipped_updates = 0  # updates fp16's gradient scaler skips at the start (overflow)

    def _grads(self):
        return self.GRADIENTS if any(p.grad is not None for p in self.model.parameters()) else 0

    def _use(self, extra):
        if self.WEIGHTS + self.states_alive * self.STATE + extra > self.limit:
            raise type(self.error)(*self.error.args)  # a new error each time, as a GPU raises

    def make_train_step(self, model, inputs, targets, dtype, lr=0.0):
        batch = inputs.shape[0]
        self.trials.append(batch)
        if self.states_alive or self._grads():
            self.leaks.append(f"batch {batch}: {self.states_alive} optimizer states alive, gradients {self._grads()} B")
        gpu, updates = self, []

        class State:  # AdamW's two moments, freed with the step that holds them
            def __init__(self):
                gpu.states_alive += 1

            def __del__(self):
                gpu.states_alive -= 1

        class Optimizer:
            state = None

            def step(self):
                if self.state is None:
                    self.state = State()
                    gpu._use(gpu._grads())  # the first update allocates the state

        def step():
            if batch == gpu.fail_at:
                raise ValueError("a bug in the step, not a memory error")
            activations = batch * gpu.PER_SAMPLE
            gpu._use(gpu._grads() + activations)  # forward: the last step's gradients still alive
            model.zero_grad(set_to_none=True)
            gpu._use(activations + gpu.GRADIENTS)  # backward: new gradients
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            updates.append(True)
            if len(updates) > gpu.skipped_updates:
                step.optimizer.step()

        step.optimizer = Optimizer()
        return step


OOM_ERRORS = [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
]


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["OutOfMemoryError", "cuBLAS"])
def test_find_max_batch_size_by_running_finds_the_steady_state(monkeypatch, error):
    model = GPT(TINY)
    limit = 10_000  # steady state: 1000 + 1000 + 2000 + 100·B <= 10000 -> B = 60
    gpu = FakeGPU(model, limit, error)
    monkeypatch.setattr(gpu_budget, "make_train_step", gpu.make_train_step)
    assert find_max_batch_size(model, by="running") == 60
    assert gpu.leaks == [], "every trial must start with no optimizer state and no gradients left by the last"
    assert {64, 61} <= set(gpu.trials), "trials past the limit ran, failed and were caught"


def test_one_step_is_not_steady_state_but_the_search_counts_the_state_anyway(monkeypatch):
    model = GPT(TINY)
    gpu = FakeGPU(model, 10_000, OOM_ERRORS[0])
    monkeypatch.setattr(gpu_budget, "make_train_step", gpu.make_train_step)
    # A naive trial of one step never sees AdamW's state in a forward: it would pass batch 80,
    # which runs out of memory in the second step of real training ...
    step = gpu.make_train_step(model, torch.zeros(80, 1), None, torch.float32)
    step()
    with pytest.raises(torch.cuda.OutOfMemoryError):
        step()
    del step
    # ... the search allocates the state before its steps, so even one step counts it.
    assert find_max_batch_size(model, by="running", steps=1) == 60


def test_find_max_batch_size_by_running_counts_the_state_a_scaler_delays(monkeypatch):
    # fp16's gradient scaler skips the first updates while the scaled gradients overflow:
    # AdamW then allocates nothing within a 3-step trial, unless the search makes it.
    model = GPT(TINY)
    gpu = FakeGPU(model, 10_000, OOM_ERRORS[0])
    gpu.skipped_updates = 5
    monkeypatch.setattr(gpu_budget, "make_train_step", gpu.make_train_step)
    assert find_max_batch_size(model, by="running") == 60
    assert gpu.leaks == []


def test_find_max_batch_size_by_running_re_raises_other_errors_and_frees(monkeypatch):
    model = GPT(TINY)
    gpu = FakeGPU(model, 10_000, OOM_ERRORS[0])
    gpu.fail_at = 4
    monkeypatch.setattr(gpu_budget, "make_train_step", gpu.make_train_step)
    with pytest.raises(ValueError, match="a bug in the step") as caught:
        find_max_batch_size(model, by="running")
    assert all(p.grad is None for p in model.parameters())
    del caught  # the error's traceback (kept for the reader's debugger) was the last holder of the step
    gc.collect()
    assert gpu.states_alive == 0


def test_find_max_batch_size_chooses_how_and_refuses_mixed_requests():
    model = GPT(TINY)
    with pytest.raises(ValueError, match="memory_budget is for by='estimate'"):
        find_max_batch_size(model, memory_budget=10**9, by="running")
    with pytest.raises(ValueError, match="by 'guess'; choose one of: 'running', 'estimate'"):
        find_max_batch_size(model, by="guess")
    with pytest.raises(ValueError, match="a meta-device model has only shapes"):
        find_max_batch_size(meta_model(TINY, "sdpa"), by="running")
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        find_max_batch_size(model, steps=0)


# ------------------------------------------------------------------ the notebooks' GPU runs


@pytest.mark.parametrize("run, need, limit", t4_plan(), ids=lambda x: x.name if isinstance(x, GPURun) else "")
def test_every_gpu_run_fits_a_t4_by_the_estimate(run, need, limit):
    assert limit == int(SAFETY_FRACTION * (T4_FREE_BYTES - run.alongside_memory))
    assert need <= limit, (
        f"{run.name} ({run.what}): batch {run.batch_size} × {run.seq_len} needs {need / GIB:.2f} GiB by the estimate, "
        f"more than {SAFETY_FRACTION:.0%} of a T4's {T4_FREE_BYTES / GIB} GiB free less {run.alongside_memory / GIB:.2f} GiB "
        "kept alongside: lower its batch in GPU_RUNS (and in the notebook)."
    )
    assert fits(run, budget=T4_FREE_BYTES)
    assert run.fit(budget=T4_FREE_BYTES)[0] == run.batch_size


def test_the_t4_plan_counts_every_model_on_the_gpu():
    run = GPU_RUNS["ch10-vocab"]  # two GPT-2 smalls timed in turns, chapter 10's model beside them
    one = estimate_memory(run.gpt_config(), 4, 1024, torch.float16, "sdpa", "cuda")
    assert run.memory() == one.total + one.model_state  # the second model holds its state, not activations
    assert run.alongside_memory == SMALL_WEIGHTS
    inference = GPU_RUNS["ch08-gpt2-generation"]  # ours and transformers' GPT-2, forward only, fp32
    assert inference.torch_dtype() == torch.float32 and inference.estimate().gradients == 0
    assert inference.memory() == 2 * SMALL_WEIGHTS + inference.estimate().logits
    attention = GPU_RUNS["ch04-attention-timing"]  # three attention modules, no GPT
    assert attention.estimate().optimizer == 0 and attention.memory() > 3 * 4 * 12 * 2048**2


def test_the_issue_s_configuration_is_refused_and_halved():
    # Chapter 10 used to time manual attention on GPT-2 small at batch 8 × 1024 in fp16:
    # 15.25 GiB by the estimate, beside the resident model, on a T4 with 14.5 GiB free.
    too_big = dataclasses.replace(GPU_RUNS["ch10-attention"], batch_size=8)
    assert not fits(too_big, budget=T4_FREE_BYTES)
    batch, reason = too_big.fit(budget=T4_FREE_BYTES)
    assert batch == 4
    assert reason.startswith("batch 8 → 4 × 1024: batch 8 needs ") and "less 0.5 GiB kept alongside" in reason


def fake_free(monkeypatch, gib):
    monkeypatch.setattr(gpu_budget, "available_memory", lambda device: int(gib * GIB))


def test_fit_batch_size_halves_until_the_estimate_fits_what_is_free(monkeypatch):
    fake_free(monkeypatch, 8)
    need = {b: estimate_memory("gpt2-small", b, 1024, torch.float16, "sdpa", "cuda").total for b in (2, 4, 8)}
    assert need[8] > 0.85 * 8 * GIB >= need[4]
    batch, reason = fit_batch_size("gpt2-small", 8, 1024, torch.float16, "sdpa", device="cuda")
    assert batch == 4
    assert reason == (
        f"batch 8 → 4 × 1024: batch 8 needs {need[8] / GIB:.1f} GiB by the estimate, more than 85% of the "
        f"8.0 GiB free on cuda; batch 4 needs {need[4] / GIB:.1f} GiB"
    )
    assert fit_batch_size("gpt2-small", 4, 1024, torch.float16, "sdpa", device="cuda") == (
        4,
        f"batch 4 × 1024 fits: the estimate, {need[4] / GIB:.1f} GiB, is within 85% of the 8.0 GiB free on cuda",
    )
    # two models at once: the second holds its weights, gradients and AdamW state (1.9 GiB)
    assert fit_batch_size("gpt2-small", 4, 1024, torch.float16, "sdpa", device="cuda", models=2)[0] == 2
    # a GPURun asks the same question of the memory free on the device
    assert GPU_RUNS["ch10-model"].fit("cuda")[0] == 4


def test_nothing_fits_is_an_out_of_memory_error_the_lesson_explains(monkeypatch, capsys):
    fake_free(monkeypatch, 0.5)
    with pytest.raises(EstimatedOutOfMemoryError, match=r"Not even batch 1 × 1024 fits: it needs .* GiB by the estimate"):
        fit_batch_size("gpt2-small", 8, 1024, torch.float16, device="cuda")
    with out_of_memory_lesson("chapter 10's model") as oom:
        GPU_RUNS["ch10-model"].fit("cuda")
    assert oom.happened and "Out of memory in chapter 10's model: Not even batch 1" in capsys.readouterr().out


def test_fit_batch_size_plans_with_a_budget_and_runs_anywhere():
    # A plan for a T4, made on a CPU: the budget, less what is kept alongside.
    batch, reason = fit_batch_size(
        "gpt2-small", 8, 1024, torch.float16, "manual", device="cuda", budget=T4_FREE_BYTES, resident=SMALL_WEIGHTS
    )
    assert batch == 4 and "of the 14.5 GiB budget less 0.5 GiB kept alongside" in reason
    # On a CPU, the RAM available: a tiny model fits as asked.
    batch, reason = fit_batch_size(TINY, 8, device="cpu")
    assert batch == 8 and reason.startswith("batch 8 × 16 fits") and "of RAM available on cpu" in reason


def test_fit_batch_size_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        fit_batch_size(TINY, 0, device="cpu")
    with pytest.raises(ValueError, match="seq_len must be at most the context length, 16, got 17"):
        fit_batch_size(TINY, 2, 17, device="cpu")
    with pytest.raises(ValueError, match="attention 'flash'"):
        fit_batch_size(TINY, 2, attention="flash", device="cpu")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        fit_batch_size(TINY, 2, dtype="fp16", device="cpu")
    with pytest.raises(ValueError, match="models must be a positive int"):
        fit_batch_size(TINY, 2, device="cpu", models=0)
    with pytest.raises(ValueError, match="resident is for a plan with a budget"):
        fit_batch_size(TINY, 2, device="cpu", resident=10)
    with pytest.raises(ValueError, match="budget must be a positive int"):
        fit_batch_size(TINY, 2, device="cuda", budget=0)


def test_fits_takes_a_run_or_bytes():
    limit = int(SAFETY_FRACTION * T4_FREE_BYTES)
    assert fits(limit, budget=T4_FREE_BYTES) and not fits(limit + 1, budget=T4_FREE_BYTES)
    assert fits(1, device="cpu")
    with pytest.raises(TypeError, match="fits takes a GPURun or a number of bytes"):
        fits("ch10-model", budget=T4_FREE_BYTES)


def test_a_gpu_run_checks_its_fields():
    base = dict(chapter=10, name="x", what="a test", batch_size=2, seq_len=128)
    assert GPURun(**base).torch_dtype() == torch.float16  # planned on a CPU: a T4's autocast dtype
    assert GPURun(**base, dtype="fp32").torch_dtype("cpu") == torch.float32
    for change, message in [
        (dict(dtype="bf16"), "Unknown GPURun.dtype 'bf16'; choose one of: 'autocast', 'fp32'"),
        (dict(attention="flash"), "Unknown GPURun.attention 'flash'"),
        (dict(module="mlp"), "Unknown GPURun.module 'mlp'"),
        (dict(config="gpt5"), "Unknown preset 'gpt5'"),
        (dict(alongside=("gpt5",)), "Unknown GPURun.alongside preset 'gpt5'"),
        (dict(seq_len=2048), "seq_len must be at most the context length, 1024, got 2048"),
        (dict(batch_size=0), "batch_size must be a positive int, got 0"),
        (dict(models_resident=0), "models_resident must be a positive int, got 0"),
        (dict(name=" "), "GPURun.name must be a non-empty str"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            GPURun(**{**base, **change})
    with pytest.raises(TypeError, match="unexpected keyword argument 'width'"):
        GPURun(**base, overrides=(("width", 3),))
    with pytest.raises(ValueError, match="Two GPU runs are named 'x'"):
        _run_table(GPURun(**base), GPURun(**base))


RUN_NAME = re.compile(r"""["']((?:ch\d\d|app[a-z])-[a-z0-9-]+)["']""")  # quoted, e.g. "ch10-attention", "appc-model"


def _runs_named_in(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return {name for c in cells if c["cell_type"] == "code" for name in RUN_NAME.findall("".join(c["source"]))}


def test_the_notebooks_name_what_they_run_on_a_gpu():
    # GPU_RUNS is the notebooks' own record of what they run on a GPU, and they read their
    # GPU sizes from it (GPU_RUNS["ch10-attention"].fit(device)): every run name a notebook
    # quotes is a run, and every run is named by its chapter's notebook.
    named = {path.name: _runs_named_in(path) for path in sorted(NOTEBOOKS.glob("*.ipynb"))}
    unknown = {nb: sorted(names - set(GPU_RUNS)) for nb, names in named.items() if names - set(GPU_RUNS)}
    assert not unknown, f"run names not in gptcourse.gpu_budget.GPU_RUNS: {unknown}"
    for run in GPU_RUNS.values():
        prefix = f"appendix_{run.chapter.lower()}_" if isinstance(run.chapter, str) else f"{run.chapter:02d}_"
        notebooks = [nb for nb in named if nb.startswith(prefix)]
        assert len(notebooks) == 1, f"{run.name}: no notebook (or several) for chapter {run.chapter}"
        assert run.name in named[notebooks[0]], f'{notebooks[0]} should take its GPU sizes from GPU_RUNS["{run.name}"]'
