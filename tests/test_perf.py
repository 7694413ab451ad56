"""Peak FLOP/s lookup, memory estimates, and the timing helpers (chapter 10), on a CPU."""

from __future__ import annotations

import math

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.perf import (
    PEAKS,
    UnknownDeviceError,
    estimate_memory,
    find_max_batch_size,
    load_results,
    match_device,
    measure_peak_flops,
    measure_saved_activations,
    measure_throughput,
    measure_training,
    peak_flops,
    record_result,
)

TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


@pytest.mark.parametrize(
    ("name", "dtype", "expected"),
    [
        ("Tesla T4", torch.float16, 65e12),
        ("Tesla T4", torch.float32, 8.1e12),
        ("Tesla V100-SXM2-16GB", torch.float16, 125e12),
        ("Tesla V100-SXM2-32GB", "fp32", 15.7e12),
        ("Tesla V100-PCIE-16GB", torch.float16, 112e12),
        ("NVIDIA A100-SXM4-40GB", torch.bfloat16, 312e12),
        ("NVIDIA A100-SXM4-80GB", torch.float16, 312e12),
        ("NVIDIA A100 80GB PCIe", "tf32", 156e12),
        ("NVIDIA A100-PCIE-40GB", torch.float32, 19.5e12),
        ("NVIDIA A10G", torch.bfloat16, 70e12),
        ("NVIDIA A10", torch.bfloat16, 125e12),
        ("NVIDIA L4", torch.bfloat16, 121e12),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
        ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
        ("NVIDIA H200", torch.bfloat16, 989e12),
        ("Tesla P100-PCIE-16GB", torch.float16, 18.7e12),
        ("Tesla P100-SXM2-16GB", torch.float16, 21.2e12),
        ("A100 SXM", "bf16", 312e12),  # a PEAKS key works too
    ],
)
def test_peak_lookup(name, dtype, expected):
    assert peak_flops(name, dtype) == pytest.approx(expected)


def test_every_peak_has_a_source():
    for peaks in PEAKS.values():
        assert peaks.source.startswith("https://")
        assert all(v > 1e12 for v in peaks.flops.values())


def test_t4_refuses_bf16_and_says_what_to_do():
    with pytest.raises(ValueError, match="fp16 with a gradient scaler"):
        peak_flops("Tesla T4", torch.bfloat16)
    with pytest.raises(ValueError, match="no tf32"):
        peak_flops("Tesla T4", "tf32")
    with pytest.raises(ValueError, match="no bf16"):
        peak_flops("Tesla P100-PCIE-16GB", "bf16")


def test_unknown_device_asks_for_the_peak():
    with pytest.raises(UnknownDeviceError, match="peak="):
        peak_flops("NVIDIA GeForce RTX 3090", torch.bfloat16)
    with pytest.raises(UnknownDeviceError, match="measure_peak_flops"):
        peak_flops("cpu", torch.float32)
    assert peak_flops("NVIDIA GeForce RTX 3090", torch.bfloat16, peak=71e12) == 71e12
    with pytest.raises(ValueError, match="positive"):
        peak_flops("Tesla T4", torch.float16, peak=-1)
    with pytest.raises(ValueError, match="dtype"):
        peak_flops("Tesla T4", torch.int8)


def test_name_matching_does_not_confuse_neighbours():
    assert match_device("NVIDIA A10G") == "A10G"
    assert match_device("NVIDIA A10") == "A10"
    assert match_device("NVIDIA A100-SXM4-40GB") == "A100 SXM"
    assert match_device("NVIDIA H100 NVL") == "H100 NVL"
    assert match_device("NVIDIA H200 NVL") == "H200 NVL"
    assert match_device("Tesla V100S-PCIE-32GB") == "V100S PCIe"
    assert match_device("NVIDIA GeForce RTX 4090") is None


def test_memory_estimate_parts():
    est = estimate_memory("gpt2-small", batch_size=8, seq_len=1024)
    n = 124_439_808
    assert est.weights == 4 * n and est.gradients == 4 * n and est.optimizer == 8 * n
    assert est.total == sum(v for k, v in est.as_dict().items() if k != "total")
    # more tokens, more activations; manual attention stores the T×T weights
    assert estimate_memory("gpt2-small", 16, 1024).activations > est.activations
    assert estimate_memory("gpt2-small", 8, 1024, attention="manual").activations > est.activations
    # roughly 16 GiB for GPT-2 small at batch 8 × 1024 in fp32 (what trips a T4)
    assert 8 * 2**30 < est.total < 24 * 2**30


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


def test_measured_peak_is_positive():
    flops = measure_peak_flops("cpu", torch.float32, n=256, repeats=3, warmup=1, refresh=True)
    assert math.isfinite(flops) and flops > 1e6


def test_throughput_on_a_tiny_model():
    torch.manual_seed(0)
    model = GPT(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens_per_second, mfu = measure_throughput(model, TINY, batch_size=2, steps=2, warmup=1)
    assert math.isfinite(tokens_per_second) and tokens_per_second > 0
    assert math.isfinite(mfu) and mfu > 0
    for k, v in model.state_dict().items():  # measuring does not train the model
        torch.testing.assert_close(v, before[k], msg=f"{k} changed while measuring")


def test_measure_training_reports_everything():
    model = GPT(TINY, attention="manual")
    m = measure_training(model, batch_size=2, seq_len=8, steps=3, warmup=1)
    assert len(m.step_times) == 3 and m.step_time > 0 and m.spread >= 0
    assert m.flops_per_step == 3 * (m.flops_per_step // 3)
    assert m.peak_source == "measured matmul" and m.mfu == m.mfu_vs_measured
    assert m.tokens_per_second == pytest.approx(16 / m.step_time)
    assert m.peak_memory is None  # no CUDA here
    given = measure_training(model, batch_size=2, seq_len=8, steps=2, warmup=1, peak=1e12)
    assert given.peak_source == "given" and given.mfu_vs_measured is not None
    assert "MFU" in given.summary()


def test_find_max_batch_size_with_a_budget():
    model = GPT(TINY)
    budget = estimate_memory(TINY, 37, dtype=torch.float32).total
    assert find_max_batch_size(model, memory_budget=budget) == 37
    assert find_max_batch_size(model, memory_budget=budget - 1) == 36
    assert find_max_batch_size(model, memory_budget=10) == 0
    assert find_max_batch_size(model, memory_budget=10**15, max_batch_size=100) == 100
    assert find_max_batch_size(model) >= 1  # default budget: half the free memory


def test_results_file_round_trip(tmp_path):
    path = tmp_path / "results.csv"
    assert load_results(path) == []
    record_result({"device": "Tesla T4", "dtype": "fp16", "tokens_per_second": 123.0, "mfu": 0.3}, path)
    record_result({"device": "NVIDIA A100-SXM4-40GB", "dtype": "bf16"}, path)
    rows = load_results(path)
    assert [r["device"] for r in rows] == ["Tesla T4", "NVIDIA A100-SXM4-40GB"]
    assert rows[0]["mfu"] == "0.3"
    with pytest.raises(ValueError, match="Unknown result field"):
        record_result({"speed": 1}, path)
    assert isinstance(load_results(), list)  # the shipped file (may be empty)
