"""gptcourse.perf: the SPEC's short spelling of chapter 10's measuring API, re-exported."""

from __future__ import annotations

import math

import torch

from gptcourse import GPT


def test_the_spec_calls_work_through_the_facade():
    from gptcourse.flops import calculate_flops
    from gptcourse.perf import measure_throughput, peak_flops

    config = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_layers": 1, "n_heads": 2, "drop_rate": 0.1}
    model = GPT(config)
    tokens_per_second, mfu = measure_throughput(model, config, batch_size=2, steps=1, warmup=0)
    assert math.isfinite(tokens_per_second) and tokens_per_second > 0
    # MFU is the model's FLOP/s over the peak: on a CPU, a measured one, so it lies in (0, 1] give or take noise
    assert 0 < mfu < 5
    assert calculate_flops(model, config) == 3 * 2 * 16 * (12 * 32 * 32 + 2 * 16 * 32) + 3 * 2 * 16 * 32 * 97
    assert peak_flops("Tesla T4", torch.float16) == 65e12
