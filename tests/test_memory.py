"""Memory of a training step: the estimate, checked against autograd, and the largest batch (chapter 10)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from gptcourse import GPT, GPTConfig, memory
from gptcourse.attention import MultiHeadAttention, SDPAMultiHeadAttention
from gptcourse.flops import meta_model
from gptcourse.memory import attention_benchmark_memory, estimate_memory, find_max_batch_size, measure_saved_activations
from gptcourse.timing import make_train_step

TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


def test_memory_estimate_parts():
    est = estimate_memory("gpt2-small", batch_size=8, seq_len=1024)
    n = 124_439_808
    assert est.weights == 4 * n and est.gradients == 4 * n and est.optimizer == 8 * n
    parts = est.to_dict()
    assert parts.pop("total") == est.total == sum(parts.values())
    # more tokens, more activations; manual attention stores the T×T weights
    assert estimate_memory("gpt2-small", 16, 1024).activations > est.activations
    assert estimate_memory("gpt2-small", 8, 1024, attention="manual").activations > est.activations
    # roughly 16 GiB for GPT-2 small at batch 8 × 1024 in fp32 (what trips a T4)
    assert 8 * 2**30 < est.total < 24 * 2**30
    # inference keeps no gradients, optimizer state or activations
    forward = estimate_memory("gpt2-small", 8, 1024, training=False)
    assert forward.weights == est.weights and forward.gradients == forward.optimizer == forward.activations == 0


@pytest.mark.parametrize("attention", ["manual", "sdpa"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_activation_estimate_matches_saved_tensors(attention, dtype):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=500, context_length=32, emb_dim=48, n_heads=3, n_layers=2)
    model = GPT(cfg, attention=attention)
    measured = measure_saved_activations(model, batch_size=3, dtype=dtype)
    estimated = estimate_memory(cfg, 3, dtype=dtype, attention=attention, device_type="cpu").activations
    tolerance = 0.02 if dtype == torch.float32 else 0.10
    assert abs(estimated - measured) <= tolerance * measured, f"estimated {estimated:,} B, autograd saved {measured:,} B"


@pytest.mark.parametrize("batch_size", [0, -3])
def test_estimate_rejects_an_empty_batch(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive int, got {batch_size}"):
        estimate_memory(TINY, batch_size)


def test_estimate_rejects_sequences_longer_than_the_context():
    with pytest.raises(ValueError, match="seq_len must be at most the context length, 16, got 17"):
        estimate_memory(TINY, 2, seq_len=17)


def test_estimate_rejects_other_bad_arguments():
    with pytest.raises(ValueError, match="attention 'flash'; choose one of: 'sdpa', 'manual'"):
        estimate_memory(TINY, 2, attention="flash")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        estimate_memory(TINY, 2, dtype="fp16")


def test_find_max_batch_size_with_a_budget():
    model = GPT(TINY)
    budget = estimate_memory(TINY, 37, dtype=torch.float32).total
    assert find_max_batch_size(model, memory_budget=budget) == 37
    assert find_max_batch_size(model, memory_budget=budget - 1) == 36
    assert find_max_batch_size(model, memory_budget=10) == 0
    assert find_max_batch_size(model, memory_budget=10**15, max_batch_size=100) == 100
    assert find_max_batch_size(model) >= 1  # default budget: half the free memory
    # Shapes are all the estimate needs: GPT-2 medium on the meta device, against a T4's 15 GiB.
    medium = find_max_batch_size(meta_model("gpt2-medium", "sdpa"), memory_budget=15 * 2**30, dtype=torch.float16)
    assert estimate_memory("gpt2-medium", medium, dtype=torch.float16).total <= 15 * 2**30
    assert estimate_memory("gpt2-medium", medium + 1, dtype=torch.float16).total > 15 * 2**30


@pytest.mark.parametrize("max_batch_size", [0, -1])
def test_find_max_batch_size_rejects_a_limit_below_one(max_batch_size):
    with pytest.raises(ValueError, match=f"max_batch_size must be a positive int, got {max_batch_size}"):
        find_max_batch_size(GPT(TINY), max_batch_size=max_batch_size)


def test_find_max_batch_size_rejects_bad_sizes():
    with pytest.raises(ValueError, match="memory_budget must be a positive int"):
        find_max_batch_size(GPT(TINY), memory_budget=0)
    with pytest.raises(ValueError, match="seq_len must be at most the context length"):
        find_max_batch_size(GPT(TINY), seq_len=100)


class LiveBytes(TorchDispatchMode):
    """The peak of the bytes held by live tensors while it is on: ``max_memory_allocated`` for a CPU.

    Every tensor an operation returns is counted until its storage is freed (a weakref
    finalizer); the tensors made before (weights, inputs) are counted by `track`.
    """

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def track(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.live or storage.nbytes() == 0:
            return
        self.live[key] = storage.nbytes()
        self.now += storage.nbytes()
        self.peak = max(self.peak, self.now)
        weakref.finalize(storage, self._release, key)

    def _release(self, key):
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


@pytest.mark.parametrize(
    "sizes, dtype, attention",
    [
        ((5000, 64, 2, 4, 64), torch.float32, "sdpa"),  # the (B, T, vocab) tensors dominate, as in GPT-2
        ((5000, 64, 2, 4, 64), torch.float32, "manual"),
        ((5000, 64, 2, 4, 64), torch.bfloat16, "sdpa"),
        ((500, 128, 4, 4, 128), torch.bfloat16, "manual"),  # the layers dominate
    ],
)
def test_estimate_bounds_the_live_peak_of_three_training_steps(sizes, dtype, attention):
    # The whole step, steady state included (AdamW's state from step 1, gradients alive in
    # step 2's forward): the estimate is at most a few percent under the measured peak of
    # live tensors (the activations' own bf16 error) and at most 10% over it.
    vocab, width, layers, batch, seq = sizes
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=vocab, context_length=seq, emb_dim=width, n_heads=4, n_layers=layers)
    model = GPT(cfg, attention=attention)
    x = torch.randint(0, vocab, (batch, seq))
    live = LiveBytes()
    with live:
        for t in [*model.parameters(), x]:
            live.track(t)
        step = make_train_step(model, x, x, dtype)
        for _ in range(3):
            step()
    estimated = estimate_memory(cfg, batch, seq, dtype=dtype, attention=attention, device_type="cpu").total
    low = 1.0 if dtype == torch.float32 else 0.97
    assert low * live.peak <= estimated <= 1.10 * live.peak, f"estimated {estimated:,} B, live peak {live.peak:,} B"


@pytest.mark.parametrize("kind, module", [("manual", MultiHeadAttention), ("sdpa", SDPAMultiHeadAttention)])
def test_attention_benchmark_memory_bounds_the_live_peak(kind, module):
    # Chapter 4's timing: forward and backward of one layer, twice, in fp32.
    batch, heads, seq, width = 2, 4, 256, 64
    torch.manual_seed(0)
    layer, x = module(width, width, seq, n_heads=heads), torch.randn(batch, seq, width)
    live = LiveBytes()
    with live:
        for t in [*layer.parameters(), x]:
            live.track(t)
        for _ in range(2):
            layer.zero_grad(set_to_none=True)
            layer(x).sum().backward()
    estimate = attention_benchmark_memory(batch, heads, seq, width, torch.float32, kind)
    assert estimate.optimizer == estimate.logits == 0 and estimate.gradients == estimate.weights
    assert live.peak <= estimate.total <= 2 * live.peak, f"estimated {estimate.total:,} B, live peak {live.peak:,} B"
    # the T×T matrices make manual attention grow as T², SDPA only as T
    longer = attention_benchmark_memory(batch, heads, 4 * seq, width, torch.float32, kind).total
    assert longer > (8 if kind == "manual" else 3) * estimate.total


def test_attention_benchmark_memory_rejects_bad_sizes():
    with pytest.raises(ValueError, match="seq_len must be a positive int, got 0"):
        attention_benchmark_memory(2, 4, 0, 64)
    with pytest.raises(ValueError, match=r"emb_dim \(65\) must be divisible by n_heads \(4\)"):
        attention_benchmark_memory(2, 4, 8, 65)
    with pytest.raises(ValueError, match="attention 'flash'"):
        attention_benchmark_memory(2, 4, 8, 64, attention="flash")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        attention_benchmark_memory(2, 4, 8, 64, dtype="fp32")


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
    monkeypatch.setattr(memory, "make_train_step", gpu.make_train_step)
    assert find_max_batch_size(model, by="running") == 60
    assert gpu.leaks == [], "every trial must start with no optimizer state and no gradients left by the last"
    assert {64, 61} <= set(gpu.trials), "trials past the limit ran, failed and were caught"


def test_one_step_is_not_steady_state_but_the_search_counts_the_state_anyway(monkeypatch):
    model = GPT(TINY)
    gpu = FakeGPU(model, 10_000, OOM_ERRORS[0])
    monkeypatch.setattr(memory, "make_train_step", gpu.make_train_step)
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
    monkeypatch.setattr(memory, "make_train_step", gpu.make_train_step)
    assert find_max_batch_size(model, by="running") == 60
    assert gpu.leaks == []


def test_find_max_batch_size_by_running_re_raises_other_errors_and_frees(monkeypatch):
    model = GPT(TINY)
    gpu = FakeGPU(model, 10_000, OOM_ERRORS[0])
    gpu.fail_at = 4
    monkeypatch.setattr(memory, "make_train_step", gpu.make_train_step)
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
