"""gptcourse.gpu_runs: every GPU configuration of the notebooks fits a T4, and the batch that fits (chapter 10)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from gptcourse import GPTConfig, gpu_runs
from gptcourse.gpu_budget import GIB, SAFETY_FRACTION, T4_FREE_BYTES, EstimatedOutOfMemoryError, out_of_memory_lesson
from gptcourse.gpu_runs import GPU_RUNS, GPURun, _run_table, fit_batch_size, fits, t4_plan
from gptcourse.memory import estimate_memory

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TINY = GPTConfig(vocab_size=128, context_length=16, emb_dim=32, n_heads=4, n_layers=2)
SMALL_WEIGHTS = 4 * 124_439_808  # GPT-2 small's fp32 weights, kept alongside in chapter 10


@pytest.mark.parametrize("run, need, limit", t4_plan(), ids=lambda x: x.name if isinstance(x, GPURun) else "")
def test_every_gpu_run_fits_a_t4_by_the_estimate(run, need, limit):
    assert limit == int(SAFETY_FRACTION * (T4_FREE_BYTES - run.alongside_memory))
    assert need <= limit, (
        f"{run.name} ({run.what}): batch {run.batch_size} × {run.seq_len} needs {need / GIB:.2f} GiB by the estimate, "
        f"more than {SAFETY_FRACTION:.0%} of a T4's {T4_FREE_BYTES / GIB} GiB free less {run.alongside_memory / GIB:.2f} GiB "
        "kept alongside: lower its batch in GPU_RUNS (and in the notebook)."
    )
    assert fits(run, budget=T4_FREE_BYTES)
    assert run.fit(budget=T4_FREE_BYTES)[0] == run.batch_size


def test_the_t4_plan_counts_every_model_on_the_gpu():
    run = GPU_RUNS["ch10-vocab"]  # two GPT-2 smalls timed in turns, chapter 10's model beside them
    one = estimate_memory(run.gpt_config(), 4, 1024, torch.float16, "sdpa", "cuda")
    assert run.memory() == one.total + one.model_state  # the second model holds its state, not activations
    assert run.alongside_memory == SMALL_WEIGHTS
    inference = GPU_RUNS["ch08-gpt2-generation"]  # ours and transformers' GPT-2, forward only, fp32
    assert inference.torch_dtype() == torch.float32 and inference.estimate().gradients == 0
    assert inference.memory() == 2 * SMALL_WEIGHTS + inference.estimate().logits
    attention = GPU_RUNS["ch04-attention-timing"]  # three attention modules, no GPT
    assert attention.estimate().optimizer == 0 and attention.memory() > 3 * 4 * 12 * 2048**2


def test_the_issue_s_configuration_is_refused_and_halved():
    # Chapter 10 used to time manual attention on GPT-2 small at batch 8 × 1024 in fp16:
    # 15.25 GiB by the estimate, beside the resident model, on a T4 with 14.5 GiB free.
    too_big = dataclasses.replace(GPU_RUNS["ch10-attention"], batch_size=8)
    assert not fits(too_big, budget=T4_FREE_BYTES)
    batch, reason = too_big.fit(budget=T4_FREE_BYTES)
    assert batch == 4
    assert reason.startswith("batch 8 → 4 × 1024: batch 8 needs ") and "less 0.5 GiB kept alongside" in reason


def fake_free(monkeypatch, gib):
    monkeypatch.setattr(gpu_runs, "available_memory", lambda device: int(gib * GIB))


def test_fit_batch_size_halves_until_the_estimate_fits_what_is_free(monkeypatch):
    fake_free(monkeypatch, 8)
    need = {b: estimate_memory("gpt2-small", b, 1024, torch.float16, "sdpa", "cuda").total for b in (2, 4, 8)}
    assert need[8] > 0.85 * 8 * GIB >= need[4]
    batch, reason = fit_batch_size("gpt2-small", 8, 1024, torch.float16, "sdpa", device="cuda")
    assert batch == 4
    assert reason == (
        f"batch 8 → 4 × 1024: batch 8 needs {need[8] / GIB:.1f} GiB by the estimate, more than 85% of the "
        f"8.0 GiB free on cuda; batch 4 needs {need[4] / GIB:.1f} GiB"
    )
    assert fit_batch_size("gpt2-small", 4, 1024, torch.float16, "sdpa", device="cuda") == (
        4,
        f"batch 4 × 1024 fits: the estimate, {need[4] / GIB:.1f} GiB, is within 85% of the 8.0 GiB free on cuda",
    )
    # two models at once: the second holds its weights, gradients and AdamW state (1.9 GiB)
    assert fit_batch_size("gpt2-small", 4, 1024, torch.float16, "sdpa", device="cuda", models=2)[0] == 2
    # a GPURun asks the same question of the memory free on the device
    assert GPU_RUNS["ch10-model"].fit("cuda")[0] == 4


def test_nothing_fits_is_an_out_of_memory_error_the_lesson_explains(monkeypatch, capsys):
    fake_free(monkeypatch, 0.5)
    with pytest.raises(EstimatedOutOfMemoryError, match=r"Not even batch 1 × 1024 fits: it needs .* GiB by the estimate"):
        fit_batch_size("gpt2-small", 8, 1024, torch.float16, device="cuda")
    with out_of_memory_lesson("chapter 10's model") as oom:
        GPU_RUNS["ch10-model"].fit("cuda")
    assert oom.happened and "Out of memory in chapter 10's model: Not even batch 1" in capsys.readouterr().out


def test_fit_batch_size_plans_with_a_budget_and_runs_anywhere():
    # A plan for a T4, made on a CPU: the budget, less what is kept alongside.
    batch, reason = fit_batch_size(
        "gpt2-small", 8, 1024, torch.float16, "manual", device="cuda", budget=T4_FREE_BYTES, resident=SMALL_WEIGHTS
    )
    assert batch == 4 and "of the 14.5 GiB budget less 0.5 GiB kept alongside" in reason
    # On a CPU, the RAM available: a tiny model fits as asked.
    batch, reason = fit_batch_size(TINY, 8, device="cpu")
    assert batch == 8 and reason.startswith("batch 8 × 16 fits") and "of RAM available on cpu" in reason


def test_fit_batch_size_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        fit_batch_size(TINY, 0, device="cpu")
    with pytest.raises(ValueError, match="seq_len must be at most the context length, 16, got 17"):
        fit_batch_size(TINY, 2, 17, device="cpu")
    with pytest.raises(ValueError, match="attention 'flash'"):
        fit_batch_size(TINY, 2, attention="flash", device="cpu")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        fit_batch_size(TINY, 2, dtype="fp16", device="cpu")
    with pytest.raises(ValueError, match="models must be a positive int"):
        fit_batch_size(TINY, 2, device="cpu", models=0)
    with pytest.raises(ValueError, match="resident is for a plan with a budget"):
        fit_batch_size(TINY, 2, device="cpu", resident=10)
    with pytest.raises(ValueError, match="budget must be a positive int"):
        fit_batch_size(TINY, 2, device="cuda", budget=0)


def test_fits_takes_a_run_or_bytes():
    limit = int(SAFETY_FRACTION * T4_FREE_BYTES)
    assert fits(limit, budget=T4_FREE_BYTES) and not fits(limit + 1, budget=T4_FREE_BYTES)
    assert fits(1, device="cpu")
    with pytest.raises(TypeError, match="fits takes a GPURun or a number of bytes"):
        fits("ch10-model", budget=T4_FREE_BYTES)


def test_a_gpu_run_checks_its_fields():
    base = dict(chapter=10, name="x", what="a test", batch_size=2, seq_len=128)
    assert GPURun(**base).torch_dtype() == torch.float16  # planned on a CPU: a T4's autocast dtype
    assert GPURun(**base, dtype="fp32").torch_dtype("cpu") == torch.float32
    for change, message in [
        (dict(dtype="bf16"), "Unknown GPURun.dtype 'bf16'; choose one of: 'autocast', 'fp32'"),
        (dict(attention="flash"), "Unknown GPURun.attention 'flash'"),
        (dict(module="mlp"), "Unknown GPURun.module 'mlp'"),
        (dict(config="gpt5"), "Unknown preset 'gpt5'"),
        (dict(alongside=("gpt5",)), "Unknown GPURun.alongside preset 'gpt5'"),
        (dict(seq_len=2048), "seq_len must be at most the context length, 1024, got 2048"),
        (dict(batch_size=0), "batch_size must be a positive int, got 0"),
        (dict(models_resident=0), "models_resident must be a positive int, got 0"),
        (dict(name=" "), "GPURun.name must be a non-empty str"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            GPURun(**{**base, **change})
    with pytest.raises(TypeError, match="unexpected keyword argument 'width'"):
        GPURun(**base, overrides=(("width", 3),))
    with pytest.raises(ValueError, match="Two GPU runs are named 'x'"):
        _run_table(GPURun(**base), GPURun(**base))


RUN_NAME = re.compile(r"""["'](ch\d\d-[a-z0-9-]+)["']""")  # a quoted run name, e.g. "ch10-attention"


def _runs_named_in(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return {name for c in cells if c["cell_type"] == "code" for name in RUN_NAME.findall("".join(c["source"]))}


def test_the_notebooks_name_their_gpu_runs():
    # GPU_RUNS is the notebooks' own record of what they run on a GPU, and they read their
    # GPU sizes from it (GPU_RUNS["ch10-attention"].fit(device)): every run name a notebook
    # quotes is a run, and every run is named by its chapter's notebook.
    named = {path.name: _runs_named_in(path) for path in sorted(NOTEBOOKS.glob("*.ipynb"))}
    unknown = {nb: sorted(names - set(GPU_RUNS)) for nb, names in named.items() if names - set(GPU_RUNS)}
    assert not unknown, f"run names not in gptcourse.gpu_runs.GPU_RUNS: {unknown}"
    for run in GPU_RUNS.values():
        notebooks = [nb for nb in named if nb.startswith(f"{run.chapter:02d}_")]
        assert len(notebooks) == 1, f"{run.name}: no notebook (or several) for chapter {run.chapter}"
        assert run.name in named[notebooks[0]], f'{notebooks[0]} should take its GPU sizes from GPU_RUNS["{run.name}"]'
