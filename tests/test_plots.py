"""The figures of chapters 1-8: each draws what it is given (gptcourse.plots)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gptcourse import model_plots
from gptcourse.plots import (
    PAGE_WIDTH,
    STYLE,
    plot_activations,
    plot_attention,
    plot_attention_timings,
    plot_cosine_histograms,
    plot_head_heatmaps,
    plot_kv_cache_idea,
    plot_kv_speedup,
    plot_losses,
    plot_lr_schedule,
    plot_next_token_probs,
    plot_one_hot_lookup,
    plot_param_breakdown,
    plot_position_embeddings,
    plot_residual_gradients,
    plot_sliding_window,
    plot_softmax_saturation,
    plot_training_memory,
    use_style,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_described, assert_legible, smallest_text_css_px  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_use_style_sets_the_books_style():
    use_style()
    assert plt.rcParams["axes.spines.top"] is False and plt.rcParams["figure.dpi"] == STYLE["figure.dpi"]


def test_in_a_notebook_each_figure_png_carries_its_alt_text(run_python):
    """As a chapter runs: the shell first, then `use_style()` before pyplot has loaded the inline
    backend, which, as it loads, puts in its own PNG formatter (one without the alt text)."""
    code = """
import base64, io, os
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image
shell = InteractiveShell.instance()
from gptcourse.plots import plot_kv_cache_idea, use_style
use_style()
png = shell.display_formatter.format(plot_kv_cache_idea(3, 5))[0]["image/png"]
print(Image.open(io.BytesIO(base64.b64decode(png) if isinstance(png, str) else png)).info.get("Description"))
"""
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    printed = run_python(code, env=env).stdout
    assert "25 token computations" in printed, f"the notebook's PNG has no alt text: {printed!r}"


# ---- chapter 1


def test_sliding_windows_pair_each_input_with_its_shifted_target():
    tokens = [f"t{i}" for i in range(12)]
    fig = plot_sliding_window(list(range(12)), tokens, max_length=4, stride=2, n_windows=2)
    (ax,) = panels(fig)
    assert len(ax.patches) == 2 * 2 * 4  # two windows, input and target columns, 4 tokens each
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input", "target"]
    cells = [t for t in ax.texts if t.get_text().startswith("t")]
    columns = {}  # x -> the column's tokens, top to bottom, every window's
    for text in cells:
        x, y = text.get_position()
        columns.setdefault(x, []).append((y, text.get_text()))
    inputs, targets = ([text for _, text in sorted(column)] for _, column in sorted(columns.items()))
    assert inputs == ["t0", "t1", "t2", "t3", "t2", "t3", "t4", "t5"], "window 1's tokens, then window 2's (stride 2)"
    assert targets == ["t1", "t2", "t3", "t4", "t3", "t4", "t5", "t6"], "each input's next token"
    rows = {round(y, 3): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}  # row -> position
    assert all(rows[round(text.get_position()[1], 3)] == text.get_text()[1:] for text in cells), "each token in its position's row"
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("window")] == ["window 1: tokens 0 to 4", "window 2: tokens 2 to 6"]


# ---- chapter 2


def test_one_hot_lookup_shows_the_rows_it_picks():
    weight = torch.randn(6, 3)
    fig = plot_one_hot_lookup(torch.tensor([2, 5]), weight)
    one_hot, table, product = panels(fig)
    np.testing.assert_allclose(product.images[0].get_array(), weight[[2, 5]].numpy(), rtol=1e-6)
    assert len(table.patches) == 2, "the two rows picked are outlined"


def test_cosine_histograms_and_position_embeddings():
    fig = plot_cosine_histograms({4: torch.rand(100) * 2 - 1, 64: torch.randn(100) / 8})
    (ax,) = panels(fig)
    assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == ["d = 4", "d = 64"]
    pe = torch.randn(16, 8).tanh()
    values, similarity = panels(plot_position_embeddings(pe))
    np.testing.assert_allclose(np.diag(similarity.images[0].get_array()), 1.0, rtol=1e-5)


# ---- chapter 3


def test_attention_heatmaps_one_panel_per_matrix_and_annotated_when_small():
    tokens = [f"t{i}" for i in range(5)]
    w = torch.softmax(torch.randn(5, 5), dim=-1)
    (ax,) = panels(plot_attention(w, tokens, "one"))
    assert ax.get_title() == "one" and len(ax.texts) == 25, "at most 8 tokens: each weight written in its cell"
    assert len(panels(plot_attention(w, tokens, annotate_up_to=0))[0].texts) == 0
    fig = plot_attention([w, w, w], tokens, ["a", "b", "c"], ncols=2)
    assert [ax.get_title() for ax in panels(fig)] == ["a", "b", "c"]  # a 2 × 2 grid, the fourth hidden


def test_softmax_saturation_one_panel_per_statistic():
    dims = [2, 4, 8]
    results = {"unscaled": {"largest weight": [0.2, 0.4, 0.6]}, "scaled": {"largest weight": [0.2, 0.2, 0.2]}}
    (ax,) = panels(plot_softmax_saturation(dims, results, n_keys=32))
    assert [line.get_label() for line in ax.get_lines()] == ["unscaled", "scaled"]


# ---- chapter 4


@pytest.mark.parametrize("n_heads", [1, 4, 6])
def test_head_heatmaps_one_panel_per_head(n_heads):
    weights = torch.softmax(torch.randn(n_heads, 5, 5), dim=-1)
    tokens = ["a", " b", "c\n", " d", "."]
    heads = panels(plot_head_heatmaps(weights, tokens, title="t"))
    assert [ax.get_title() for ax in heads] == [f"head {h}" for h in range(n_heads)]
    assert [t.get_text() for t in heads[0].get_xticklabels()][2] == "c⏎"
    np.testing.assert_allclose(heads[0].images[0].get_array(), weights[0].numpy(), rtol=1e-6)
    columns = {round(ax.get_position().x0, 3) for ax in heads}
    assert len(columns) == min(n_heads, 2), "two columns: four heads in a 2 × 2 grid"


def test_head_heatmaps_accept_arrays_and_names():
    fig = plot_head_heatmaps(np.eye(3)[None].repeat(2, 0), ["x", "y", "z"], head_names=["first", "second"])
    assert [ax.get_title() for ax in panels(fig)] == ["first", "second"]


def _texts(fig):
    """Every piece of text drawn on a figure's panels: ticks, labels, titles, annotations."""
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for text in [*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]:
            if text.get_visible() and text.get_text():
                yield text


