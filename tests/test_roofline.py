"""Appendix C's roofline: op costs from shapes, decode's bytes, predicted and measured steps."""

from __future__ import annotations

import pytest
import torch

from gptcourse.config import GPTConfig
from gptcourse.flops import count_flops, num_parameters
from gptcourse.model import GPT
from gptcourse.roofline import (
    DecodeMeasurement,
    OpCost,
    decode_step_bytes,
    largest_memory_bound_batch,
    matmul_cost,
    measure_decode,
    op_costs,
    predict_decode,
)

TINY = GPTConfig(vocab_size=97, context_length=32, emb_dim=32, n_heads=4, n_layers=2)
# A CPU-like device: 20 GB/s, 200 GFLOP/s (ridge at 10 FLOP/byte)
BANDWIDTH, PEAK = 20e9, 200e9


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_matmul_flops_equal_chapter_9s_count(training, attention):
    costs = op_costs(TINY, 3, 16, training=training, attention=attention)
    count = count_flops(TINY, 3, 16, training=training).components()
    attn = costs["attn_kernel" if attention == "sdpa" else "attn_matmul"].flops
    assert costs["qkv"].flops == count["qkv_proj"]
    assert attn == count["attn_scores"] + count["attn_values"]
    assert costs["out_proj"].flops == count["out_proj"]
    assert costs["mlp"].flops == count["ff_up"] + count["ff_down"]
    assert costs["lm_head"].flops == count["lm_head"]
    assert ("loss" in costs) == training
    assert ("softmax" in costs) == (attention == "manual")


def test_decode_step_flops_are_two_per_weight_per_sequence_plus_attention():
    b, ctx = 5, 20
    costs = op_costs(TINY, b, 1, ctx)
    matmuls = sum(costs[k].flops for k in ("qkv", "attn_kernel", "out_proj", "mlp", "lm_head"))
    keys = ctx + 1  # the new token attends to itself too
    expected = 2 * b * num_parameters(TINY, "matmul") + 4 * b * TINY.n_layers * keys * TINY.emb_dim
    assert matmuls == expected
    assert costs["embedding"].flops == b * TINY.emb_dim  # one add per number


def test_decode_matmul_intensity_is_half_a_flop_per_byte_at_batch_one_and_grows():
    d, n = 768, 3072
    one = matmul_cost(1, d, n, size=4)
    assert one.intensity == pytest.approx(2 * d * n / (4 * (d * n + d + n)))
    assert one.intensity == pytest.approx(0.5, rel=0.01)
    intensities = [matmul_cost(b, d, n, size=4).intensity for b in (1, 4, 16, 64)]
    assert intensities == sorted(intensities) and intensities[-1] > 20 * intensities[0]
    cfg = GPTConfig.from_preset("gpt2-small")
    mlp = [op_costs(cfg, b, 1, 128)["mlp"].intensity for b in (1, 8)]
    assert mlp[0] == pytest.approx(0.5, rel=0.01) and mlp[1] > 6 * mlp[0]
    assert op_costs(cfg, 1, 1, 128, dtype=torch.bfloat16)["mlp"].intensity == pytest.approx(2 * mlp[0])


def test_manual_attention_has_lower_intensity_than_sdpa():
    cfg = GPTConfig.from_preset("gpt2-small")
    for training in (False, True):
        sdpa = op_costs(cfg, 4, 256, training=training)
        manual = op_costs(cfg, 4, 256, training=training, attention="manual")
        assert manual["attn_matmul"].flops == sdpa["attn_kernel"].flops
        assert (manual["attn_matmul"] + manual["softmax"]).intensity < sdpa["attn_kernel"].intensity / 4
        assert manual["softmax"].intensity < 3


def test_elementwise_ops_move_each_element_twice_forward():
    n, d = 2 * 8, TINY.emb_dim
    costs = op_costs(TINY, 2, 8)
    assert costs["gelu"] == OpCost(8 * TINY.n_layers * n * 4 * d, 2 * 4 * TINY.n_layers * n * 4 * d)
    assert costs["layer_norm"].bytes == 2 * 4 * (2 * TINY.n_layers + 1) * n * d
    train = op_costs(TINY, 2, 8, training=True)
    assert train["gelu"].flops == 3 * costs["gelu"].flops and train["gelu"].bytes == 5 * costs["gelu"].bytes // 2
    assert train["loss"].bytes == 3 * n * TINY.vocab_size * 4


def test_op_costs_errors_name_the_problem():
    with pytest.raises(ValueError, match="context length"):
        op_costs(TINY, 1, 1, 32)
    with pytest.raises(ValueError, match="attention"):
        op_costs(TINY, 1, 4, attention="flash")
    with pytest.raises(ValueError, match="past_tokens=0"):
        op_costs(TINY, 1, 1, 4, training=True)
    with pytest.raises(TypeError, match="torch.dtype"):
        op_costs(TINY, 1, 4, dtype="float32")


