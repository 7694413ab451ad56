"""The figures and widgets the chapters show, in one consistent style.

Every function returns the matplotlib ``Figure`` it drew, so a notebook can show it,
save it or test it. Call `use_style()` once at the top of a chapter.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# One palette for the whole book (colour-blind safe: Okabe & Ito).
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.autolayout": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "legend.frameon": False,
    "axes.prop_cycle": plt.cycler(color=COLORS),
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the book's matplotlib style."""
    plt.rcParams.update(STYLE)


# ---------------------------------------------------------------- chapter 1: tokens


def plot_sliding_window(token_ids: list[int], tokens: list[str], max_length: int, stride: int, n_windows: int = 3) -> Figure:
    """Inputs and their one-token-shifted targets for the first few windows of a text."""
    n_show = min(len(tokens), stride * (n_windows - 1) + max_length + 1)
    fig, ax = plt.subplots(figsize=(min(14, 0.9 * n_show + 2), 0.9 * 2 * n_windows + 0.8))
    for w in range(n_windows):
        start = w * stride
        for row, (offset, label, color) in enumerate([(0, "input", COLORS[0]), (1, "target", COLORS[1])]):
            y = -(2 * w + row)
            for i in range(max_length):
                pos = start + offset + i
                if pos >= n_show:
                    break
                ax.add_patch(plt.Rectangle((pos, y - 0.4), 0.95, 0.8, color=color, alpha=0.25))
                ax.text(pos + 0.47, y, tokens[pos].replace("\n", "⏎"), ha="center", va="center", fontsize=8)
            ax.text(-0.3, y, f"window {w + 1} {label}", ha="right", va="center", fontsize=9, color=color)
    ax.set_xlim(-0.1, n_show)
    ax.set_ylim(-2 * n_windows + 0.4, 0.6)
    ax.set_xticks([i + 0.47 for i in range(n_show)], [str(i) for i in range(n_show)], fontsize=7)
    ax.set_yticks([])
    ax.grid(False)
    ax.set_xlabel("position in the text (tokens)")
    ax.set_title(f"Sliding windows: max_length={max_length}, stride={stride}; each target is its input shifted by one")
    return fig
