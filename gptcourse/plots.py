"""The figures of chapters 1-5, in one consistent style (and the front door to all of them).

Each function draws one figure from the numbers it is given, gives it a sentence of alt text
saying what it shows (`gptcourse.alt_text`), and returns the matplotlib ``Figure``. Call
`use_style()` once per chapter. Chapters 6-8's figures are in `gptcourse.model_plots` (imported
here too), 9 and 10's in `gptcourse.perf_plots`, the interactive ones in `gptcourse.widgets`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .alt_text import describe
from .figure_style import COLORS, PAGE_WIDTH, SMALLEST_FONT, STYLE, array, heatmap, listing, tick_label, use_style, wrap
from .model_plots import (
    plot_kv_cache_idea,
    plot_kv_speedup,
    plot_losses,
    plot_lr_schedule,
    plot_next_token_probs,
    plot_param_breakdown,
    plot_training_memory,
)

__all__ = [
    "COLORS", "PAGE_WIDTH", "STYLE", "use_style",
    "plot_sliding_window", "plot_one_hot_lookup", "plot_cosine_histograms", "plot_position_embeddings",
    "plot_attention", "plot_softmax_saturation", "plot_head_heatmaps", "plot_attention_timings",
    "plot_activations", "plot_residual_gradients",
    "plot_param_breakdown", "plot_training_memory", "plot_next_token_probs",
    "plot_losses", "plot_lr_schedule", "plot_kv_cache_idea", "plot_kv_speedup",
]

CHAR = 0.6 / 72  # inches per character and point of font size (DejaVu Sans, on average)


def _text_of(tokens: list[str]) -> str:
    """Tokens as a reader would quote them: joined where they carry their spaces."""
    joined = "".join(tokens)
    return repr(joined) if any(t.startswith(" ") for t in tokens) else ", ".join(tokens)


# ---- chapter 1: tokens


def plot_sliding_window(token_ids: list[int], tokens: list[str], max_length: int, stride: int, n_windows: int = 3) -> Figure:
    """The first few windows of a text, one block per window, one below the other (chapter 1).

    Rows are positions in the text. In a block, the input column holds the window's tokens and
    the target column the same tokens one row lower (each input's next token); each block starts
    `stride` positions after the one above. Two columns wide, the text stays large on a phone.
    """
    fontsize = 11.0
    windows = [w * stride for w in range(n_windows) if w * stride + 1 < len(tokens)]  # first positions
    longest = max(len(tick_label(t)) for t in tokens)
    column = max(1.0, CHAR * fontsize * longest + 0.25)  # inches: the longest token fits
    rows = [range(first, min(first + max_length + 1, len(tokens))) for first in windows]
    gap = 1.4  # rows between two blocks: the block's header
    height_rows = sum(len(r) for r in rows) + gap * len(rows)
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH, 1.1 + 2 * column), 0.3 * height_rows + 1.2), layout="constrained")
    y, ticks, tick_labels = gap, [], []
    for w, (first, positions) in enumerate(zip(windows, rows)):
        ax.text(1.0, y - 0.75, f"window {w + 1}: tokens {first} to {positions[-1]}", ha="center", va="center", fontsize=fontsize, fontweight="bold")
        for col, offset in enumerate((0, 1)):  # input, target
            for pos in range(first + offset, min(first + offset + max_length, len(tokens))):
                row = y + pos - first
                ax.add_patch(plt.Rectangle((col + 0.03, row - 0.42), 0.94, 0.84, color=COLORS[col], alpha=0.25))
                ax.text(col + 0.5, row, tick_label(tokens[pos]), ha="center", va="center", fontsize=fontsize)
        ticks += [y + pos - first for pos in positions]
        tick_labels += [str(pos) for pos in positions]
        y += len(positions) + gap
    ax.set(xlim=(-0.05, 2.05), ylim=(y - gap - 0.5, -0.2))  # the first block on top
    ax.set_xticks([0.5, 1.5], ["input", "target"], fontsize=fontsize)
    for i, tick in enumerate(ax.get_xticklabels()):
        tick.set_color(COLORS[i])
    ax.tick_params(axis="x", length=0, top=True, labeltop=True, bottom=False, labelbottom=False)  # headers on top
    ax.set_yticks(ticks, tick_labels, fontsize=SMALLEST_FONT)
    ax.set_ylabel("position in the text (tokens)")
    ax.grid(False)
    ax.spines[["bottom", "top", "right"]].set_visible(False)
    ax.set_title(f"Sliding windows, max_length={max_length}, stride={stride}:\neach target is its input shifted by one", fontsize=11)
    first_input, first_target = ("".join(tokens[o:o + max_length]) for o in (0, 1))
    return describe(fig, f"The first {len(windows)} windows cut from a {len(tokens)}-token text with max_length={max_length} "
                    f"and stride={stride}, one block below the other: each window's input tokens beside its target tokens, the "
                    f"same tokens one position later. Window 1's input is {first_input!r}, its target {first_target!r}.")


# ---- chapter 2: embeddings


def plot_one_hot_lookup(token_ids, weight, token_labels: list[str] | None = None) -> Figure:
    """One-hot rows (T×V) times the embedding matrix W (V×d): the product is rows of W (T×d) (chapter 2)."""
    token_ids = torch.as_tensor(token_ids)
    weight = torch.as_tensor(weight).detach().float()
    vocab_size, emb_dim = weight.shape
    one_hot = torch.nn.functional.one_hot(token_ids, vocab_size).float()
    labels = token_labels or [f"id {i}" for i in token_ids.tolist()]
    # A one-hot cell holds one digit, a cell of W four characters ("-1.2"): narrower columns.
    ratios = [0.6 * vocab_size, emb_dim, emb_dim]
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH, 3.6), gridspec_kw={"width_ratios": ratios}, layout="constrained")
    heatmap(axes[0], one_hot, cmap="Blues", vmin=0, vmax=1.4, annotate=True, fmt="{:.0f}")
    axes[0].set_title(f"one-hot ids\n({len(token_ids)}×{vocab_size})", fontsize=11)
    axes[0].set_xlabel("vocabulary id")
    axes[0].set_ylabel("token in the sequence")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_xticks(range(vocab_size))
    lo, hi = weight.min().item(), weight.max().item()
    heatmap(axes[1], weight, vmin=lo, vmax=hi, annotate=True, fmt="{:.1f}")
    for row in sorted(set(token_ids.tolist())):
        axes[1].add_patch(plt.Rectangle((-0.5, row - 0.5), emb_dim, 1, fill=False, edgecolor=COLORS[1], linewidth=2.5))
    axes[1].set_title(f"@ W\n({vocab_size}×{emb_dim})", fontsize=11)
    axes[1].set_xlabel("dimension")
    axes[1].set_ylabel("vocabulary id")
    axes[1].set_xticks(range(emb_dim))
    axes[1].set_yticks(range(vocab_size))
    heatmap(axes[2], one_hot @ weight, vmin=lo, vmax=hi, annotate=True, fmt="{:.1f}")
    axes[2].set_title(f"= rows of W\n({len(token_ids)}×{emb_dim})", fontsize=11)
    axes[2].set_xlabel("dimension")
    axes[2].set_yticks(range(len(labels)), labels)
    axes[2].set_xticks(range(emb_dim))
    fig.suptitle(wrap("An embedding is a matrix product with a one-hot vector, done as a lookup (the rows picked outlined in orange)", PAGE_WIDTH - 0.4, 11), fontsize=11)
    rows = listing(token_ids.tolist())
    return describe(fig, f"A {len(token_ids)}×{vocab_size} one-hot matrix times the {vocab_size}×{emb_dim} embedding matrix W equals "
                    f"a {len(token_ids)}×{emb_dim} matrix whose rows are rows {rows} of W, outlined in W: the lookup.")


def plot_cosine_histograms(cosines: dict[int, torch.Tensor]) -> Figure:
    """Histograms of cosine similarities between random vectors, one per dimension d (chapter 2)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.0))
    bins = torch.linspace(-1, 1, 81).numpy()
    stds = {}
    for d, values in sorted(cosines.items()):
        values = torch.as_tensor(values).detach().flatten().float()
        stds[d] = values.std().item()
        ax.hist(values.numpy(), bins=bins, density=True, histtype="stepfilled", alpha=0.45, label=f"d = {d} (std {stds[d]:.3f})")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine similarity of two different token embeddings")
    ax.set_ylabel("density")
    ax.set_title(wrap("Random embeddings are nearly orthogonal, more so as d grows", PAGE_WIDTH - 0.8, 12))
    ax.legend()
    (d0, s0), (d1, s1) = list(stds.items())[0], list(stds.items())[-1]
    return describe(fig, f"Histograms of the cosine similarity between two random token embeddings for d = {listing(stds)}: "
                    f"all centred on 0, with a standard deviation that shrinks from {s0:.3f} at d = {d0} to {s1:.3f} at d = {d1}.")


