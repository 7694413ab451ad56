"""Memory of a training step: the estimate, checked against autograd (chapter 10)."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from gptcourse import GPT, GPTConfig
from gptcourse.attention import MultiHeadAttention, SDPAMultiHeadAttention
from gptcourse.memory import attention_benchmark_memory, estimate_memory, measure_saved_activations
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
