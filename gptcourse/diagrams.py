"""Diagrams of the model's structure, drawn from their sizes (chapters 4 and 5).

Unlike the figures of `gptcourse.plots`, these show no measurement: boxes and arrows for the
shape changes of multi-head attention (chapter 4) and the wiring of a transformer block
(chapter 5). Each function returns the matplotlib ``Figure``, described (alt text) and
narrow enough for its text to be read on a phone.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from .alt_text import describe
from .checks import positive_int
from .plots import COLORS, PAGE_WIDTH

FONT = 10  # points: at least 8 CSS px on a phone, in a figure up to 6.2 inches wide


def _arrow(ax, start, end, **kwargs) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, lw=1.2, color="0.25", **kwargs))


def _box(ax, x, y, w, h, text, color, fontsize=FONT) -> None:
    """A rounded box with its centre at (x, y)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=color, edgecolor="0.2", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _bare(ax) -> None:
    ax.set_axis_off()
    ax.set_aspect("equal")


def plot_head_split(n_heads: int = 4) -> Figure:
    """Chapter 4's steps 1-7 as pictures, top to bottom: one (T, d) matrix split into `n_heads`
    column blocks, each head attending on its own, the blocks concatenated and mixed by W_o.
    """
    n_heads = positive_int("n_heads", n_heads)
    if n_heads > 8:
        raise ValueError(f"n_heads={n_heads}: the diagram has room for at most 8 heads; pass 8 or fewer")
    colors = [COLORS[i % len(COLORS)] for i in range(n_heads)]
    # Drawn in inches, top to bottom, so that it stays narrow enough for a phone: the
    # pictures in a column on the left, what they mean beside them.
    width, mat_w, mat_h, text_x = 5.6, 1.6, 0.8, 2.0
    row = 0.3  # inches per head, room for a line of text
    heads_h = row * n_heads
    height = 0.45 + mat_h + 0.6 + 0.3 + heads_h + 0.6 + mat_h + 0.05
    fig = plt.figure(figsize=(width, height))
    fig.set_layout_engine("none")  # the axes fill the figure: nothing to lay out
    ax = fig.add_axes((0, 0, 1, 1))
    _bare(ax)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    col = mat_w / n_heads

    def matrix(top, label, shape):
        for i in range(n_heads):
            ax.add_patch(Rectangle((0.1 + i * col, top - mat_h), col, mat_h, facecolor=colors[i], alpha=0.55, edgecolor="0.2"))
        ax.text(text_x, top - mat_h / 2, f"{label}\n{shape}", ha="left", va="center", fontsize=FONT)

    def step(top, text):  # an arrow down, and what it does
        _arrow(ax, (0.1 + mat_w / 2, top - 0.05), (0.1 + mat_w / 2, top - 0.55))
        ax.text(text_x, top - 0.3, text, ha="left", va="center", fontsize=FONT, color="0.3")
        return top - 0.6

    y = height - 0.45
    ax.text(0.1, height - 0.05, f"Multi-head attention with h = {n_heads} heads", ha="left", va="top", fontsize=FONT + 2, weight="bold")
    matrix(y, "q = x W_q, shape (B, T, d): head i owns", "columns i·d_h … (i+1)·d_h − 1")
    y = step(y - mat_h, "view + transpose (steps 2-3)")
    ax.text(text_x, y - 0.15, "(B, h, T, d_h): each head attends alone", ha="left", va="center", fontsize=FONT)
    y -= 0.3
    for i in range(n_heads):
        top = y - i * row
        ax.add_patch(Rectangle((0.1 + (mat_w - 0.9) / 2, top - row + 0.04), 0.9, row - 0.08, facecolor=colors[i], alpha=0.55, edgecolor="0.2"))
        ax.text(text_x, top - row / 2, f"head {i}: softmax(q_{i} k_{i}ᵀ/√d_h + M) v_{i}", ha="left", va="center", fontsize=FONT)
    y = step(y - heads_h, "transpose + reshape (steps 6-7, a copy)")
    matrix(y, "concatenate, then · W_o", "shape (B, T, d)")
    word = "head" if n_heads == 1 else f"{n_heads} heads"
    describe(fig, f"Diagram, top to bottom: the queries q = x W_q, a (B, T, d) matrix whose "
             f"columns are split into {n_heads} coloured blocks; the {word}, each attending "
             f"on its own as a (B, h, T, d_h) batch; and the blocks concatenated back into "
             f"(B, T, d) and multiplied by W_o.")
    return fig