def plot_position_embeddings(pe: torch.Tensor, name: str = "sinusoidal") -> Figure:
    """A position-embedding matrix (positions × dimensions) above the cosine similarity between positions (chapter 2)."""
    pe = torch.as_tensor(pe).detach().float()
    unit = torch.nn.functional.normalize(pe, dim=-1)
    similarity = unit @ unit.T
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 8.6), gridspec_kw={"height_ratios": [1, 1.3]}, layout="constrained")
    image = heatmap(axes[0], pe, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[0], label="value")
    axes[0].set_title(wrap(f"{name} position embeddings ({pe.shape[0]} positions, d = {pe.shape[1]})", PAGE_WIDTH - 0.9, 12))
    axes[0].set_xlabel("embedding dimension")
    axes[0].set_ylabel("position in the sequence")
    image = heatmap(axes[1], similarity, cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[1], label="cosine similarity")
    axes[1].set_title("similarity between positions")
    axes[1].set_xlabel("position")
    axes[1].set_ylabel("position")
    neighbours = similarity.diagonal(1).mean().item() if len(pe) > 1 else 1.0
    return describe(fig, f"Top: the {name} position embeddings, {pe.shape[0]} positions by {pe.shape[1]} dimensions, values from "
                    f"{pe.min():.2f} to {pe.max():.2f}. Bottom: the cosine similarity between every two positions, 1 on the "
                    f"diagonal, {neighbours:.2f} on average between neighbours, and down to {similarity.min():.2f}.")


