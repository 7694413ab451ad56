"""The figures of chapters 1-8: each draws what it is given (gptcourse.plots)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_use_style_sets_the_books_style():
    use_style()
    assert plt.rcParams["axes.spines.top"] is False and plt.rcParams["figure.dpi"] == STYLE["figure.dpi"]


# ---- chapter 1


def test_sliding_windows_pair_each_input_with_its_shifted_target():
    tokens = [f"t{i}" for i in range(12)]
    fig = plot_sliding_window(list(range(12)), tokens, max_length=4, stride=2, n_windows=2)
    (ax,) = panels(fig)
    assert len(ax.patches) == 2 * 2 * 4  # two windows, input and target columns, 4 tokens each
    assert [t.get_text() for t in ax.get_xticklabels()] == ["window 1\ninput", "window 1\ntarget", "window 2\ninput", "window 2\ntarget"]
    columns = {}  # x -> the column's tokens, top to bottom
    for text in ax.texts:
        x, y = text.get_position()
        columns.setdefault(x, []).append((y, text.get_text()))
    assert all(text == f"t{y}" for column in columns.values() for y, text in column), "each token in its position's row"
    first = [[text for _, text in sorted(column)] for _, column in sorted(columns.items())]
    assert first == [["t0", "t1", "t2", "t3"], ["t1", "t2", "t3", "t4"], ["t2", "t3", "t4", "t5"], ["t3", "t4", "t5", "t6"]]


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
