"""The figures the chapters draw inline with matplotlib: legible on a phone, described in words.

Each cell's figure code runs here on data shaped like the chapter's (the notebooks themselves
run under nbval; this measures what they draw, tests/legibility.py's measure)."""

from __future__ import annotations

import collections
import math
import sys
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch

from gptcourse import get_tokenizer
from gptcourse.alt_text import describe
from gptcourse.flops import num_parameters
from gptcourse.plots import COLORS, use_style
from gptcourse.sharding import STAGE_NAMES, STAGES, model_state_bytes, ring_all_reduce_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_described, assert_legible  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIRINGS = ["plain: x ← f(x)", "plain + LayerNorm: x ← f(LN(x))", "residual: x ← x + f(x)", "pre-norm residual: x ← x + f(LN(x))"]
KINDS = ["MHA", "GQA (published)", "MQA"]

# (notebook, cell id, where its figure starts): the names the figure's code reads, and numbers its alt text must give
CELLS = {
    ("01_tokens", "5d12dfc3", None): (lambda: {"tokenizer": get_tokenizer(), "text": "def f(x):\n    return x\n" * 50 + "Some prose. " * 40, "collections": collections},
                                      ["tokens by length"]),
    ("05_transformer_block", "d3008b4c", "fig, ax = plt.subplots("): (lambda: {"train_losses": {w: [1.3 - 0.02 * i * k for i in range(50)] for k, w in enumerate(WIRINGS)}, "depth": 32},
                                                                     ["pre-norm residual -1.64", "32-layer"]),
    ("05_transformer_block", "4be05b3e", "fig, axes = plt.subplots("): (lambda: {"lm_losses": {(n, lr): [4.2 - 0.1 * i for i in range(40)] for n in ("pre-norm", "post-norm") for lr in (1e-3, 1e-2)},
                                                                                "math": math}, ["4.16", "0.30"]),
    ("appendix_a_many_gpus", "4436cd2e", None): (lambda: {"num_parameters": num_parameters, "ring_all_reduce_bytes": ring_all_reduce_bytes}, ["6.23 GB", "12.27 GB"]),
    ("appendix_a_many_gpus", "17da67df", None): (lambda: {"psi": num_parameters("gpt2-xl", "all"), "STAGES": STAGES, "STAGE_NAMES": STAGE_NAMES, "model_state_bytes": model_state_bytes},
                                                 ["23.2 GiB", "ZeRO-3 / FSDP"]),
    ("appendix_b_modern_llm", "appb-013", "fig, axes = plt.subplots("): (lambda: {"rope": torch.ones(40, 40), "added": torch.eye(40), "positions": range(40)},
                                                                         ["40 positions", "0.0e+00"]),
    ("appendix_b_modern_llm", "appb-024", None): (lambda: {"cache_gib": {(n, k): v for n, vs in (("smollm2-135m", (0.7, 0.23, 0.08)), ("llama-3.2-1b", (4.0, 1.0, 0.25)))
                                                                        for k, v in zip(KINDS, vs)}, "weights_gib": 2.3, "COLORS": COLORS}, ["4.00 GiB", "2.30 GiB"]),
}


@pytest.mark.parametrize("key", CELLS, ids=lambda key: f"{key[0]}:{key[1]}")
def test_inline_figure_is_legible_on_a_phone_and_says_what_it_shows(key, monkeypatch):
    notebook, cell_id, start = key
    (cell,) = [c for c in nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4).cells if c.get("id") == cell_id]
    source = cell.source if start is None else cell.source[cell.source.index(start):]
    names, numbers = CELLS[key]
    use_style()
    monkeypatch.setattr(plt, "show", lambda: None)
    namespace = {"plt": plt, "describe": describe, "textwrap": textwrap, **names()}
    exec(compile(source, f"{notebook}:{cell_id}", "exec"), namespace)
    fig = namespace["fig"]
    assert_legible(fig, f"{notebook}, cell {cell_id}")
    assert_described(fig, f"{notebook}, cell {cell_id}", numbers)
    plt.close("all")
