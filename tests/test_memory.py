"""Memory of a training step: the estimate, checked against autograd, and the largest batch (chapter 10)."""

from __future__ import annotations

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import meta_model
from gptcourse.memory import estimate_memory, find_max_batch_size, measure_saved_activations

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
