"""Timing: warm-up, several samples, the training step everything times (chapter 10), on a CPU."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from gptcourse import GPT, GPTConfig, timing
from gptcourse.timing import (
    Comparison,
    compare,
    fused_adamw_supported,
    make_train_step,
    measure_bandwidth,
    measure_peak_flops,
    synchronize,
    time_calls,
)
from gptcourse.train import cross_entropy_loss

TINY = GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=1)


def test_time_calls_warms_up_then_times_each_call():
    calls = []

    def fn():
        time.sleep(0.05 if not calls else 0.002)  # a slow first call, as a GPU's first step
        calls.append(1)

    times = time_calls(fn, "cpu", repeats=4, warmup=1)
    assert len(calls) == 5 and len(times) == 4
    assert max(times) < 0.04, "the slow first call is warm-up, never timed"
    assert all(t >= 0.002 for t in times)
    assert time_calls(fn, "cpu", repeats=0, warmup=2) == []  # warm-up only


def test_time_calls_rejects_negative_counts():
    with pytest.raises(ValueError, match="repeats must be an int >= 0, got -1"):
        time_calls(lambda: None, "cpu", repeats=-1)
    with pytest.raises(TypeError, match="warmup"):
        time_calls(lambda: None, "cpu", warmup=1.5)


def test_train_step_does_the_work_but_leaves_the_weights():
    torch.manual_seed(0)
    model = GPT(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 64, (2, 8))
    step = make_train_step(model, x, x, torch.float32)
    step()
    assert all(p.grad is not None for p in model.parameters()), "a full backward pass"
    assert step.optimizer.state, "AdamW keeps its moments"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"lr=0: {k} must not change")
    synchronize("cpu")  # nothing to wait for on a CPU


def test_train_step_with_a_learning_rate_lowers_the_loss():
    torch.manual_seed(0)
    model = GPT(TINY)
    x, y = torch.randint(0, 64, (4, 8)), torch.randint(0, 64, (4, 8))
    start = cross_entropy_loss(model(x), y).item()
    step = make_train_step(model, x, y, torch.float32, lr=1e-2)
    for _ in range(10):
        step()
    assert cross_entropy_loss(model(x), y).item() < start - 0.5


def test_train_step_with_the_chunked_loss_computes_the_same_gradients():
    torch.manual_seed(0)
    plain, chunked = GPT(TINY), GPT(TINY)
    chunked.load_state_dict(plain.state_dict())
    x, y = torch.randint(0, 64, (2, 8)), torch.randint(0, 64, (2, 8))
    make_train_step(plain, x, y, torch.float32)()
    make_train_step(chunked, x, y, torch.float32, loss_chunk=5)()  # 16 rows: chunks of 5, 5, 5 and 1
    theirs = dict(plain.named_parameters())
    for name, p in chunked.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(TypeError, match="loss_chunk must be a positive int"):
        make_train_step(chunked, x, y, torch.float32, loss_chunk=2.5)


def test_measured_peak_is_remembered_until_refreshed():
    first = measure_peak_flops("cpu", torch.float32, sizes=(64, 128), repeats=3, warmup=1, refresh=True)
    assert math.isfinite(first) and first > 1e6
    assert measure_peak_flops("cpu", torch.float32, sizes=(64, 128)) == first  # one denominator for a whole notebook
    with pytest.raises(ValueError, match="sizes must be a positive int"):
        measure_peak_flops("cpu", sizes=(0,))
    with pytest.raises(ValueError, match="sizes: give at least one"):
        measure_peak_flops("cpu", sizes=())


def test_the_peak_is_the_fastest_size_not_the_largest(monkeypatch):
    # On a CPU a matrix that fits the caches can run faster than a large one: the roof is the
    # fastest size measured, and the roofline's points are the very same measurements.
    seconds = {8: 1e-6, 16: 2e-6, 32: 1e-4}  # 32×32 is the slowest per FLOP
    monkeypatch.setattr(timing, "time_calls", lambda fn, device, repeats, warmup: [seconds[fn().shape[0]]])
    monkeypatch.setattr(timing, "_MEASURED_MATMULS", {})
    by_size = timing.measure_matmuls("cpu", torch.float32, sizes=(8, 16, 32))
    assert by_size == {n: 2 * n**3 / seconds[n] for n in (8, 16, 32)}
    peak = measure_peak_flops("cpu", torch.float32, sizes=(8, 16, 32))
    assert peak == by_size[16] == max(by_size.values()), "the fastest size, 16, not the largest, 32"
    assert timing.PEAK_SIZES["cpu"][-1] == 1024 and timing.PEAK_SIZES["cuda"][-1] == 8192  # the chapter's sweep


def test_rotation_puts_every_candidate_in_every_place():
    names = ["a", "b", "c"]
    orders = [timing.rotation(names, r) for r in range(3)]
    assert orders == [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")]
    assert all(sorted(order[i] for order in orders) == names for i in range(3))
    assert timing.rotation(names, 4) == ("b", "c", "a") and timing.rotation([], 2) == ()


def test_bandwidth_is_positive():
    assert measure_bandwidth("cpu", n_bytes=2**20, repeats=3) > 1e6
    with pytest.raises(ValueError, match="n_bytes"):
        measure_bandwidth("cpu", n_bytes=0)


def test_fused_adamw_where_supported():
    model = GPT(TINY)
    x = torch.randint(0, 64, (2, 8))
    if fused_adamw_supported("cpu"):  # torch >= 2.4
        step = make_train_step(model, x, x, torch.float32, fused=True)
        step()
        assert step.optimizer.defaults["fused"] is True
    else:
        with pytest.raises(ValueError, match="fused=True: this PyTorch .* has no fused AdamW for cpu"):
            make_train_step(model, x, x, torch.float32, fused=True)
    assert make_train_step(model, x, x, torch.float32).optimizer.defaults["fused"] is None  # PyTorch's default


def test_an_fp32_peak_measured_with_tf32_is_not_reused_without(monkeypatch):
    # A TF32 matmul peak is several times the fp32 one on an A100: the MFU of fp32 work must not
    # be divided by it. The remembered peaks are keyed by the TF32 setting too.
    seconds = iter([1.0, 0.5, 0.25])
    monkeypatch.setattr(timing, "time_calls", lambda fn, device, repeats, warmup: [next(seconds)])
    monkeypatch.setattr(timing, "_MEASURED_MATMULS", {})
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        fp32 = measure_peak_flops("cpu", torch.float32, sizes=(8,))
        torch.set_float32_matmul_precision("high")
        tf32 = measure_peak_flops("cpu", torch.float32, sizes=(8,))
        assert tf32 == 2 * fp32, "measured again, not the fp32 figure"
        assert measure_peak_flops("cpu", torch.bfloat16, sizes=(8,)) == 4 * fp32
        torch.set_float32_matmul_precision("highest")
        assert measure_peak_flops("cpu", torch.float32, sizes=(8,)) == fp32, "each setting's figure is remembered"
    finally:
        torch.set_float32_matmul_precision(before)


# ---- compare: several models timed side by side, fairly


class Slower(nn.Module):
    """A model that takes `seconds` longer per forward, and counts its calls."""

    def __init__(self, model: nn.Module, seconds: float):
        super().__init__()
        self.model, self.seconds, self.calls = model, seconds, 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.seconds)
        return self.model(idx)


def test_compare_rotates_the_order_every_round():
    torch.manual_seed(0)
    models = {"ours": Slower(GPT(TINY), 0.0), "slow": Slower(GPT(TINY), 0.25), "third": Slower(GPT(TINY), 0.0)}
    x = torch.randint(0, 64, (2, 8))
    result = compare(models, x, x, rounds=3, steps_per_round=1, warmup=1)
    assert result.orders == (("ours", "slow", "third"), ("slow", "third", "ours"), ("third", "ours", "slow"))
    assert all(m.calls == 1 + 3 * 1 for m in models.values()), "warm-up, then one step a round"
    assert all(len(result.step_times[name]) == 3 and len(result.all_step_times(name)) == 3 for name in models)
    assert result.ratio("slow") > 1, "a model 0.25 s slower per step is slower"
    assert result.ratio("ours") == 1.0 and result.reference == "ours"
    assert result.peak_memory == {"ours": None, "slow": None, "third": None}  # measured on a GPU only


def test_ratios_are_taken_round_by_round():
    # A machine that slows down between rounds: round 2 is slower for both models alike.
    result = Comparison(
        tokens_per_step=10,
        step_times={"ours": ((1.0, 1.2), (2.0, 2.0)), "them": ((2.0, 2.0), (3.0, 3.0))},
        orders=(("ours", "them"), ("them", "ours")),
        peak_memory={"ours": None, "them": None},
    )
    assert result.ratios("them") == pytest.approx([2.0 / 1.1, 1.5])
    assert result.ratio("them") == pytest.approx((2.0 / 1.1 + 1.5) / 2)  # the median of two
    assert result.tokens_per_second("ours") == pytest.approx(10 / 1.6)  # the median step over all rounds


def test_compare_rejects_bad_arguments():
    x = torch.randint(0, 64, (2, 8))
    with pytest.raises(ValueError, match="rounds must be a positive int, got 0"):
        compare({"ours": GPT(TINY)}, x, x, rounds=0)
    with pytest.raises(ValueError, match="steps_per_round"):
        compare({"ours": GPT(TINY)}, x, x, steps_per_round=0)
    with pytest.raises(ValueError, match="models: give at least one model"):
        compare({}, x, x)


def test_compare_calls_times_functions_in_rotating_rounds():
    # Chapter 8 times generation this way: functions of no arguments, not training steps.
    log: list[str] = []

    def call(name: str, seconds: float):
        return lambda: (log.append(name), time.sleep(seconds))

    calls = {"fast": call("fast", 0.0), "slow": call("slow", 0.02)}
    result = timing.compare_calls(calls, "cpu", rounds=2, calls_per_round=2, warmup=1, tokens_per_call=8)
    assert log == ["fast", "slow"] + ["fast"] * 2 + ["slow"] * 2 + ["slow"] * 2 + ["fast"] * 2, "warm-up, then A B, B A"
    assert result.orders == (("fast", "slow"), ("slow", "fast")) and result.reference == "fast"
    assert all(len(times) == 2 for name in calls for times in result.step_times[name])
    assert min(result.ratios("slow")) > 1, "the slow call is slower in every round"
    assert result.tokens_per_second("slow") < 8 / 0.02, "tokens_per_call counted per call"
    with pytest.raises(ValueError, match="calls: give at least one"):
        timing.compare_calls({}, "cpu")
    with pytest.raises(ValueError, match="calls_per_round"):
        timing.compare_calls(calls, "cpu", calls_per_round=0)
