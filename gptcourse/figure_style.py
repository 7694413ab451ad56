"""The book's figure style, and the drawing helpers its figure modules share.

A figure is read on a 390-px phone as well as on a desktop: the book shows it at most as wide
as the article column (358 CSS px on a phone, 736 on a desktop), so its text shrinks with the
column. A figure `PAGE_WIDTH` inches wide, with no text under 10 points, keeps every letter at
8 CSS px or more on the phone and is shown unscaled on the desktop (tests/legibility.py).
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch

from .alt_text import embed_alt_text_in_notebook_figures

COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

# 660 px at 110 dpi: under the desktop column's 736 px, so shown at its own size there; on a
# phone scaled to 358/660, which leaves 10-point text at 8.3 CSS px (8 is the floor).
PAGE_WIDTH = 6.0
SMALLEST_FONT = 10.0  # points: no text of a figure PAGE_WIDTH wide may be smaller

STYLE = {  # matplotlib rcParams
    "figure.figsize": (PAGE_WIDTH, 4.0), "figure.dpi": 110, "savefig.dpi": 110, "figure.autolayout": True,
    "font.size": SMALLEST_FONT, "legend.fontsize": SMALLEST_FONT, "xtick.labelsize": SMALLEST_FONT, "ytick.labelsize": SMALLEST_FONT,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 12, "axes.titleweight": "bold", "axes.labelsize": 11, "figure.titlesize": 12,
    "legend.frameon": False, "axes.prop_cycle": plt.cycler(color=COLORS), "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the book's matplotlib style, and let notebooks write each figure's alt text into
    its PNG (every chapter calls it first)."""
    # A notebook's inline backend, as pyplot first loads it, sets rcParams and its own PNG
    # formatter: load it now (a figure does), so that the style and the alt text come after.
    plt.close(plt.figure())
    plt.rcParams.update(STYLE)
    embed_alt_text_in_notebook_figures()


def heatmap(ax, values, cmap: str = "viridis", vmin=None, vmax=None, annotate: bool = False, fmt: str = "{:.2f}", fontsize: float = SMALLEST_FONT):
    """imshow without the grid, optionally with each value written in its cell."""
    values = torch.as_tensor(values).detach().float().cpu()
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)
    if annotate:
        lo, hi = image.get_clim()
        for (i, j), v in zip(torch.cartesian_prod(torch.arange(values.shape[0]), torch.arange(values.shape[1])).tolist(), values.flatten().tolist()):
            dark = (v - lo) / (hi - lo + 1e-12) < 0.5
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize, color="white" if dark and cmap == "viridis" else "black")
    return image


def tick_label(token: str) -> str:
    return token.replace("\n", "⏎")


def wrap(title: str, width_in: float, fontsize: float) -> str:
    """A title in lines of `width_in` inches (a character: ~0.6 em), broken first after its colon."""
    chars = max(10, int(width_in * 72 / (0.6 * fontsize)))
    head, colon, rest = title.partition(": ")
    if len(title) <= chars or not colon:
        return textwrap.fill(title, chars)
    return textwrap.fill(head + ":", chars) + "\n" + textwrap.fill(rest, chars)


def array(values) -> np.ndarray:
    """A float array from a tensor (on any device, with or without grad), an array or a list."""
    return np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)


def grouped_bars(ax, labels: list[str], series: dict) -> None:
    """One group of bars per label, one bar (and colour) per series, side by side."""
    width, pos = 0.8 / len(series), np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, array(values), width, color=COLORS[i % len(COLORS)], label=name)
    ax.set_xticks(pos, labels)


def listing(items) -> str:
    """'a', 'a and b', 'a, b and c': items for a sentence."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