# ---- chapter 3: attention


def plot_attention(
    weights,
    tokens: list[str],
    titles: str | list[str] | None = None,
    annotate_up_to: int = 8,
    ncols: int | None = None,
    suptitle: str | None = None,
) -> Figure:
    """Heatmaps of attention weights (queries down, keys across), one per matrix, tokens as ticks (chapter 3).

    `weights` is one (T, T) matrix or a list of them, row i token i's weights over the keys. Panels
    (one row, or `ncols` columns) share a 0-1 scale and the page's width (`PAGE_WIDTH`); tokens are
    labelled in 10-point text (every k-th where cells are smaller), weights written in the cells up
    to `annotate_up_to` tokens (0: never) where they fit.
    """
    mats = [weights] if isinstance(weights, torch.Tensor) and weights.dim() == 2 else list(weights)
    mats = [torch.as_tensor(m).detach().float().cpu() for m in mats]
    titles = [titles] if isinstance(titles, str) else titles or [None] * len(mats)
    num_tokens = mats[0].shape[0]
    ncols = min(ncols or len(mats), len(mats))
    nrows = -(-len(mats) // ncols)
    labels = [tick_label(t) for t in tokens]
    longest = max(len(label) for label in labels)
    font = SMALLEST_FONT
    # Inches beside the panels: the axis label and the query labels left, the colour bar right.
    left, right = 0.35 + CHAR * font * longest, 0.95
    side = min(1.2 + 0.3 * num_tokens, 4.6, (PAGE_WIDTH - left - right) / ncols)
    cell = side * 72 / num_tokens  # points per token
    every = math.ceil(1.15 * font / cell)  # a label per `every` tokens: lines of text must not overlap
    shown = [label if i % every == 0 else "" for i, label in enumerate(labels)]
    annotate = num_tokens <= annotate_up_to and cell >= 2.8 * font  # "0.25" fits its cell
    title_size = 11 if ncols == 1 else font
    # A title may run over its neighbours' margins only where it has no neighbour.
    wrapped = [wrap(t, side if ncols > 1 else side + left, title_size) if t else None for t in titles]
    title_lines = max((t.count("\n") + 1 for t in wrapped if t), default=0)
    below = 0.15 + CHAR * font * longest  # under a panel: its key labels, written upwards
    sup = wrap(suptitle, PAGE_WIDTH, 12) if suptitle else None
    height = nrows * (side + below + 0.22 * title_lines) + 0.45 + (0.25 * (sup.count("\n") + 1) if sup else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + left + right, height), squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= len(mats):
            ax.set_visible(False)
            continue
        image = heatmap(ax, mats[i], vmin=0, vmax=1, annotate=annotate, fontsize=font)
        first_column = i % ncols == 0
        ax.set_xticks(range(num_tokens), shown, rotation=90, fontsize=font)
        ax.set_yticks(range(num_tokens), shown if first_column else [], fontsize=font)
        ax.set_title(wrapped[i] or "", fontsize=title_size)
        if len(mats) == 1:
            ax.set_xlabel("key: the token attended to")
            ax.set_ylabel("query: the token attending")
    if len(mats) > 1:  # once for the figure: under each narrow panel it would run into the next
        fig.supxlabel("key: the token attended to", fontsize=11)
        fig.supylabel("query: the token attending", fontsize=11)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.8 if nrows == 1 else 0.5)
    if sup:
        fig.suptitle(sup, fontweight="bold")
    return describe(fig, _attention_alt_text(mats, tokens, titles, suptitle))


