"""The structure diagrams of chapters 4 and 5 (gptcourse.diagrams)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Rectangle

from gptcourse.alt_text import alt_text
from gptcourse.diagrams import plot_head_split, plot_transformer_block
from gptcourse.plots import PAGE_WIDTH, use_style

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_legible  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("n_heads", [1, 3, 8])
def test_head_split_draws_one_block_per_head_in_each_matrix(n_heads):
    fig = plot_head_split(n_heads)
    rects = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(rects) == 3 * n_heads  # input columns, the heads, the merged columns
    heads = [t for t in _texts(fig) if t.startswith("head ")]
    assert heads[0].startswith("head 0") and heads[-1].startswith(f"head {n_heads - 1}")
    assert fig.get_size_inches()[0] <= PAGE_WIDTH


@pytest.mark.parametrize("bad, error", [(0, ValueError), (9, ValueError), (2.0, TypeError)])
def test_head_split_rejects_bad_head_counts(bad, error):
    with pytest.raises(error, match="n_heads"):
        plot_head_split(bad)


def test_block_shows_both_branches_and_the_two_equations():
    fig = plot_transformer_block()
    texts = _texts(fig)
    for label in ("LayerNorm 1", "LayerNorm 2", "u = x + MHA(LN₁(x))", "y = u + FFN(LN₂(u))"):
        assert label in texts
    assert texts.count("+") == 2  # two residual additions
    assert all(t.get_fontsize() >= 8 for ax in fig.axes for t in ax.texts)
    assert fig.get_size_inches()[0] <= PAGE_WIDTH


@pytest.mark.parametrize("n_heads", [1, 4, 8])
def test_head_split_is_legible_on_a_phone_and_says_what_it_shows(n_heads):
    use_style()
    fig = plot_head_split(n_heads)
    assert_legible(fig, f"head split, {n_heads} heads")
    text = alt_text(fig)
    assert f"split into {n_heads} coloured blocks" in text and "multiplied by W_o" in text and text.endswith(".")


def test_block_is_legible_on_a_phone_and_says_what_it_shows():
    use_style()
    fig = plot_transformer_block()
    assert_legible(fig, "transformer block")
    text = alt_text(fig)
    assert "residual stream" in text and "LayerNorm 1" in text and "(d → 4d → GELU → d)" in text and text.endswith(".")