SENTENCE = ["The", " cat", " sat", " on", " the", " mat", " because", " the", " cat", " was", " tired", "."]


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plot_sliding_window(list(range(16)), [" interpreter"] * 16, max_length=4, stride=4, n_windows=3),
        lambda: plot_attention([torch.eye(12), torch.eye(12)], SENTENCE, ["raw embeddings, scaled: softmax(X Xᵀ/√d)", "b"]),
        lambda: plot_head_heatmaps(torch.eye(12).expand(4, 12, 12), SENTENCE, title="Four hand-set heads on the same sentence"),
    ],
    ids=["sliding windows (ch. 1)", "two heatmaps (ch. 3)", "four heads (ch. 4)"],
)
def test_multi_panel_figures_fit_the_page_with_readable_text(draw):
    """Drawn at most PAGE_WIDTH wide, labels included, a figure is shown near its own size in
    the book's column; its text is then at least 7.5 points, about 10 px on the page."""
    fig = draw()
    fig.canvas.draw()
    width = fig.get_tightbbox(fig.canvas.get_renderer()).width  # inches, with every label
    assert width <= PAGE_WIDTH + 0.1, f"{width:.2f} in is wider than the page's {PAGE_WIDTH} in"
    sizes = {text.get_text(): text.get_fontsize() for text in _texts(fig)}
    small = {text: size for text, size in sizes.items() if size < 7.5}
    assert not small, f"text too small to read on the page: {small}"


