"""What fits on the GPU a student has: free memory, a T4's budget, out-of-memory errors (chapter 10).

The course's GPU is most often a Colab T4: 15 GiB in all, about 14.5 GiB free once the CUDA
context is made. Every GPU configuration a notebook runs is sized from
`gptcourse.memory.estimate_memory` against the memory actually free here (`free_memory`),
and an out-of-memory error is caught and explained, never a crash.

To rehearse a T4 on a larger GPU, set ``GPTCOURSE_GPU_MEMORY_GIB=14.5`` before Python starts:
`apply_memory_cap` then caps this process (``torch.cuda.set_per_process_memory_fraction``)
and `free_memory` counts only what is left under the cap.

When memory runs out anyway, `out_of_memory_lesson` turns the error into a lesson: it frees
what the failed cell held, says what to change, and lets the notebook go on. The GPU
configurations the notebooks run, and the batch that fits, are in `gptcourse.gpu_runs`.
"""

from __future__ import annotations

import gc
import os
import traceback
from collections.abc import Iterable
from types import TracebackType

import torch

GIB = 2**30
T4_FREE_BYTES = int(14.5 * GIB)  # a Colab T4 after the CUDA context: 15 GiB minus ~0.5 GiB
# The estimate leaves out the caching allocator's rounding, cuBLAS workspaces and
# fragmentation: plan to use at most this share of what is free.
SAFETY_FRACTION = 0.85
MEMORY_CAP_VARIABLE = "GPTCOURSE_GPU_MEMORY_GIB"

# What the allocators say when they cannot allocate. PyTorch's own is torch.cuda.OutOfMemoryError;
# cuBLAS and cuDNN raise plain RuntimeErrors when their workspaces do not fit.
# On a CPU, PyTorch's allocator says "DefaultCPUAllocator: not enough memory".
_OOM_MESSAGES = (
    "out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "not enough memory",
)


class EstimatedOutOfMemoryError(torch.cuda.OutOfMemoryError):
    """Not even the smallest configuration fits by the estimate: refused before allocating (chapter 10).

    A subclass of ``torch.cuda.OutOfMemoryError``, so that it is caught and explained exactly
    where a real allocation failure would be (`is_out_of_memory`, `out_of_memory_lesson`).
    """


def is_out_of_memory(error: BaseException) -> bool:
    """True for every way a GPU step fails for want of memory (chapter 10)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m.lower() in str(error).lower() for m in _OOM_MESSAGES)


def memory_cap() -> int | None:
    """The per-process cap in bytes from ``GPTCOURSE_GPU_MEMORY_GIB``, or None when unset."""
    value = os.environ.get(MEMORY_CAP_VARIABLE, "").strip()
    if not value:
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = float("nan")
    if not gib > 0:
        raise ValueError(f"{MEMORY_CAP_VARIABLE}={value!r}: give the cap in GiB as a positive number, e.g. 14.5 for a T4.")
    return int(gib * GIB)


def apply_memory_cap(device: torch.device | str = "cuda") -> int | None:
    """Cap this process's GPU memory at ``GPTCOURSE_GPU_MEMORY_GIB`` (if set); return the cap."""
    cap = memory_cap()
    device = torch.device(device)
    if cap is not None and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    return cap


def free_memory(device: torch.device | str = "cuda") -> int:
    """Bytes this process can still allocate on the GPU: free memory, under the cap if one is set."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device={str(device)!r}: free_memory is for a CUDA GPU; on a CPU, size by estimate_memory alone.")
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached by PyTorch, reusable
    cap = memory_cap()
    if cap is not None:
        free = min(free, cap - torch.cuda.memory_allocated(device))
    return max(0, free)


def host_memory_available() -> int:
    """Bytes of RAM the system can still give this process (``MemAvailable``), chapter 10."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # not Linux: what sysconf knows (free pages, a lower bound)
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_memory(device: torch.device | str) -> int:
    """Bytes a configuration may use on `device`: `free_memory` on a CUDA GPU, free RAM elsewhere (chapter 10).

    A CPU and Apple's MPS both take their tensors from the system's RAM.
    """
    device = torch.device(device)
    return free_memory(device) if device.type == "cuda" else host_memory_available()


