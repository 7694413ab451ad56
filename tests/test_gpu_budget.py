"""gptcourse.gpu_budget: out-of-memory errors, the memory cap, free memory, the lesson (chapter 10), on a CPU."""

from __future__ import annotations

import types
import weakref

import pytest
import torch

from gptcourse import GPT, GPTConfig, gpu_budget
from gptcourse.gpu_budget import (
    GIB,
    MEMORY_CAP_VARIABLE,
    EstimatedOutOfMemoryError,
    apply_memory_cap,
    available_memory,
    free_memory,
    is_out_of_memory,
    memory_cap,
    out_of_memory_lesson,
    release_memory,
)

TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)

OUT_OF_MEMORY = [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 14.75 GiB total capacity)"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB."),
    EstimatedOutOfMemoryError("Not even batch 1 × 1024 fits"),
]
NOT_OUT_OF_MEMORY = [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)"),
    ValueError("out of memory"),  # a ValueError is a bad argument, whatever it says
    KeyboardInterrupt(),
]


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_every_allocation_failure_is_out_of_memory(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", NOT_OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_other_errors_are_not(error):
    assert not is_out_of_memory(error)


def test_memory_cap_reads_the_variable(monkeypatch):
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert memory_cap() is None
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert memory_cap() == int(14.5 * GIB)
    for bad in ["0", "-1", "fifteen", "nan"]:
        monkeypatch.setenv(MEMORY_CAP_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{MEMORY_CAP_VARIABLE}=.*positive number, e.g. 14.5 for a T4"):
            memory_cap()


def fake_gpu(monkeypatch, free, reserved, allocated, total=80 * GIB):
    """Pretend torch.cuda has a GPU with these numbers of bytes; record the fraction it is capped to."""
    capped = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: types.SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction, device=None: capped.append(fraction))
    return capped


def test_free_memory_counts_the_cache_and_obeys_the_cap(monkeypatch):
    fake_gpu(monkeypatch, free=10 * GIB, reserved=3 * GIB, allocated=2 * GIB)
    monkeypatch.delenv(MEMORY_CAP_VARIABLE, raising=False)
    assert free_memory("cuda") == 11 * GIB  # 1 GiB reserved but unused is PyTorch's to reuse
    assert available_memory("cuda") == 11 * GIB
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "4")
    assert free_memory("cuda") == 2 * GIB  # the cap less what is allocated


def test_apply_memory_cap_sets_the_fraction_of_the_whole_gpu(monkeypatch):
    capped = fake_gpu(monkeypatch, free=70 * GIB, reserved=0, allocated=0, total=80 * GIB)
    monkeypatch.setenv(MEMORY_CAP_VARIABLE, "14.5")
    assert apply_memory_cap("cuda") == int(14.5 * GIB)
    assert capped == [pytest.approx(14.5 / 80)]
    assert apply_memory_cap("cpu") == int(14.5 * GIB) and len(capped) == 1  # nothing to cap on a CPU
    monkeypatch.delenv(MEMORY_CAP_VARIABLE)
    assert apply_memory_cap("cuda") is None and len(capped) == 1


def test_free_memory_is_for_a_gpu_and_available_memory_for_any_device():
    with pytest.raises(ValueError, match="free_memory is for a CUDA GPU"):
        free_memory("cpu")
    assert 0 < available_memory("cpu") < 2**50


def test_release_memory_drops_gradients_and_empties_the_cache(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    model = GPT(TINY)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    release_memory(model)
    assert all(p.grad is None for p in model.parameters()) and emptied == [True]


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=lambda e: type(e).__name__)
def test_the_lesson_catches_out_of_memory_and_the_notebook_goes_on(error, capsys):
    model = GPT(TINY)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    with out_of_memory_lesson("the manual-vs-SDPA timing", models=[model]) as oom:
        raise error
    printed = capsys.readouterr().out
    assert oom.happened and oom.error == str(error).splitlines()[0]
    assert printed.startswith(f"Out of memory in the manual-vs-SDPA timing: {oom.error}")
    for advice in ["smaller batch", "shorter context", "mixed precision", "SDPA", "run it again"]:
        assert advice in printed, f"the lesson should mention {advice!r}"
    assert all(p.grad is None for p in model.parameters())


def test_the_lesson_lets_other_errors_through_unchanged(capsys):
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError) as caught, out_of_memory_lesson() as oom:
        raise error
    assert caught.value is error and not oom.happened and capsys.readouterr().out == ""
    with out_of_memory_lesson() as oom:
        pass
    assert not oom.happened and oom.error is None and capsys.readouterr().out == ""


def test_the_lesson_frees_the_failed_step_before_emptying_the_cache(monkeypatch):
    # The traceback holds the failed forward's frames, and they hold its activations: the
    # lesson must let them go before it empties the CUDA cache, or the cache keeps them.
    freed_before_release = []
    activations = None

    def fake_release(*models):
        freed_before_release.append(activations() is None)

    def forward():
        nonlocal activations
        hidden = torch.ones(1000)
        activations = weakref.ref(hidden)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(gpu_budget, "release_memory", fake_release)
    with out_of_memory_lesson("a step"):
        forward()
    assert freed_before_release == [True]


def test_the_lesson_rejects_bad_arguments():
    with pytest.raises(ValueError, match="what must name the cell's work"):
        out_of_memory_lesson("")
    with pytest.raises(TypeError, match="models must be torch.nn.Module objects"):
        out_of_memory_lesson("a step", models=[torch.zeros(1)])
