"""Which device to run on (chapter 4), and which precision it trains fastest in (chapter 7)."""

from __future__ import annotations

import contextlib

import torch

from . import gpu_budget

_CAPPED: set[str] = set()  # the CUDA devices whose memory cap this process has applied


def get_device(prefer: str | None = None) -> torch.device:
    """A CUDA GPU if there is one, else Apple's MPS, else the CPU, or `prefer` when given (chapter 4).

    On a CUDA GPU, with ``GPTCOURSE_GPU_MEMORY_GIB`` set, the first call caps this process's
    memory there (`gptcourse.gpu_budget.apply_memory_cap`): every notebook asks for its
    device here, so a large GPU can rehearse a T4's 14.5 GiB (``make gpu`` does).
    """
    if prefer is not None:
        device = torch.device(prefer)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cuda" and str(device) not in _CAPPED and gpu_budget.memory_cap() is not None:
        gpu_budget.apply_memory_cap(device)
        _CAPPED.add(str(device))
    return device


def has_native_bf16(device: torch.device | str) -> bool:
    """True only where bfloat16 runs on the hardware: Ampere and newer GPUs (chapter 7).

    A T4 (Turing) *emulates* bf16: plain ``torch.cuda.is_bf16_supported()`` says True
    there, yet the matmuls are slow. Asking without emulation tells the truth.
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # PyTorch < 2.3 has no such argument: Ampere is compute capability 8.0
        return torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype to train in: bf16 where native, fp16 on other GPUs, fp32 on the CPU (chapter 7)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def needs_grad_scaler(dtype: torch.dtype) -> bool:
    """True for fp16: its narrow range lets small gradients underflow to 0 unless the loss is scaled (chapter 7)."""
    return dtype == torch.float16


def autocast(device: torch.device | str, dtype: torch.dtype | None = None) -> contextlib.AbstractContextManager:
    """Mixed precision for `device` in `dtype` (default `autocast_dtype`); a no-op in fp32 (chapter 7)."""
    device = torch.device(device)
    dtype = dtype or autocast_dtype(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