def release_memory(*models: torch.nn.Module) -> None:
    """Give back what a finished or failed step held: gradients, unreachable tensors, the CUDA cache (chapter 10).

    Gradients live on the model until set to None; a failed step leaves tensors in reference
    cycles that only the garbage collector finds; PyTorch's caching allocator keeps freed
    blocks reserved until ``torch.cuda.empty_cache()``: other processes (and
    ``torch.cuda.mem_get_info``) see them as used until then.
    """
    for model in models:
        model.zero_grad(set_to_none=True)
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


_ADVICE = (
    "What helps, cheapest first: a smaller batch (activations grow with it); a shorter context "
    "(manual attention's T×T weights grow as T²); mixed precision (fp16 on a T4, bf16 on Ampere "
    "and newer: half the activations); SDPA attention (no T×T matrix); fewer models on the GPU "
    "at once (del them, then gptcourse.gpu_budget.release_memory())."
)


class OutOfMemoryLesson:
    """The context manager `out_of_memory_lesson` returns; ``.happened`` and ``.error`` say what it caught."""

    def __init__(self, what: str = "this cell", models: Iterable[torch.nn.Module] = ()):
        if not isinstance(what, str) or not what.strip():
            raise ValueError(f"what must name the cell's work in a few words, e.g. 'the manual-vs-SDPA timing', got {what!r}.")
        self.what = what
        self.models = tuple(models)
        bad = [m for m in self.models if not isinstance(m, torch.nn.Module)]
        if bad:
            raise TypeError(f"models must be torch.nn.Module objects whose gradients can be dropped, got {bad[0]!r}.")
        self.error: str | None = None  # the error's first line, once one was caught

    @property
    def happened(self) -> bool:
        """True once an out-of-memory error was caught here."""
        return self.error is not None

    def __enter__(self) -> OutOfMemoryLesson:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None or not is_out_of_memory(exc):
            return False  # no error, or one that is not about memory: it propagates unchanged
        self.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        # The traceback's finished frames (the model's forward, the step) still hold their
        # activations: clear them, or the cache cannot be emptied of them below.
        traceback.clear_frames(tb)
        exc.__traceback__ = None
        release_memory(*self.models)
        print(self.lesson())
        return True  # handled: the cell ends here, the notebook goes on

    def lesson(self) -> str:
        """What happened, what was done about it, and what to change (a few lines for the notebook)."""
        lines = [f"Out of memory in {self.what}: {self.error}"]
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            lines.append(f"Memory freed (gradients dropped, the cache emptied): {free_memory('cuda') / GIB:.1f} GiB free now.")
        lines.append(_ADVICE)
        lines.append("Change the sizes at the top of this cell and run it again; the cells after it go on without its results.")
        return "\n".join(lines)


def out_of_memory_lesson(what: str = "this cell", models: Iterable[torch.nn.Module] = ()) -> OutOfMemoryLesson:
    """Catch an out-of-memory error in a notebook cell and teach from it, instead of crashing (chapter 10).

        with out_of_memory_lesson("the manual-vs-SDPA timing", models=[model]) as oom:
            ...   # the cell's GPU work
        if oom.happened:
            ...   # what to show without its results

    Every allocation failure (`is_out_of_memory`: PyTorch's, cuBLAS's, cuDNN's, and
    `EstimatedOutOfMemoryError`) is caught: the failed step's memory is freed (the
    traceback's frames cleared, gradients of ``models`` set to None, the garbage collected,
    the CUDA cache emptied), and a few lines say what happened and what to change. Any
    other error propagates unchanged.
    """
    return OutOfMemoryLesson(what, models)