def test_attention_timings_one_panel_per_pass_one_line_per_variant():
    timings = {name: {"forward": [1.0, 2.0], "forward + backward": [3.0, 6.0]} for name in ("wrapper", "batched", "SDPA")}
    fig = plot_attention_timings([64, 128], timings, device_label="CPU")
    axes = panels(fig)
    assert [ax.get_title() for ax in axes] == ["forward", "forward + backward"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == ["wrapper", "batched", "SDPA"]
        assert ax.get_yscale() == "log" and "ms" in ax.get_ylabel()
    assert "CPU" in fig._suptitle.get_text()


# ---- chapter 5


def test_activations_with_and_without_derivatives():
    x = torch.linspace(-3, 3, 50)
    assert len(panels(plot_activations(x, {"ReLU": torch.relu(x)}))) == 1
    fig = plot_activations(x, {"ReLU": torch.relu(x), "GELU": F.gelu(x)}, {"ReLU": (x > 0).float(), "GELU": x})
    left, right = panels(fig)
    assert len(left.get_lines()) == 2 + 2  # two curves and the two axis lines
    assert right.get_ylabel() == "f'(x)"


def test_residual_gradients_draw_underflow_at_the_floor():
    fig = plot_residual_gradients(
        {"plain": [0.0, 1e-5, 1.0], "residual": [1.0, 1.0, 1.0]}, {"plain": [1, 1, 1], "residual": [1, 2, 3]}, floor=1e-20
    )
    grads, stds = panels(fig)
    assert grads.get_yscale() == "log" and stds.get_yscale() == "log"
    plain = grads.get_lines()[0]
    assert list(plain.get_xdata()) == [1, 2, 3]
    assert plain.get_ydata()[0] == 1e-20


# ---- chapter 6


def test_param_breakdown_totals():
    fig = plot_param_breakdown(["a", "b"], {"embedding": [1_000_000, 2_000_000], "blocks": [3_000_000, 10_000_000]})
    (ax,) = panels(fig)
    assert len(ax.patches) == 4
    assert {t.get_text().strip() for t in ax.texts} == {"4M", "12M"}


def test_training_memory_bars_and_limits():
    fig = plot_training_memory(["s", "m", "l"], {"fp32": [1, 2, 3], "bf16": [0.5, 1, 1.5]}, limits={"T4: 16 GB": 16})
    (ax,) = panels(fig)
    assert sorted(p.get_height() for p in ax.patches) == [0.5, 1, 1, 1.5, 2, 3]
    assert any(t.get_text() == "T4: 16 GB" for t in ax.texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s", "m", "l"]


def test_next_token_probs_bars():
    probs = {"τ = 1": torch.softmax(torch.randn(4), 0), "τ = 2": [0.25] * 4}
    (ax,) = panels(plot_next_token_probs(["a", "b", "c", "d"], probs))
    assert len(ax.patches) == 8 and ax.get_ylim() == (0.0, 1.0)
    assert [p.get_height() for p in ax.patches[4:]] == [0.25] * 4


# ---- chapter 7


def test_loss_and_schedule_figures():
    history = {"step": [0, 2], "tokens_seen": [0, 128], "train_loss": [4.5, 3.0], "val_loss": [4.6, 3.2], "step_loss": [4.0, 3.5]}
    fig = plot_losses(history, baseline=math.log(97))
    assert [line.get_label() for line in fig.axes[0].get_lines()][:3] == ["batch loss (each step)", "training loss", "validation loss"]
    no_validation = plot_losses(dict(history, val_loss=[math.nan, math.nan]))
    assert "validation loss" not in [line.get_label() for line in no_validation.axes[0].get_lines()]
    lrs = [1e-3 * min(1, (s + 1) / 2) for s in range(20)]
    fig2 = plot_lr_schedule(range(20), lrs, warmup_steps=2)
    assert max(fig2.axes[0].get_lines()[0].get_ydata()) == pytest.approx(1e-3)


# ---- chapter 8


def test_kv_figures():
    titles = [ax.get_title() for ax in plot_kv_cache_idea(prompt_tokens=3, new_tokens=5).axes]
    assert titles == ["Without a KV cache: 25 token computations", "With a KV cache: 7 token computations"]  # 3+4+5+6+7; 3+1+1+1+1
    fig = plot_kv_speedup([8, 16], {"m": ([0.2, 0.8], [0.1, 0.2])}, {"m": [[1.0, 2.0, 2.5], [4.0, 3.0, 6.0]]})
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx([200, 800]), "milliseconds per step"
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [2.0, 4.0], "the median of the rounds' speed-ups"


# ---- every figure, as the chapters draw it: legible on a phone, described in words

_g = torch.Generator().manual_seed(0)
CAT = ["The", " cat", " sat", " on", " the", " mat", " because", " the", " cat", " was", " tired", "."]  # ch. 3 and 4
CH1 = ["In", " the", " beginning", " the", " Python", " interpreter", " reads", " a", " program", ",", " token", " by", " token", "."]


def _causal(heads: int, tokens: int = 12) -> torch.Tensor:
    """Random causal attention weights, (heads, T, T), as chapter 4's modules give."""
    future = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
    return torch.softmax(torch.randn(heads, tokens, tokens, generator=_g).masked_fill(future, float("-inf")), dim=-1)


def _sinusoidal(n: int, d: int) -> torch.Tensor:  # chapter 2's table
    t, freq = torch.arange(n, dtype=torch.float32)[:, None], 10000 ** (-torch.arange(0, d, 2) / d)
    return torch.stack([torch.sin(t * freq), torch.cos(t * freq)], dim=-1).flatten(1)


def _saturation():  # chapter 3: three statistics at ten widths, two variants
    dims = [2**k for k in range(1, 11)]
    fall = [0.2 + 0.08 * k for k in range(10)]
    return dims, {"unscaled": {"largest weight": fall, "entropy (nats)": [3.4 - 0.3 * k for k in range(10)], "keys above 1% weight": [30 - 2.8 * k for k in range(10)]},
                  "scaled by 1/√d": {"largest weight": [0.2] * 10, "entropy (nats)": [3.1] * 10, "keys above 1% weight": [26.0] * 10}}


def _timings(lens):  # chapter 4's three modules, milliseconds
    return {v: {"forward": [0.01 * t * (i + 1) for t in lens], "forward + backward": [0.03 * t * (i + 1) for t in lens]} for i, v in enumerate(["wrapper", "batched", "SDPA"])}


WIRINGS = ["plain: x ← f(x)", "plain + LayerNorm: x ← f(LN(x))", "residual: x ← x + f(x)", "pre-norm residual: x ← x + f(LN(x))"]
GPT2 = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]
GPT2_PARTS = {"token embedding (tied)": [38597376, 51463168, 64328960, 80410880], "position embedding": [786432, 1048576, 1310720, 1638400],
              "attention": [28320768, 100761600, 236113920, 491891200], "feed-forward": [56669184, 201449472, 472080384, 983971200],
              "LayerNorms": [38400, 100352, 186880, 321600]}
REGIMES = {"inference, bf16 (2 B)": 2, "inference, fp32 (4 B)": 4, "training, pure bf16 (8 B)": 8, "training, fp32 or mixed (16 B)": 16}
LOGITS = torch.tensor([5.0, 4.2, 3.9, 2.5, 1.5, 0.5, -0.5, -1.0, -2.0])
XS = torch.linspace(-4, 4, 401)
HISTORY = {"step": [0, 48, 96, 144, 192, 240], "tokens_seen": [0, 98304, 196608, 294912, 393216, 491520], "train_loss": [10.9, 6.2, 5.1, 4.6, 4.3, 4.1],
           "val_loss": [10.95, 6.3, 5.3, 4.9, 4.7, 4.6], "step_loss": [10.9 * math.exp(-i / 40) + 4 for i in range(240)]}
KV_MODELS = {"1M, 2 layers × 64": 1, "4M, 4 layers × 256": 2, "25M, 6 layers × 512": 3}

# (the figure as a chapter draws it, numbers its alt text must give)
CHAPTER_FIGURES = {
    "ch1 sliding windows": (lambda: plot_sliding_window(list(range(14)), CH1, max_length=4, stride=4, n_windows=3), ["14-token", "'In the beginning the'"]),
    "ch2 one-hot lookup": (lambda: plot_one_hot_lookup(torch.tensor([2, 5, 1, 2]), torch.randn(6, 3, generator=_g), ["id 2", "id 5", "id 1", "id 2"]),
                           ["4×6", "rows 2, 5, 1 and 2"]),
    "ch2 cosine histograms": (lambda: plot_cosine_histograms({d: torch.full((500,), 0.5 / math.sqrt(d)) * torch.tensor([1.0, -1.0]).repeat(250) for d in (4, 64, 768)}),
                              ["0.250", f"{0.5 / math.sqrt(768):.3f}"]),
    "ch2 position embeddings": (lambda: plot_position_embeddings(_sinusoidal(128, 64)), ["128 positions by 64 dimensions"]),
    "ch3 raw attention": (lambda: plot_attention(torch.eye(12), CAT, "softmax(X Xᵀ): raw embeddings, no scale"), ["1.00 of its weight", "12 tokens"]),
    "ch3 two heatmaps": (lambda: plot_attention([torch.eye(12), torch.full((12, 12), 1 / 12)], CAT, ["raw embeddings, scaled: softmax(X Xᵀ/√d)", "random W_q, W_k: softmax(Q Kᵀ/√d)"]),
                         ["1.00", "0.08"]),
    "ch3 causal mask": (lambda: plot_attention([_causal(1)[0], _causal(1)[0]], CAT, ["no mask", "causal mask"]), ["causal"]),
    "ch3 softmax saturation": (lambda: plot_softmax_saturation(*_saturation(), n_keys=32), ["32 keys", "0.2 to 0.92"]),
    "ch4 untrained heads": (lambda: plot_head_heatmaps(_causal(4), CAT, title="An untrained module: each head mixes the past its own random way"), ["head 3", "12 tokens"]),
    "ch4 hand-set heads": (lambda: plot_head_heatmaps(torch.eye(12).expand(4, 12, 12), CAT, ["head 0: previous token", "head 1: same token", "head 2: first token", "head 3: average"],
                                                      title="Four hand-set heads on the same sentence"), ["head 1: same token", "1.00"]),
    "ch4 trained heads": (lambda: plot_head_heatmaps(_causal(4), [str(i) for i in range(7, 19)], title="Four trained heads"), ["7, 8, 9"]),
    "ch4 timings, CPU": (lambda: plot_attention_timings([64, 128, 256, 512], _timings([64, 128, 256, 512]), "CPU, 2 threads"), ["15.4 ms", "CPU, 2 threads"]),
    "ch4 timings, GPU": (lambda: plot_attention_timings([128, 256, 512, 1024, 2048], _timings([128, 256, 512, 1024, 2048]), "NVIDIA H100 80GB HBM3"), ["61.4 ms", "2048"]),
    "ch5 activations": (lambda: plot_activations(XS, {"ReLU": torch.relu(XS), "GELU (exact, erf)": F.gelu(XS), "GELU (tanh, GPT-2)": F.gelu(XS, approximate="tanh")},
                                                 {"ReLU": (XS > 0).float(), "GELU (exact, erf)": torch.full_like(XS, -0.08), "GELU (tanh, GPT-2)": torch.full_like(XS, -0.08)}),
                        ["-0.170", "-0.08"]),
    "ch5 residual gradients": (lambda: plot_residual_gradients({w: [10.0 ** -(31 - k) if i == 0 else 1.0 for k in range(32)] for i, w in enumerate(WIRINGS)},
                                                               {w: [1.1**k if i == 2 else 0.5 for k in range(32)] for i, w in enumerate(WIRINGS)}),
                               ["1.0e-31", "19 in residual"]),
    "ch6 parameters": (lambda: plot_param_breakdown(GPT2, GPT2_PARTS), ["124M", "1,558M"]),
    "ch6 training memory": (lambda: plot_training_memory(GPT2, {r: [n * b / 1e9 for n in (124439808, 354823168, 774030080, 1557611200)] for r, b in REGIMES.items()},
                                                         limits={"T4: 16 GB": 16}), ["24.9 GB", "1 of the 16"]),
    "ch6 sampling": (lambda: plot_next_token_probs([" mat", " floor", " sofa", " roof", " dog", " moon", " idea", " of", " quickly"],
                                                   {f"τ = {t}": torch.softmax(LOGITS / t, -1) for t in (0.5, 1, 2)}), [f"{torch.softmax(LOGITS / 0.5, -1)[0]:.2f}", "' mat'"]),
    "ch8 sampling": (lambda: plot_next_token_probs(["'\\n'", "' the'", "' a'", "' I'", "','", "' and'", "' to'", "' of'"],
                                                   {f"τ = {t}": torch.softmax(LOGITS[:8] / t, -1) for t in (0.5, 1.0, 2.0)}), [f"{torch.softmax(LOGITS[:8], -1)[0]:.2f}"]),
    "ch7 losses": (lambda: plot_losses(HISTORY, baseline=math.log(50257), title="Training 4-layer GPT on the Python docs (cpu)"), ["10.90 to 4.10", "10.95 to 4.60", "10.82"]),
    "ch7 learning rate": (lambda: plot_lr_schedule(range(240), [1e-3 * min(1, (s + 1) / 20) for s in range(240)], 20), ["0.001", "step 20", "240"]),
    "ch8 KV cache idea": (lambda: plot_kv_cache_idea(prompt_tokens=3, new_tokens=5), ["25 token computations", ": 7."]),
    "ch8 KV speed-up": (lambda: plot_kv_speedup([32, 64, 128, 256], {m: ([k * t / 32e3 for t in (32, 64, 128, 256)], [k / 1e3] * 4) for m, k in KV_MODELS.items()},
                                                {m: [[t / 32 * f for f in (0.9, 1.0, 1.2)] for t in (32, 64, 128, 256)] for m in KV_MODELS}), ["8.0× for 1M"]),
}


@pytest.mark.parametrize("name", CHAPTER_FIGURES)
def test_every_figure_is_legible_on_a_phone_and_says_what_it_shows(name):
    """Every text at least 8 CSS px in the phone's 358-px column, the figure no wider than the
    desktop column; and alt text that is a sentence with the figure's own numbers in it."""
    use_style()
    draw, numbers = CHAPTER_FIGURES[name]
    fig = draw()
    assert_legible(fig, name)
    assert_described(fig, name, numbers)


def test_the_style_leaves_room_for_legible_text():
    """PAGE_WIDTH and the smallest font together: 10-point text in a figure PAGE_WIDTH wide is
    8 CSS px or more on a phone (tests/legibility.py's floor)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_title("title")
    px, text = smallest_text_css_px(fig)
    assert px >= 8.0, f"{text!r}: {px:.1f} CSS px"


def test_chapters_6_to_8_figures_are_the_same_from_either_module():
    assert plot_losses is model_plots.plot_losses and plot_kv_speedup is model_plots.plot_kv_speedup
