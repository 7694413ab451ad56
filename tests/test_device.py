"""gptcourse/device.py: the device, and the precision it trains in (the T4 has no native bf16)."""

import contextlib

import torch

from gptcourse import device as dev
from gptcourse import gpu_budget


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
    monkeypatch.setattr(gpu_budget, "apply_memory_cap", lambda device="cuda": applied.append(str(device)))
    monkeypatch.setattr(dev, "_CAPPED", set())
    monkeypatch.delenv(gpu_budget.MEMORY_CAP_VARIABLE, raising=False)
    assert dev.get_device().type == "cuda" and applied == [], "no cap asked for, none applied"
    monkeypatch.setenv(gpu_budget.MEMORY_CAP_VARIABLE, "14.5")
    assert dev.get_device() == torch.device("cuda")
    assert dev.get_device() == torch.device("cuda")
    assert dev.get_device("cpu").type == "cpu"
    assert applied == ["cuda"], "once per process, and only for a CUDA device"
