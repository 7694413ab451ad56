"""Tokens/s and MFU of a training step (chapter 10), on a CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import count_flops
from gptcourse.memory import estimate_memory
from gptcourse.mfu import TrainingMeasurement, choose_peak, measure_throughput, measure_training
from gptcourse.timing import fused_adamw_supported

TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


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
    model = GPT(TINY, attention="manual").eval()
    m = measure_training(model, batch_size=2, seq_len=8, steps=3, warmup=1)
    assert not model.training, "the model's mode is restored"
    assert len(m.step_times) == 3 and m.step_time > 0 and m.spread >= 0
    assert m.flops_per_step == count_flops(TINY, 2, 8).total
    assert m.peak_source == "measured matmul" and m.mfu == m.mfu_vs_measured
    assert m.precision == "fp32" and m.device == "cpu"
    assert m.tokens_per_second == pytest.approx(16 / m.step_time)
    assert m.estimated_memory == estimate_memory(TINY, 2, 8, attention="manual", device_type="cpu").total
    assert m.peak_memory is None  # no CUDA here
    given = measure_training(model, batch_size=2, seq_len=8, steps=2, warmup=1, peak=1e12)
    assert given.peak_source == "given" and given.mfu_vs_measured is not None
    assert "MFU" in given.summary()


def test_mfu_is_flops_over_time_over_peak():
    model = GPT(TINY)
    m = TrainingMeasurement.from_step_times(model, None, 4, 16, [0.5, 0.1, 0.2], peak=1e9)
    assert m.step_time == 0.2 and m.spread == pytest.approx(2.0)
    assert m.mfu == pytest.approx(count_flops(TINY, 4, 16).total / 0.2 / 1e9)
    assert m.tokens_per_second == pytest.approx(64 / 0.2)


@pytest.mark.parametrize("steps", [0, -2])
def test_throughput_rejects_no_steps(steps):
    with pytest.raises(ValueError, match=f"steps must be a positive int, got {steps}"):
        measure_throughput(GPT(TINY), TINY, batch_size=2, steps=steps)


def test_other_bad_measurements_are_clear_errors():
    model = GPT(TINY)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        measure_training(model, batch_size=0)
    with pytest.raises(ValueError, match="seq_len must be at most the context length"):
        measure_training(model, seq_len=32)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        measure_training(model, warmup=-1)
    with pytest.raises(ValueError, match="step_times"):
        TrainingMeasurement.from_step_times(model, None, 2, 8, [])
    with pytest.raises(ValueError, match="peak must be > 0"):
        measure_training(model, batch_size=1, steps=1, warmup=0, peak=0)


def test_the_peak_is_given_else_datasheet_else_measured():
    assert choose_peak("Tesla T4", "fp16", measured=40e12, given=50e12) == (50e12, "given")
    assert choose_peak("Tesla T4", "fp16", measured=40e12) == (65e12, "datasheet")
    assert choose_peak("NVIDIA A100-SXM4-40GB", "tf32", measured=None) == (156e12, "datasheet")
    assert choose_peak("cpu", "fp32", measured=1e11) == (1e11, "measured matmul")


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "NVIDIA GH200 480GB"])
def test_a_gpu_without_a_datasheet_figure_gets_the_measured_peak_labelled(name):
    flops, source = choose_peak(name, "bf16", measured=150e12)
    assert flops == 150e12
    assert source == f"measured matmul (no datasheet figure for {name})"
    with pytest.raises(ValueError, match=rf"measured: there is no datasheet peak for '{name}' in bf16.*measure_peak_flops"):
        choose_peak(name, "bf16", measured=None)


def test_a_known_gpu_that_cannot_run_the_precision_still_refuses():
    with pytest.raises(ValueError, match="fp16 with a gradient scaler"):
        choose_peak("Tesla T4", "bf16", measured=10e12)
    with pytest.raises(ValueError, match="peak must be > 0"):
        choose_peak("Tesla T4", "fp16", measured=None, given=0)


def test_the_summary_names_an_unlisted_gpus_peak():
    m = TrainingMeasurement.from_step_times(GPT(TINY), None, 2, 16, [0.1], peak=1e9)
    unlisted = dataclasses.replace(
        m, device="NVIDIA GeForce RTX 4090", precision="bf16", peak_flops=150e12, measured_peak_flops=150e12,
        peak_source="measured matmul (no datasheet figure for NVIDIA GeForce RTX 4090)",
    )  # fmt: skip
    summary = " ".join(unlisted.summary().split())  # as read: its lines may wrap
    assert "(measured matmul (no datasheet figure for NVIDIA GeForce RTX 4090))" in summary
    assert "of the measured matmul peak" not in summary, "one denominator, said once"


@pytest.mark.skipif(not fused_adamw_supported("cpu"), reason=f"torch {torch.__version__} has no fused AdamW on a CPU")
def test_fused_adamw_can_be_measured():
    m = measure_training(GPT(TINY), batch_size=1, seq_len=8, steps=1, warmup=1, fused=True)
    assert m.tokens_per_second > 0


def test_the_summary_fits_the_books_88_columns():
    # The book shows 88 characters of an output line; the longest lines of the summary (the
    # note on an MFU above 100%, a peak named at length) wrap instead of scrolling sideways.
    m = TrainingMeasurement.from_step_times(GPT(TINY), None, 2, 16, [0.1], peak=1e9)
    above = dataclasses.replace(m, peak_flops=1.0, measured_peak_flops=1.0)  # MFU far above 100%
    unlisted = dataclasses.replace(
        m, device="NVIDIA GeForce RTX 4090", precision="bf16", peak_flops=150e12, measured_peak_flops=150e12,
        peak_source="measured matmul (no datasheet figure for NVIDIA GeForce RTX 4090)",
    )  # fmt: skip
    for summary in (above.summary(), unlisted.summary()):
        wide = [line for line in summary.splitlines() if len(line) > 88]
        assert not wide, f"summary lines wider than 88 characters: {wide}"
    assert "refresh=True) measures it again" in " ".join(above.summary().split())  # wrapped, kept


def test_a_chunked_loss_is_measured_and_estimated_as_chunked():
    # Appendix C's rung: the step runs the chunked loss, the estimate counts a chunk's logits.
    model = GPT(TINY)
    plain = measure_training(model, batch_size=4, steps=1, warmup=0)
    chunked = measure_training(model, batch_size=4, steps=1, warmup=0, loss_chunk=8)
    expected = estimate_memory(TINY, 4, 16, torch.float32, "sdpa", "cpu", loss_chunk=8).total
    assert chunked.estimated_memory == expected != plain.estimated_memory
    with pytest.raises(ValueError, match="loss_chunk must be a positive int"):
        measure_training(model, batch_size=4, steps=1, warmup=0, loss_chunk=0)
