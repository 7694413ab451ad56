"""The optimisation ladder (chapter 10): every rung in order, cumulative, skipped or out of memory
with a reason, settings restored; the GPU-only decisions checked on a CPU with fakes."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gptcourse import GPTConfig, gpu_budget, ladder
from gptcourse.ladder import (
    LADDER,
    Setup,
    Where,
    format_ladder,
    recorded_markdown,
    run_ladder,
)
from gptcourse.memory import estimate_memory

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # benchmarks/ladder.py imports its neighbour recording.py
_spec = importlib.util.spec_from_file_location("benchmark_ladder", BENCHMARKS / "ladder.py")
benchmark_ladder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_ladder)
ladder_rows = benchmark_ladder.ladder_rows  # the rows `make gpu` records, which recorded_markdown shows

# GPT-2's vocabulary (so that the padding rung applies), everything else tiny.
TINY = GPTConfig(vocab_size=50257, context_length=16, emb_dim=32, n_heads=2, n_layers=1)
CPU = Where(torch.device("cpu"), compile_on_cpu=False, max_batch_size=4)
FAKE_GPU = Where(torch.device("cuda"), compile_on_cpu=False, max_batch_size=64)


@pytest.fixture(scope="module")
def climbed():
    """One quick climb on the CPU, shared by the tests that only read it."""
    before = torch.get_float32_matmul_precision()
    results = run_ladder(TINY, batch_size=2, seq_len=8, device="cpu", steps=1, warmup=0)
    assert torch.get_float32_matmul_precision() == before, "the fp32 matmul precision is restored"
    return results


def test_every_rung_in_order_with_a_status(climbed):
    assert [r.rung for r in climbed] == [rung.name for rung in LADDER]
    assert [r.rung for r in climbed] == [
        "fp32", "tf32", "autocast", "sdpa", "compile", "fused AdamW", "padded vocab", "chunked loss", "largest batch"
    ]  # fmt: skip
    status = {r.rung: r.status for r in climbed}
    assert status["tf32"] == "skipped" and "CPU has none" in climbed[1].note
    assert status["compile"] == "skipped" and "compile_on_cpu=True" in climbed[4].note
    assert all(status[name] == "ran" for name in ["fp32", "autocast", "sdpa", "fused AdamW", "padded vocab", "chunked loss", "largest batch"])


def test_each_rung_keeps_the_ones_below(climbed):
    by = {r.rung: r.setup for r in climbed}
    assert by["fp32"] == Setup(dataclasses.replace(TINY, drop_rate=0.0), 2, 8)  # fp32, manual attention, default AdamW
    assert by["autocast"].dtype == torch.bfloat16 and by["autocast"].attention == "manual"
    assert by["sdpa"].attention == "sdpa" and by["sdpa"].dtype == torch.bfloat16
    assert by["fused AdamW"].fused is True and by["fused AdamW"].attention == "sdpa"
    assert by["padded vocab"].config.vocab_size == 50304 and by["padded vocab"].fused is True
    assert by["padded vocab"].loss_chunk is None and by["chunked loss"].loss_chunk == ladder.CPU_LOSS_CHUNK
    assert by["chunked loss"].config.vocab_size == 50304 and by["chunked loss"].batch_size == 2
    largest = by["largest batch"]
    assert largest.batch_size == CPU.max_batch_size and largest.config.vocab_size == 50304  # 2 × the batch on a CPU
    assert largest.loss_chunk == ladder.CPU_LOSS_CHUNK


def test_each_rung_reports_speed_both_mfus_and_memory(climbed):
    for r in climbed:
        if r.status != "ran":
            assert r.measurement is None and r.tokens_per_second is None
            continue
        assert r.tokens_per_second > 0 and r.mfu_measured > 0
        assert r.mfu_datasheet is None, "a CPU has no datasheet peak: its MFU is against the measured matmul"
        assert r.peak_memory is None, "no memory counter on a CPU"
        s = r.setup
        assert r.estimated_memory == estimate_memory(s.config, s.batch_size, s.seq_len, s.dtype, s.attention, "cpu", loss_chunk=s.loss_chunk).total
        assert r.measurement.estimated_memory == r.estimated_memory
        assert r.precision == ("bf16" if s.dtype == torch.bfloat16 else "fp32")


def test_the_table_fits_the_book(climbed):
    table = format_ladder(climbed)
    assert all(len(line) <= 88 for line in table.splitlines()), table
    assert "tf32          skipped: TF32" in table
    assert table.splitlines()[1].startswith("fp32") and "1.00" in table.splitlines()[1]


def test_an_out_of_memory_rung_is_reported_and_the_ladder_goes_on(monkeypatch):
    measure = ladder._measure

    def short_of_memory(setup, *args, **kwargs):
        if setup.attention == "sdpa" and not setup.fused:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if setup.fused:
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
        return measure(setup, *args, **kwargs)

    monkeypatch.setattr(ladder, "_measure", short_of_memory)
    results = run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", steps=1, warmup=0)
    status = {r.rung: r.status for r in results}
    assert status["sdpa"] == "out of memory" and "Tried to allocate 2.00 GiB" in results[3].note
    assert status["fused AdamW"] == "out of memory" and "CUBLAS_STATUS_ALLOC_FAILED" in results[5].note
    assert status["fp32"] == status["autocast"] == "ran"
    assert results[5].setup.attention == "sdpa", "a rung that ran out of memory still counts for the rungs above it"


def test_other_errors_propagate(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch: a bug, not a memory shortage")

    monkeypatch.setattr(ladder, "_measure", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", steps=1, warmup=0)


@pytest.mark.parametrize(("capability", "applies"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_tf32_only_from_ampere(monkeypatch, capability, applies):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    climbed = ladder._tf32(Setup(TINY, 8, 16), FAKE_GPU)
    if applies:
        assert climbed.float32_matmul_precision == "high"
    else:
        assert climbed == "TF32 arrived with Ampere (compute capability 8.0); this GPU is 7.5, so fp32 stays fp32"


@pytest.mark.parametrize(("native_bf16", "dtype"), [(False, torch.float16), (True, torch.bfloat16)])
def test_autocast_is_fp16_on_a_t4_and_bf16_where_native(monkeypatch, native_bf16, dtype):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or native_bf16)
    assert ladder._autocast(Setup(TINY, 8, 16), FAKE_GPU).dtype == dtype
    assert ladder._autocast(Setup(TINY, 8, 16), CPU).dtype == torch.bfloat16


def test_compile_runs_on_a_gpu_and_on_a_cpu_only_when_asked():
    assert ladder._compile(Setup(TINY, 8, 16), FAKE_GPU).compile is True
    assert isinstance(ladder._compile(Setup(TINY, 8, 16), CPU), str)
    assert ladder._compile(Setup(TINY, 8, 16), dataclasses.replace(CPU, compile_on_cpu=True)).compile is True


def test_the_vocabulary_is_padded_to_a_multiple_of_64():
    padded = ladder._pad_vocabulary(Setup(TINY, 8, 16), CPU)
    assert padded.config.vocab_size == 50304
    assert ladder._pad_vocabulary(padded, CPU) == "the vocabulary, 50,304, is already a multiple of 64"


def test_the_chunked_loss_needs_less_memory_so_the_batch_can_grow(climbed, monkeypatch):
    # It pays where B·T is well above emb_dim: it keeps a (vocab, d) gradient instead of (B·T, vocab) ones.
    assert ladder._chunked_loss(Setup(TINY, 8, 16), FAKE_GPU).loss_chunk == ladder.LOSS_CHUNK
    plain = dataclasses.replace(next(r for r in climbed if r.rung == "padded vocab").setup, batch_size=64)
    chunked = dataclasses.replace(plain, loss_chunk=ladder.CPU_LOSS_CHUNK)
    assert ladder._estimate(chunked, "cpu") < 0.6 * ladder._estimate(plain, "cpu")
    # A CPU sizes by the estimate: a budget between the two lets the chunked setup reach 64, not the plain one.
    budget = (ladder._estimate(plain, "cpu") + ladder._estimate(chunked, "cpu")) / 2
    monkeypatch.setattr(gpu_budget, "available_memory", lambda device: budget / gpu_budget.SAFETY_FRACTION)
    model = torch.nn.Linear(1, 1)  # not used off CUDA
    assert ladder._fits(model, chunked, torch.device("cpu"), 64)
    assert not ladder._fits(model, plain, torch.device("cpu"), 64)


def test_a_t4_sizes_the_first_rung_to_fit(monkeypatch):
    # fp32 with the T×T matrix kept is the hungriest rung: on a T4 GPT-2 small at T=1024
    # must drop from batch 8 until the estimate fits 85% of the 14.5 GiB free.
    monkeypatch.setattr(gpu_budget, "free_memory", lambda device=None: gpu_budget.T4_FREE_BYTES)
    small = GPTConfig.from_preset("gpt2-small")
    sized, note = ladder._sized_to_fit(Setup(small, 8, 1024), torch.device("cuda"))
    budget = gpu_budget.SAFETY_FRACTION * gpu_budget.T4_FREE_BYTES
    need = estimate_memory(small, sized.batch_size, 1024, torch.float32, "manual", "cuda").total
    assert sized.batch_size < 8 and need <= budget
    assert estimate_memory(small, 2 * sized.batch_size, 1024, torch.float32, "manual", "cuda").total > budget
    assert note.startswith(f"batch 8 → {sized.batch_size} × 1024: ") and "85% of the 14.5 GiB free" in note
    assert ladder._sized_to_fit(Setup(small, 8, 1024), torch.device("cpu")) == (Setup(small, 8, 1024), "")


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", steps=0)
    with pytest.raises(ValueError, match="seq_len must be at most the context length"):
        run_ladder(TINY, batch_size=1, seq_len=32, device="cpu")


def test_rungs_can_be_left_out():
    results = run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", steps=1, warmup=0, skip=["sdpa", "padded vocab"])
    by = {r.rung: r for r in results}
    assert by["sdpa"].status == "skipped" and by["sdpa"].note == "left out (skip=...)"
    assert by["fused AdamW"].setup.attention == "manual" and by["largest batch"].setup.config.vocab_size == 50257
    with pytest.raises(ValueError, match="Unknown skip 'flash'"):
        run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", skip=["flash"])


def test_recorded_rows_show_as_one_table_per_run(climbed):
    rows = ladder_rows(climbed, "python benchmarks/ladder.py --record")
    capped = ladder_rows(climbed, "GPTCOURSE_GPU_MEMORY_GIB=14.5 python benchmarks/ladder.py --record", memory_cap_gib=14.5)
    text = recorded_markdown([{k: str(v) for k, v in row.items()} for row in rows + capped])
    blocks = text.split("\n\n**")
    assert len(blocks) == 2 and blocks[1].startswith("cpu** (capped to 14.5 GiB), 20")
    assert text.startswith("**cpu**, 20") and ", torch " in text and "`python benchmarks/ladder.py --record`" in text
    assert "| tf32 | — | — | — | — | — | — | — | skipped: TF32 is a format" in text
    fp32 = next(line for line in text.splitlines() if line.startswith("| fp32 |"))
    assert fp32.split(" | ")[1:3] == ["fp32", "2"] and fp32.count("%") == 1  # the measured MFU only, on a CPU


def test_rungs_are_timed_in_rotating_rounds_and_compared_within_each(monkeypatch):
    # A machine that slows down round by round: the speed-up of a rung over fp32 is taken
    # within each round, so the slowdown cancels; the spread is the rounds' range.
    measure = ladder._measure
    order = []

    def timed(setup, device, steps, warmup, seed):
        m = measure(setup, device, steps, warmup, seed)
        rung = "autocast" if setup.attention == "manual" and setup.dtype == torch.bfloat16 else None
        rung = "fp32" if setup.dtype == torch.float32 else rung or f"{setup.attention} {setup.fused} {setup.config.vocab_size}"
        order.append(rung)
        slowdown = 1 + (len(order) - 1) // 2  # two rungs a round, each round slower than the one before
        seconds = (1.0 if rung == "fp32" else 0.5) * slowdown
        return dataclasses.replace(m, step_times=(seconds,) * steps)

    monkeypatch.setattr(ladder, "_measure", timed)
    results = run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", steps=2, warmup=0, rounds=3,
                         skip=["sdpa", "fused AdamW", "padded vocab", "chunked loss", "largest batch"])  # fmt: skip
    by = {r.rung: r for r in results}
    assert order[:2] == ["fp32", "autocast"] and order[2:4] == ["autocast", "fp32"], "the order rotates"
    assert len(by["autocast"].round_times) == 3 and len(by["autocast"].measurement.step_times) == 6
    assert by["autocast"].speedups(by["fp32"]) == pytest.approx([2.0, 2.0, 2.0]), "within each round"
    assert by["autocast"].round_tokens_per_second() != by["fp32"].round_tokens_per_second()
    line = next(line for line in format_ladder(results).splitlines() if line.startswith("autocast"))
    assert " 2.00  2.00–2.00 " in line, line
    with pytest.raises(ValueError, match="rounds must be a positive int"):
        run_ladder(TINY, batch_size=1, seq_len=8, device="cpu", rounds=0)
