"""gptcourse/device.py: the device, and the precision it trains in (the T4 has no native bf16)."""

import contextlib

import torch

from gptcourse import device as dev


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