def test_decode_step_bytes_weights_are_the_parameters_read_once():
    b, ctx = 3, 10
    parts = decode_step_bytes(TINY, b, ctx)
    every = GPT(TINY).num_parameters()
    position_table = TINY.context_length * TINY.emb_dim
    assert 0 <= every * 4 - parts["weights"] <= position_table * 4
    assert parts["weights"] == (every - position_table + b * TINY.emb_dim) * 4
    assert parts["kv_cache"] == 2 * TINY.n_layers * b * (ctx + 1) * TINY.emb_dim * 4
    assert 0 < parts["activations"] < parts["weights"]
    half = decode_step_bytes(TINY, b, ctx, torch.bfloat16)
    assert half == {k: v // 2 for k, v in parts.items()}
    cfg = GPTConfig.from_preset("gpt2-small")
    small = decode_step_bytes(cfg, 1, 128)
    assert small["activations"] < small["weights"] / 100  # a decode step is its weights


def test_predict_decode_is_memory_bound_small_and_compute_bound_huge():
    cfg = GPTConfig.from_preset("gpt2-small")
    preds = [predict_decode(cfg, b, 128, BANDWIDTH, PEAK) for b in (1, 2, 4)]
    assert all(p.bound == "memory" for p in preds)
    speeds = [p.tokens_per_second for p in preds]
    assert speeds == sorted(speeds) and speeds[-1] > 3 * speeds[0]
    one = preds[0]
    assert one.seconds == one.memory_seconds == one.bytes / BANDWIDTH
    assert one.tokens_per_second == pytest.approx(BANDWIDTH / (num_parameters(cfg) * 4), rel=0.05)
    huge = predict_decode(cfg, 4096, 128, BANDWIDTH, PEAK)
    assert huge.bound == "compute" and huge.seconds == huge.compute_seconds == huge.flops / PEAK
    with pytest.raises(ValueError, match="bandwidth"):
        predict_decode(cfg, 1, 128, 0.0, PEAK)


def test_largest_memory_bound_batch_is_the_switch_point():
    cfg = GPTConfig.from_preset("gpt2-small")
    for context in (64, 128):
        b = largest_memory_bound_batch(cfg, context, BANDWIDTH, PEAK)
        assert b >= 1
        assert predict_decode(cfg, b, context, BANDWIDTH, PEAK).bound == "memory"
        assert predict_decode(cfg, b + 1, context, BANDWIDTH, PEAK).bound == "compute"
    # At a long context each sequence's cache costs more bytes than its FLOPs can hide
    # (about 3.4 FLOP/byte < the ridge's 10): memory-bound at every batch.
    assert largest_memory_bound_batch(cfg, 1000, BANDWIDTH, PEAK, cap=4096) == 4096
    assert largest_memory_bound_batch(cfg, 128, BANDWIDTH, 1e30, cap=50) == 50
    assert largest_memory_bound_batch(cfg, 128, 1e30, PEAK) == 0


class RecordingGPT(GPT):
    """A GPT that notes how many tokens its cache held at each call."""

    def forward(self, idx, cache=None, last_only=False):
        self.cached.append(len(cache))
        return super().forward(idx, cache=cache, last_only=last_only)


def test_measure_decode_times_steps_from_the_same_cache():
    torch.manual_seed(0)
    model = RecordingGPT(TINY).train()
    model.cached = []
    gen = torch.Generator().manual_seed(0)
    m = measure_decode(model, 3, 20, repeats=3, warmup=1, generator=gen)
    assert model.cached == [20] * 4  # every call, warm-up included, starts from 20 tokens
    assert model.training  # its mode given back
    assert len(m.step_seconds) == 3 and all(t > 0 for t in m.step_seconds)
    assert m.bytes == sum(decode_step_bytes(TINY, 3, 20).values())
    assert m.tokens_per_second == pytest.approx(3 / m.seconds)
    assert m.mbu(m.achieved_bandwidth) == pytest.approx(1.0)
    for context in (32, 100):  # 31 + 1 new token still fits
        with pytest.raises(ValueError, match="context_length 32"):
            measure_decode(model, 1, context)


def test_decode_measurement_median():
    m = DecodeMeasurement(batch_size=2, context=8, step_seconds=(0.3, 0.1, 0.2), bytes=1000)
    assert m.seconds == 0.2 and m.tokens_per_second == pytest.approx(10) and m.achieved_bandwidth == pytest.approx(5000)
    assert m.mbu(10000) == pytest.approx(0.5)


def test_op_classes_are_the_profilers():
    profiling = pytest.importorskip("gptcourse.profiling")
    for attention in ("sdpa", "manual"):
        assert set(op_costs(TINY, 1, 8, training=True, attention=attention)) <= set(profiling.OP_CLASSES)
