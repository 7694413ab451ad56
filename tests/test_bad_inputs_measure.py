"""Issue 23, the measurement helpers: bad inputs to peaks, MFU, the memory estimate and the
batch search get a clear error naming the fix, or the right answer (one test per case)."""

from __future__ import annotations

import math
import types

import pytest
import torch

from gptcourse import GPT, GPTConfig, gpu_budget, memory
from gptcourse.gpu_budget import SAFETY_FRACTION, find_max_batch_size, is_out_of_memory
from gptcourse.memory import estimate_memory
from gptcourse.mfu import TrainingMeasurement
from gptcourse.peaks import UnknownDeviceError, peak_flops

TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
TERA = 1e12


# ------------------------------------------------------------------ peaks


def test_a_list_of_precisions_is_a_type_error_naming_the_precisions():
    with pytest.raises(TypeError, match=r"precision must be one name or dtype, got \['fp16'\] \(list\)") as caught:
        peak_flops("Tesla T4", ["fp16"])
    assert "'fp16', 'bf16', 'fp32', 'tf32'" in str(caught.value) and "call once per precision" in str(caught.value)


def test_an_a100_mig_slice_gets_its_share_of_the_peak():
    # "1g" is 1 of the A100's 7 compute slices: 1/7 of its SMs, not the whole GPU's 312 TFLOP/s.
    assert peak_flops("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "bf16") == pytest.approx(312 * TERA / 7)
    assert peak_flops("NVIDIA A100 80GB PCIe MIG 7g.80gb", "fp16") == pytest.approx(312 * TERA)


def test_an_h100_mig_slice_gets_its_share_of_the_peak():
    assert peak_flops("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "bf16") == pytest.approx(989 * TERA * 3 / 7)
    assert peak_flops("NVIDIA H100 PCIe MIG 2g.20gb", "tf32") == pytest.approx(378 * TERA * 2 / 7)


def test_a_mig_profile_larger_than_the_gpu_is_refused_with_peak():
    with pytest.raises(UnknownDeviceError, match=r"MIG profiles 1g to 7g\). Pass the peak you trust as peak=\.\.\."):
        peak_flops("NVIDIA A100-SXM4-40GB MIG 9g.5gb", "bf16")


# ------------------------------------------------------------------ MFU from step times


@pytest.mark.parametrize(
    "times, index, shown",
    [([0.1, -0.2], 1, "-0.2"), ([0.1, math.nan], 1, "nan"), ([0.0, 0.0], 0, "0.0"), ([0.1, math.inf], 1, "inf")],
    ids=["negative", "nan", "zero", "infinite"],
)
def test_from_step_times_refuses_a_time_no_step_takes_by_index(times, index, shown):
    # Before: MFU -0.013 (negative), nan, a ZeroDivisionError, or 0 (infinite time).
    with pytest.raises(ValueError, match=rf"step_times\[{index}\] = {shown} is not a time a step can take") as caught:
        TrainingMeasurement.from_step_times(GPT(TINY), None, 2, 16, times, peak=1e12)
    assert "finite number of seconds above 0" in str(caught.value) and "Time the steps again" in str(caught.value)


# ------------------------------------------------------------------ the memory estimate


def test_estimate_memory_of_a_llama_preset_says_where_a_llamas_memory_is_found():
    import gptcourse.llama  # noqa: F401  (registers the Llama's names, as appendix B's import does)

    with pytest.raises(ValueError) as caught:
        estimate_memory("llama-nano", 2, 16)
    said = str(caught.value)
    assert "config='llama-nano' is a Llama preset, and estimate_memory estimates a GPT's" in said
    assert "measure_saved_activations(Llama(config), batch_size, seq_len)" in said and "16 bytes a parameter" in said
    assert "GPT presets: 'gpt2-small'" in said and "'gpt2'" in said, "the names it does take"


def test_estimate_memory_of_an_unknown_name_lists_the_gpt_presets_and_the_llamas_way(monkeypatch):
    # Before gptcourse.llama is imported (the core never imports it) its names are unknown here.
    monkeypatch.setattr(memory, "FAMILIES", {})
    with pytest.raises(ValueError, match=r"config='llama-nano' is not a GPT preset: choose one of 'gpt2-small'") as caught:
        estimate_memory("llama-nano", 2, 16)
    assert "estimates GPTs only; a Llama's memory (appendix B) is measured: measure_saved_activations" in str(caught.value)


def test_estimate_memory_of_a_llama_config_says_where_a_llamas_memory_is_found():
    from gptcourse.llama import Llama, LlamaConfig
    from gptcourse.memory import measure_saved_activations

    with pytest.raises(ValueError, match=r"config is a Llama's, and estimate_memory estimates a GPT's"):
        estimate_memory(LlamaConfig.from_preset("llama-nano"), 2, 16)
    assert measure_saved_activations(Llama("llama-nano"), 1, 8) > 0, "the advice works"


# ------------------------------------------------------------------ the batch search on a CPU


def test_the_cpu_allocators_failure_is_out_of_memory():
    try:  # what Linux's allocator says when it refuses (1 PiB): "can't allocate memory"
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as error:
        refused = error
    else:  # an allocator that overcommits even this much: its message, as PyTorch words it
        refused = RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)"
        )
    assert is_out_of_memory(refused)


def test_find_max_batch_size_by_running_on_a_cpu_tries_only_what_the_ram_holds(monkeypatch):
    # Linux promises memory it lacks: a batch too large is killed, not refused. So off CUDA the
    # search never tries a batch whose estimate is over SAFETY_FRACTION of the RAM available.
    estimate = lambda b: estimate_memory(TINY, b, 16, torch.float32, "sdpa", "cpu").total  # noqa: E731
    ram = int(estimate(10) / SAFETY_FRACTION) + 1
    monkeypatch.setattr(gpu_budget, "host_memory_available", lambda: ram)
    holds = max(b for b in range(1, 64) if estimate(b) <= int(SAFETY_FRACTION * ram))
    trials = []

    def make_train_step(model, inputs, targets, dtype, **kwargs):
        trials.append(inputs.shape[0])  # every step "runs": only the cap can stop the search
        step = lambda: None  # noqa: E731
        step.optimizer = types.SimpleNamespace(step=lambda: None)  # (a real one imports much: slow)
        return step

    monkeypatch.setattr(gpu_budget, "make_train_step", make_train_step)
    assert find_max_batch_size(GPT(TINY), dtype=torch.float32, by="running") == holds == 10
    assert trials and max(trials) <= holds, f"tried batches beyond what the RAM holds: {sorted(set(trials))}"