def _attention_alt_text(mats: list[torch.Tensor], tokens: list[str], titles: list, suptitle: str | None) -> str:
    """What the heatmaps show: per panel, the weight a token keeps for itself and its largest weight."""
    panels = []
    for i, (m, title) in enumerate(zip(mats, titles)):
        causal = " (causal: nothing above the diagonal)" if bool((m.triu(1) == 0).all()) and len(m) > 1 else ""
        panels.append(f"{title or f'panel {i + 1}'}{causal}, a token gives itself {m.diagonal().mean():.2f} of its weight on "
                      f"average and its most attended key {m.max(dim=-1).values.mean():.2f}")
    head = f"{suptitle.rstrip('.')}. " if suptitle else ""
    count = "a heatmap" if len(mats) == 1 else f"{len(mats)} heatmaps"
    return (f"{head}Attention weights among the {len(tokens)} tokens {_text_of(tokens)} in {count}, queries down, keys across, "
            f"0 to 1. In " + "; in ".join(panels) + ".")


def plot_softmax_saturation(dims: list[int], results: dict[str, dict[str, list[float]]], n_keys: int) -> Figure:
    """Statistics of softmax(q·k) against the width d, one panel per statistic, one above the other,
    one line per variant (chapter 3).

    `results` maps a variant ("unscaled", "scaled by 1/√d") to {statistic name: one value per d}.
    """
    stats = list(next(iter(results.values())))
    fig, axes = plt.subplots(len(stats), 1, figsize=(PAGE_WIDTH, 2.1 * len(stats) + 1.0), sharex=True, squeeze=False, layout="constrained")
    for ax, stat in zip(axes[:, 0], stats):
        for variant, values in results.items():
            ax.plot(dims, values[stat], marker="o", label=variant)
        ax.set_xscale("log", base=2)
        ax.set_title(stat, fontsize=11)
    axes[-1, 0].set_xlabel("width d of queries and keys")
    axes[0, 0].legend()
    fig.suptitle(wrap(f"Softmax over {n_keys} keys, with random queries and keys of unit variance", PAGE_WIDTH, 12), fontsize=12)
    trends = "; ".join(f"{stat}: " + ", ".join(f"{variant} {v[stat][0]:.3g} to {v[stat][-1]:.3g}" for variant, v in results.items())
                       for stat in stats)
    return describe(fig, f"Softmax over {n_keys} keys as the width d of queries and keys grows from {dims[0]} to {dims[-1]}, "
                    f"one panel per statistic, one line per variant: {trends}.")


# ---- chapter 4: multi-head attention


def plot_head_heatmaps(weights, tokens: list[str], head_names: list[str] | None = None, title: str | None = None, ncols: int = 2) -> Figure:
    """One attention heatmap per head, in a grid of `ncols` columns (`plot_attention` draws them) (chapter 4).

    `weights` is (heads, T, T), a tensor or an array: row t is query t's weights over the keys.
    One 0-1 colour scale; four heads in a 2 × 2 grid are each half the page wide, tokens legible.
    """
    heads = list(torch.as_tensor(weights))
    names = head_names or [f"head {h}" for h in range(len(heads))]
    return plot_attention(heads, tokens, names, annotate_up_to=0, ncols=ncols, suptitle=title or "Attention weights, one panel per head")


def plot_attention_timings(seq_lens: list[int], timings: dict[str, dict[str, list[float]]], device_label: str = "") -> Figure:
    """Median time of each attention variant against sequence length, forward above forward+backward (chapter 4).

    `timings[variant][pass_name]` is a list of milliseconds, one per entry of `seq_lens`;
    `pass_name` is e.g. "forward" or "forward + backward" (one panel each).
    """
    passes = list(next(iter(timings.values())))
    fig, axes = plt.subplots(len(passes), 1, figsize=(PAGE_WIDTH, 3.0 * len(passes) + 0.8), sharex=True, squeeze=False, layout="constrained")
    for ax, pass_name in zip(axes[:, 0], passes):
        for i, (variant, by_pass) in enumerate(timings.items()):
            ax.plot(seq_lens, by_pass[pass_name], marker="o", color=COLORS[i % len(COLORS)], label=variant)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(seq_lens, [str(t) for t in seq_lens])
        ax.set_ylabel("ms per call (log)")
        ax.set_title(pass_name, fontsize=11)
    axes[-1, 0].set_xlabel("sequence length T (tokens)")
    axes[0, 0].legend()
    suffix = f" — {device_label}" if device_label else ""
    fig.suptitle(wrap(f"Three multi-head attention modules, same weights{suffix}", PAGE_WIDTH, 12), fontweight="bold")
    at_last = "; ".join(f"{p}: " + ", ".join(f"{v} {t[p][-1]:.3g} ms" for v, t in timings.items()) for p in passes)
    where = f" ({device_label})" if device_label else ""
    return describe(fig, f"Median time per call of the {listing(timings)} multi-head attention modules against the sequence "
                    f"length, from {seq_lens[0]} to {seq_lens[-1]} tokens, log scales{where}, one panel per pass. "
                    f"At {seq_lens[-1]} tokens, {at_last}.")