def plot_transformer_block() -> Figure:
    """GPT-2's pre-norm transformer block (chapter 5): the residual stream runs straight up, and
    each of the two branches (LayerNorm, then attention or the feed-forward network) adds to it.
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.6))
    _bare(ax)
    stream_x, branch_x = 0.0, 2.2
    ys = {"in": 0.0, "ln1": 1.0, "mha": 2.0, "add1": 3.0, "ln2": 4.0, "ffn": 5.0, "add2": 6.0, "out": 7.0}
    ax.text(stream_x, ys["in"] - 0.1, "x  (B, T, d)", ha="center", va="top", fontsize=FONT)
    ax.text(stream_x, ys["out"] + 0.1, "y  (B, T, d)", ha="center", va="bottom", fontsize=FONT)
    # the residual stream, straight up
    _arrow(ax, (stream_x, ys["in"]), (stream_x, ys["add1"] - 0.2))
    _arrow(ax, (stream_x, ys["add1"] + 0.2), (stream_x, ys["add2"] - 0.2))
    _arrow(ax, (stream_x, ys["add2"] + 0.2), (stream_x, ys["out"]))
    for add in ("add1", "add2"):
        ax.add_patch(plt.Circle((stream_x, ys[add]), 0.2, facecolor="white", edgecolor="0.2"))
        ax.text(stream_x, ys[add], "+", ha="center", va="center", fontsize=FONT + 3)
    branches = [("in", "ln1", "mha", "add1", "LayerNorm 1", "causal multi-head\nattention (ch. 4)"),
                ("add1", "ln2", "ffn", "add2", "LayerNorm 2", "feed-forward\nd → 4d → GELU → d")]
    for start, ln, f, add, ln_text, f_text in branches:
        y0 = ys[start] + 0.5
        ax.plot([stream_x, branch_x], [y0, y0], color="0.25", lw=1.2)
        _arrow(ax, (branch_x, y0), (branch_x, ys[ln] - 0.25))
        _box(ax, branch_x, ys[ln], 2.0, 0.5, ln_text, COLORS[5])
        _arrow(ax, (branch_x, ys[ln] + 0.25), (branch_x, ys[f] - 0.35))
        _box(ax, branch_x, ys[f], 2.9, 0.7, f_text, COLORS[1] if f == "mha" else COLORS[2])
        ax.plot([branch_x, branch_x], [ys[f] + 0.35, ys[add]], color="0.25", lw=1.2)
        _arrow(ax, (branch_x, ys[add]), (stream_x + 0.2, ys[add]))
        ax.text((stream_x + branch_x) / 2 + 0.2, ys[add] + 0.08, "dropout", ha="center", va="bottom", fontsize=FONT - 1)
    notes = ["u = x + MHA(LN₁(x))", "y = u + FFN(LN₂(u))", "", "The stream (left) is an identity path:",
             "each branch reads a normalised copy", "and adds its result back."]
    for i, line in enumerate(notes):
        ax.text(4.2, 4.8 - 0.45 * i, line, ha="left", va="center", fontsize=FONT)
    ax.text(-0.25, 3.5, "residual stream", rotation=90, ha="right", va="center", fontsize=FONT, color="0.3")
    ax.set_xlim(-1.0, 8.2)
    ax.set_ylim(-0.6, 7.6)
    ax.set_title("GPT-2's pre-norm transformer block", fontsize=FONT + 2)
    describe(fig, "Diagram of GPT-2's pre-norm transformer block: the residual stream runs "
             "straight up from x to y through two additions; two branches, LayerNorm 1 then "
             "causal multi-head attention and LayerNorm 2 then the feed-forward network "
             "(d → 4d → GELU → d), each add their result to it after dropout.")
    return fig
