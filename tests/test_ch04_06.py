"""Chapters 4 to 6: the figures they show, and the facts their prose relies on."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from gptcourse import GPT, GPTConfig
from gptcourse.plots import (
    plot_activations,
    plot_attention_timings,
    plot_head_heatmaps,
    plot_next_token_probs,
    plot_param_breakdown,
    plot_residual_gradients,
    plot_training_memory,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


# ---- chapter 4


@pytest.mark.parametrize("n_heads", [1, 4, 6])
def test_head_heatmaps_one_panel_per_head(n_heads):
    weights = torch.softmax(torch.randn(n_heads, 5, 5), dim=-1)
    tokens = ["a", " b", "c\n", " d", "."]
    fig = plot_head_heatmaps(weights, tokens, title="t")
    assert isinstance(fig, Figure)
    panels = [ax for ax in visible_axes(fig) if ax.get_label() != "<colorbar>"]
    assert len(panels) == n_heads
    assert [ax.get_title() for ax in panels] == [f"head {h}" for h in range(n_heads)]
    assert [t.get_text() for t in panels[0].get_xticklabels()][2] == "c⏎"
    np.testing.assert_allclose(panels[0].images[0].get_array(), weights[0].numpy(), rtol=1e-6)


def test_head_heatmaps_accept_arrays_and_names():
    fig = plot_head_heatmaps(np.eye(3)[None].repeat(2, 0), ["x", "y", "z"], head_names=["first", "second"])
    assert [ax.get_title() for ax in visible_axes(fig) if ax.get_title()] == ["first", "second"]


def test_attention_timings_one_panel_per_pass_one_line_per_variant():
    timings = {name: {"forward": [1.0, 2.0], "forward + backward": [3.0, 6.0]} for name in ("wrapper", "batched", "SDPA")}
    fig = plot_attention_timings([64, 128], timings, device_label="CPU")
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["forward", "forward + backward"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == ["wrapper", "batched", "SDPA"]
        assert ax.get_yscale() == "log" and "ms" in ax.get_ylabel()
    assert "CPU" in fig._suptitle.get_text()


# ---- chapter 5


def test_activations_with_and_without_derivatives():
    x = torch.linspace(-3, 3, 50)
    assert len(visible_axes(plot_activations(x, {"ReLU": torch.relu(x)}))) == 1
    fig = plot_activations(x, {"ReLU": torch.relu(x), "GELU": F.gelu(x)}, {"ReLU": (x > 0).float(), "GELU": x})
    left, right = visible_axes(fig)
    assert len(left.get_lines()) == 2 + 2  # two curves and the two axis lines
    assert right.get_ylabel() == "f'(x)"


def test_residual_gradients_draw_underflow_at_the_floor():
    fig = plot_residual_gradients(
        {"plain": [0.0, 1e-5, 1.0], "residual": [1.0, 1.0, 1.0]}, {"plain": [1, 1, 1], "residual": [1, 2, 3]}, floor=1e-20
    )
    grads, stds = visible_axes(fig)
    assert grads.get_yscale() == "log" and stds.get_yscale() == "log"
    plain = grads.get_lines()[0]
    assert list(plain.get_xdata()) == [1, 2, 3]
    assert plain.get_ydata()[0] == 1e-20


def test_the_tanh_gelu_is_close_to_the_exact_one():
    # chapter 5 prints this gap and says it is below 1e-3
    xs = torch.linspace(-6, 6, 2001)
    assert (F.gelu(xs) - F.gelu(xs, approximate="tanh")).abs().max() < 1e-3


# ---- chapter 6


def test_param_breakdown_totals():
    fig = plot_param_breakdown(["a", "b"], {"embedding": [1_000_000, 2_000_000], "blocks": [3_000_000, 10_000_000]})
    (ax,) = visible_axes(fig)
    assert len(ax.patches) == 4
    assert {t.get_text().strip() for t in ax.texts} == {"4M", "12M"}


def test_training_memory_bars_and_limits():
    fig = plot_training_memory(["s", "m", "l"], {"fp32": [1, 2, 3], "bf16": [0.5, 1, 1.5]}, limits={"T4: 16 GB": 16})
    (ax,) = visible_axes(fig)
    assert len(ax.patches) == 6
    assert any(t.get_text() == "T4: 16 GB" for t in ax.texts)
    assert "GB" in ax.get_ylabel()


def test_next_token_probs_bars():
    probs = {"τ = 1": torch.softmax(torch.randn(4), 0), "τ = 2": [0.25] * 4}
    fig = plot_next_token_probs(["a", "b", "c", "d"], probs)
    (ax,) = visible_axes(fig)
    assert len(ax.patches) == 8 and ax.get_ylim() == (0.0, 1.0)


def test_gpt_parameter_formula_for_every_size():
    # chapter 6: N = V d + C d + L (12 d^2 + 13 d) + 2 d, with the output head tied
    for name in ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt-nano"):
        c = GPTConfig.from_preset(name)
        with torch.device("meta"):
            model = GPT(c)
        formula = (
            c.vocab_size * c.emb_dim + c.context_length * c.emb_dim + c.n_layers * (12 * c.emb_dim**2 + 13 * c.emb_dim) + 2 * c.emb_dim
        )
        assert model.num_parameters() == formula, name


@pytest.mark.parametrize(("dtype", "expected"), [(torch.float32, 16), (torch.bfloat16, 8)])
def test_adamw_training_state_bytes_per_parameter(dtype, expected):
    # chapter 6 measures this: weights + gradients + AdamW's two moments
    model = GPT(GPTConfig(vocab_size=100, context_length=8, emb_dim=16, n_heads=2, n_layers=1)).to(dtype)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randint(0, 100, (2, 8))).float().sum().backward()
    optimizer.step()
    n = model.num_parameters()
    held = sum(p.numel() * p.element_size() * 2 for p in model.parameters())  # weight and gradient
    held += sum(t.numel() * t.element_size() for s in optimizer.state.values() for k, t in s.items() if k != "step")
    assert held == expected * n
