"""gptcourse/device.py: the device, its name, its memory cap, and the precision it trains in
(the T4 has no native bf16)."""

import contextlib
import types

import pytest
import torch

from gptcourse import device as dev
from gptcourse.device import GIB, MEMORY_CAP_VARIABLE, apply_memory_cap, device_name, memory_cap


def test_on_the_cpu():
    assert dev.get_device("cpu").type == "cpu"
    assert not dev.has_native_bf16("cpu")
    assert dev.autocast_dtype("cpu") == torch.float32
    assert isinstance(dev.autocast("cpu"), contextlib.nullcontext)  # fp32: nothing to cast
    assert isinstance(dev.autocast("cpu", torch.bfloat16), torch.autocast)


def test_only_fp16_needs_a_grad_scaler():
    assert dev.needs_grad_scaler(torch.float16)
    assert not dev.needs_grad_scaler(torch.bfloat16) and not dev.needs_grad_scaler(torch.float32)


def test_t4_bf16_is_not_native(monkeypatch):
    # A T4 reports bf16 "supported" through emulation; only the no-emulation answer counts.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert dev.autocast_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dev.autocast_dtype("cuda") == torch.bfloat16


def test_a_memory_cap_is_applied_once_per_process(monkeypatch):
    # make gpu's second pass sets GPTCOURSE_GPU_MEMORY_GIB=14.5: every notebook asks get_device
    # for its device, and so runs within a T4's memory on a larger GPU.
    applied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dev, "apply_memory_cap", lambda device="cuda": applied.append(str(device)))
    monkeypatch.setattr(dev, "_CAPPED", set())
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert dev.get_device().type == "cuda" and applied == [], "no cap asked for, none applied"
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert dev.get_device() == torch.device("cuda")
    assert dev.get_device() == torch.device("cuda")
    assert dev.get_device("cpu").type == "cpu"
    assert applied == ["cuda"], "once per process, and only for a CUDA device"


def test_memory_cap_reads_the_variable(monkeypatch):
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert memory_cap() is None
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert memory_cap() == int(14.5 * GIB)
    for bad in ["0", "-1", "fifteen", "nan"]:
        monkeypatch.setenv(MEMORY_CAP_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{MEMORY_CAP_VARIABLE}=.*positive number, e.g. 14.5 for a T4"):
            memory_cap()


def test_apply_memory_cap_sets_the_fraction_of_the_whole_gpu(monkeypatch):
    capped = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: types.SimpleNamespace(total_memory=80 * GIB))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction, device=None: capped.append(fraction))
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert apply_memory_cap("cuda") == int(14.5 * GIB)
    assert capped == [pytest.approx(14.5 / 80)]
    assert apply_memory_cap("cpu") == int(14.5 * GIB) and len(capped) == 1  # nothing to cap on a CPU
    monkeypatch.delenv(MEMORY_CAP_VARIABLE)
    assert apply_memory_cap("cuda") is None and len(capped) == 1


def test_device_name_is_a_gpu_s_name_or_the_device_type(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: asked.append(device) or "Tesla T4")
    assert device_name("cpu") == "cpu" and device_name(torch.device("mps")) == "mps" and asked == []
    assert device_name("cuda:1") == "Tesla T4" and asked == [torch.device("cuda:1")], "the GPU asked is the one given"