# ---- chapter 5: the transformer block


def plot_activations(x, values: dict, derivatives: dict | None = None) -> Figure:
    """Activation functions on top, their derivatives below (when given) (chapter 5).

    `values[name]` and `derivatives[name]` are 1-D arrays or tensors over the points `x`.
    """
    panels = [("activation", values)] + ([("derivative", derivatives)] if derivatives else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(PAGE_WIDTH, 3.2 * len(panels) + 0.3), sharex=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    xs = array(x)
    for ax, (kind, curves) in zip(axes[:, 0], panels):
        for i, (name, y) in enumerate(curves.items()):
            ax.plot(xs, array(y), styles[i % len(styles)], color=COLORS[i % len(COLORS)], lw=2, label=name)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_ylabel("f(x)" if kind == "activation" else "f'(x)")
        ax.set_title("The functions" if kind == "activation" else "Their derivatives (what backprop multiplies by)", fontsize=11)
        ax.legend()
    axes[-1, 0].set_xlabel("input x")
    lowest = ", ".join(f"{name} {array(y).min():.3f}" for name, y in values.items())
    text = f"{listing(values)} for x from {xs.min():g} to {xs.max():g}" + (" (top), and their derivatives (bottom)" if derivatives else "")
    text += f": lowest values {lowest}"
    if derivatives and xs.min() < 0:
        i = int(np.abs(xs - max(-1.0, xs.min())).argmin())  # a negative input, where the derivatives differ
        text += f"; derivatives at x = {xs[i]:.2g}: " + ", ".join(f"{name} {array(d)[i]:.2f}" for name, d in derivatives.items())
    return describe(fig, text + ".")


def plot_residual_gradients(grad_norms: dict, activation_stds: dict | None = None, floor: float = 1e-30) -> Figure:
    """Per-layer gradient norms above activation sizes of deep stacks, one line per variant (chapter 5).

    `grad_norms[name]` lists one gradient norm per layer, input side first. Values below
    `floor` (a gradient that underflowed to 0) are drawn at the floor.
    """
    panels = [("grad", grad_norms)] + ([("std", activation_stds)] if activation_stds else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(PAGE_WIDTH, 3.1 * len(panels) + 0.3 * len(grad_norms) + 0.4), sharex=True, squeeze=False, layout="constrained")
    for ax, (kind, series) in zip(axes[:, 0], panels):
        for i, (name, values) in enumerate(series.items()):
            layers = range(1, len(values) + 1)
            ax.plot(layers, [max(float(v), floor) for v in values], marker="o", ms=3, color=COLORS[i % len(COLORS)], label=name)
        ax.set_yscale("log")
        ax.set_ylabel("gradient norm (log)" if kind == "grad" else "output std (log)")
        ax.set_title("Gradients reaching each layer's weight" if kind == "grad" else "Size of the activations", fontsize=11)
    axes[-1, 0].set_xlabel("layer (1 = nearest the input)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center")  # below both: the names are long
    depth = len(next(iter(grad_norms.values())))
    short = {name: name.split(": ")[0] for name in grad_norms}  # "plain: x ← f(x)": its name, not its formula
    grads = "; ".join(f"{float(v[-1]):.1e} to {float(v[0]):.1e} in {short[name]}" for name, v in grad_norms.items())
    text = f"Gradient norms of the weights of {depth} stacked layers, log scale, one line per wiring, from layer {depth} to layer 1: {grads}"
    if activation_stds:
        text += f". Below, the std of each layer's output, at layer {depth}: " + ", ".join(
            f"{float(v[-1]):.2g} in {short.get(name, name)}" for name, v in activation_stds.items())
    return describe(fig, text + ".")
