"""The device to run on, its name (chapter 4), the precision it trains in (chapter 7).

A process may cap its GPU memory (``GPTCOURSE_GPU_MEMORY_GIB``, in GiB): `get_device`,
which every notebook calls, applies the cap, so that a large GPU can rehearse a T4.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import torch

GIB = 2**30  # bytes in a GiB: memory is counted in bytes and shown in GiB
MEMORY_CAP_VARIABLE = "GPTCOURSE_GPU_MEMORY_GIB"
_CAPPED: set[str] = set()  # the CUDA devices whose memory cap this process has applied


def memory_cap() -> int | None:
    """The cap in bytes that ``GPTCOURSE_GPU_MEMORY_GIB`` sets, or None (chapter 10)."""
    value = os.environ.get(MEMORY_CAP_VARIABLE, "").strip()
    if not value:
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = float("nan")
    if not gib > 0:
        raise ValueError(
            f"{MEMORY_CAP_VARIABLE}={value!r}: give the cap in GiB as a positive "
            "number, e.g. 14.5 for a T4."
        )
    return int(gib * GIB)


def apply_memory_cap(device: torch.device | str = "cuda") -> int | None:
    """Cap this process's memory on a CUDA `device` at `memory_cap`; return the cap.

    Defined in chapter 10.
    """
    cap = memory_cap()
    device = torch.device(device)
    if cap is not None and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    return cap


def get_device(prefer: str | None = None) -> torch.device:
    """`prefer`, else a CUDA GPU, else Apple's MPS, else the CPU (chapter 4).

    On a CUDA GPU the first call applies the memory cap, if one is set.
    """
    if prefer is not None:
        device = torch.device(prefer)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    capped = str(device) in _CAPPED
    if device.type == "cuda" and not capped and memory_cap() is not None:
        apply_memory_cap(device)
        _CAPPED.add(str(device))
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def device_name(device: torch.device | str) -> str:
    """A GPU's name ("Tesla T4"), else the device type: "cpu", "mps" (chapter 4).

    The name is what a datasheet peak is looked up by, and what a recorded row says.
    """
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


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
    except TypeError:  # PyTorch < 2.3 has no such argument: Ampere is capability 8.0
        return torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype to train in: bf16 where native, fp16 on other GPUs, else fp32.

    Defined in chapter 7.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def needs_grad_scaler(dtype: torch.dtype) -> bool:
    """True for fp16: its small gradients underflow unless scaled (chapter 7)."""
    return dtype == torch.float16


def autocast(
    device: torch.device | str, dtype: torch.dtype | None = None
) -> contextlib.AbstractContextManager:
    """Mixed precision on `device` in `dtype` (default: `autocast_dtype`), chapter 7.

    In fp32 it is a no-op.
    """
    device = torch.device(device)
    dtype = dtype or autocast_dtype(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def profiler_quietly(**settings: Any) -> Iterator[torch.profiler.profile]:
    """`torch.profiler.profile(**settings)`, started and stopped without Kineto's logs.

    Defined in appendix C. Kineto writes "USDT: profiler_start" and "profiler_stop" to
    the process's stderr whatever its log level, which a notebook would show as output:
    file descriptor 2 goes to /dev/null for the start and the stop, never for the work.
    """
    prof = torch.profiler.profile(**settings)
    with _stderr_to_devnull():
        prof.start()
    try:
        yield prof
    finally:
        with _stderr_to_devnull():
            prof.stop()


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
