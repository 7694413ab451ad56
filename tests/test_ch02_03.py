"""Chapters 2 and 3: the warm-up attention modules, and the figures and explorer they show."""

import math

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from gptcourse.attention import CausalAttention, SelfAttentionV1, SelfAttentionV2
from gptcourse.plots import (
    _attention_weights,
    attention_explorer,
    plot_attention,
    plot_cosine_histograms,
    plot_one_hot_lookup,
    plot_position_embeddings,
    plot_softmax_saturation,
)

D_IN, D_OUT, T = 6, 4, 5


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---- attention warm-ups


def test_self_attention_shapes_with_and_without_batch():
    for module in (SelfAttentionV1(D_IN, D_OUT), SelfAttentionV2(D_IN, D_OUT)):
        assert module(torch.randn(T, D_IN)).shape == (T, D_OUT)
        assert module(torch.randn(3, T, D_IN)).shape == (3, T, D_OUT)


def test_v2_weights_loaded_into_v1_give_the_same_output():
    v2 = SelfAttentionV2(D_IN, D_OUT)
    v1 = v2.load_into_v1(SelfAttentionV1(D_IN, D_OUT))
    x = torch.randn(2, T, D_IN)
    torch.testing.assert_close(v1(x), v2(x))


def test_load_into_v1_refuses_biases():
    with pytest.raises(ValueError, match="no biases"):
        SelfAttentionV2(D_IN, D_OUT, qkv_bias=True).load_into_v1(SelfAttentionV1(D_IN, D_OUT))


def test_self_attention_sees_the_future_and_agrees_with_causal_on_the_last_token():
    v2 = SelfAttentionV2(D_IN, D_OUT, qkv_bias=True)
    causal = CausalAttention(D_IN, D_OUT, context_length=T, qkv_bias=True)
    causal.load_state_dict(v2.state_dict())
    x = torch.randn(2, T, D_IN)
    # The last token sees every token in both, so its output is the same.
    torch.testing.assert_close(v2(x)[:, -1], causal(x)[:, -1])
    changed = x.clone()
    changed[:, -1] = torch.randn(2, D_IN)
    assert not torch.allclose(v2(changed)[:, 0], v2(x)[:, 0]), "without a mask, the first token sees the last"


# ---- chapter 2 figures


def test_embedding_figures_are_figures():
    weight = torch.randn(6, 3)
    assert isinstance(plot_one_hot_lookup(torch.tensor([2, 3, 5, 1]), weight), Figure)
    assert isinstance(plot_one_hot_lookup([0, 0], weight, ["a", "b"]), Figure)
    assert isinstance(plot_cosine_histograms({4: torch.rand(100) * 2 - 1, 64: torch.randn(100) / 8}), Figure)
    assert isinstance(plot_position_embeddings(torch.randn(16, 8).tanh()), Figure)


# ---- chapter 3 figures and the explorer


def test_attention_figures_are_figures():
    w = torch.softmax(torch.randn(T, T), dim=-1)
    tokens = [f"t{i}" for i in range(T)]
    assert isinstance(plot_attention(w, tokens, "one"), Figure)
    fig = plot_attention([w, w], tokens, ["a", "b"])
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 2
    dims = [2, 4, 8]
    results = {"unscaled": {"largest weight": [0.2, 0.4, 0.6]}, "scaled": {"largest weight": [0.2, 0.2, 0.2]}}
    assert isinstance(plot_softmax_saturation(dims, results, n_keys=32), Figure)


def test_explorer_weights_causal_scale_and_temperature():
    x = torch.randn(T, 16)
    w = _attention_weights(x, causal=True, scale=True, temperature=1.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(T))
    assert (w.triu(diagonal=1) == 0).all()
    # Dividing by √d is a temperature of √d.
    torch.testing.assert_close(_attention_weights(x, False, True, 1.0), _attention_weights(x, False, False, math.sqrt(16)))


def test_explorer_builds_displays_and_redraws():
    explorer = attention_explorer(["A rose is a rose is a rose.", "The cat sat."], torch.nn.Embedding(50257, 8))
    tokens, w = explorer.weights()
    assert len(tokens) == w.shape[0] == w.shape[1]
    assert (w.triu(diagonal=1) == 0).all()
    assert isinstance(explorer.figure(), Figure)
    explorer._ipython_display_()  # outside a notebook, display() falls back to printing
    explorer.causal.value = False  # each change redraws, through the display handle
    explorer.sentence.value = "The cat sat."
    explorer.temperature.value = 4.0
    tokens, w = explorer.weights()
    future = torch.triu(torch.ones_like(w, dtype=torch.bool), diagonal=1)
    assert len(tokens) == 4 and (w[future] > 0).all(), "without the mask, tokens attend to later ones"


def test_explorer_rejects_bad_arguments():
    embedding = torch.nn.Embedding(50257, 8)
    with pytest.raises(ValueError, match="at least one sentence"):
        attention_explorer([], embedding)
    with pytest.raises(ValueError, match="temperature"):
        attention_explorer(["hi"], embedding, temperature=0)
