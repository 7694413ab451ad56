"""The figures the chapters show, in one consistent style (chapters 1-8, and the style of all).

Each function draws one figure from the numbers it is given and returns the matplotlib
``Figure`` (to show, save or test). Call `use_style()` once per chapter. Chapters 9 and 10's
figures are in `gptcourse.perf_plots`, the interactive ones in `gptcourse.widgets`.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

# The book's column is ~720 px on a 1280-px desktop: a figure this wide (770 px at 110 dpi) is shown
# at nine tenths of its size, and its 8-point text stays readable; a 14-inch one at half.
PAGE_WIDTH = 7.0

STYLE = {  # matplotlib rcParams
    "figure.figsize": (PAGE_WIDTH, 4.0), "figure.dpi": 110, "savefig.dpi": 110, "figure.autolayout": True,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 12, "axes.titleweight": "bold", "axes.labelsize": 11,
    "legend.frameon": False, "axes.prop_cycle": plt.cycler(color=COLORS), "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the book's matplotlib style (every chapter calls it first)."""
    plt.rcParams.update(STYLE)


# ---- helpers


def _heatmap(ax, values, cmap: str = "viridis", vmin=None, vmax=None, annotate: bool = False, fmt: str = "{:.2f}", fontsize: float = 7):
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


def _tick_label(token: str) -> str:
    return token.replace("\n", "⏎")


def _wrap(title: str, width_in: float, fontsize: float) -> str:
    """A title in lines of `width_in` inches (a character: ~0.55 em), broken first after its colon."""
    chars = max(10, int(width_in * 72 / (0.55 * fontsize)))
    head, colon, rest = title.partition(": ")
    if len(title) <= chars or not colon:
        return textwrap.fill(title, chars)
    return textwrap.fill(head + ":", chars) + "\n" + textwrap.fill(rest, chars)


def _array(values) -> np.ndarray:
    """A float array from a tensor (on any device, with or without grad), an array or a list."""
    return np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)


def _grouped_bars(ax, labels: list[str], series: dict) -> None:
    """One group of bars per label, one bar (and colour) per series, side by side."""
    width, pos = 0.8 / len(series), np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, _array(values), width, color=COLORS[i % len(COLORS)], label=name)
    ax.set_xticks(pos, labels)


# ---- chapter 1: tokens


def plot_sliding_window(token_ids: list[int], tokens: list[str], max_length: int, stride: int, n_windows: int = 3) -> Figure:
    """The first few windows of a text, one column per window's input and one for its target (chapter 1).

    Rows are positions in the text: a target column is its input column moved down one row, and
    each window starts `stride` rows below the one before. Columns fit the page; rows need not.
    """
    n_show, gap = min(len(tokens), stride * (n_windows - 1) + max_length + 1), 0.25  # gap: between windows
    width = min(PAGE_WIDTH, 0.8 + n_windows * (2 + gap))  # a column is at most an inch wide
    fontsize = min(9.0, 9.0 * (width - 0.8) / (n_windows * (2 + gap)))  # fits 12 characters in a column
    fig, ax = plt.subplots(figsize=(width, 0.27 * n_show + 1.3), layout="constrained")
    centers, headers = [], []
    for w in range(n_windows):
        for col, (offset, label) in enumerate([(0, "input"), (1, "target")]):
            x, first = w * (2 + gap) + col, w * stride + offset
            for pos in range(first, min(first + max_length, n_show)):
                ax.add_patch(plt.Rectangle((x + 0.03, pos - 0.42), 0.94, 0.84, color=COLORS[col], alpha=0.25))
                ax.text(x + 0.5, pos, _tick_label(tokens[pos]), ha="center", va="center", fontsize=fontsize)
            centers.append(x + 0.5)
            headers.append(f"window {w + 1}\n{label}")
    ax.set(xlim=(-0.05, n_windows * (2 + gap) - gap + 0.05), ylim=(n_show - 0.5, -0.5))  # position 0 on top
    ax.set_xticks(centers, headers, fontsize=fontsize)
    for i, tick in enumerate(ax.get_xticklabels()):
        tick.set_color(COLORS[i % 2])  # input, target
    ax.tick_params(axis="x", length=0, top=True, labeltop=True, bottom=False, labelbottom=False)  # headers on top
    ax.set_yticks(range(n_show), [str(i) for i in range(n_show)], fontsize=8)
    ax.set_ylabel("position in the text (tokens)")
    ax.grid(False)
    ax.spines[["bottom", "top", "right"]].set_visible(False)
    ax.set_title(f"Sliding windows, max_length={max_length}, stride={stride}:\neach target is its input shifted by one", fontsize=11)
    return fig


# ---- chapter 2: embeddings


def plot_one_hot_lookup(token_ids, weight, token_labels: list[str] | None = None) -> Figure:
    """One-hot rows (T×V) times the embedding matrix W (V×d): the product is rows of W (T×d) (chapter 2)."""
    token_ids = torch.as_tensor(token_ids)
    weight = torch.as_tensor(weight).detach().float()
    vocab_size, emb_dim = weight.shape
    one_hot = torch.nn.functional.one_hot(token_ids, vocab_size).float()
    labels = token_labels or [f"id {i}" for i in token_ids.tolist()]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [vocab_size, emb_dim, emb_dim]})
    _heatmap(axes[0], one_hot, cmap="Blues", vmin=0, vmax=1.4, annotate=True, fmt="{:.0f}")
    axes[0].set_title(f"one-hot ids ({len(token_ids)}×{vocab_size})")
    axes[0].set_xlabel("vocabulary id")
    axes[0].set_ylabel("token in the sequence")
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_xticks(range(vocab_size))
    lo, hi = weight.min().item(), weight.max().item()
    _heatmap(axes[1], weight, vmin=lo, vmax=hi, annotate=True)
    for row in sorted(set(token_ids.tolist())):
        axes[1].add_patch(plt.Rectangle((-0.5, row - 0.5), emb_dim, 1, fill=False, edgecolor=COLORS[1], linewidth=2.5))
    axes[1].set_title(f"@ W ({vocab_size}×{emb_dim})")
    axes[1].set_xlabel("embedding dimension")
    axes[1].set_ylabel("vocabulary id")
    axes[1].set_xticks(range(emb_dim))
    axes[1].set_yticks(range(vocab_size))
    _heatmap(axes[2], one_hot @ weight, vmin=lo, vmax=hi, annotate=True)
    axes[2].set_title(f"= the rows of W ({len(token_ids)}×{emb_dim})")
    axes[2].set_xlabel("embedding dimension")
    axes[2].set_yticks(range(len(labels)), labels)
    axes[2].set_xticks(range(emb_dim))
    fig.suptitle("An embedding is a matrix product with a one-hot vector, done as a lookup (orange: the rows picked)", fontsize=11)
    return fig


def plot_cosine_histograms(cosines: dict[int, torch.Tensor]) -> Figure:
    """Histograms of cosine similarities between random vectors, one per dimension d (chapter 2)."""
    fig, ax = plt.subplots()
    bins = torch.linspace(-1, 1, 81).numpy()
    for d, values in sorted(cosines.items()):
        values = torch.as_tensor(values).detach().flatten().float()
        ax.hist(values.numpy(), bins=bins, density=True, histtype="stepfilled", alpha=0.45, label=f"d = {d} (std {values.std():.3f})")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine similarity between two different token embeddings")
    ax.set_ylabel("density")
    ax.set_title("Random embeddings are nearly orthogonal, more so as d grows")
    ax.legend()
    return fig


def plot_position_embeddings(pe: torch.Tensor, name: str = "sinusoidal") -> Figure:
    """A position-embedding matrix (positions × dimensions) and the cosine similarity between positions (chapter 2)."""
    pe = torch.as_tensor(pe).detach().float()
    unit = torch.nn.functional.normalize(pe, dim=-1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    image = _heatmap(axes[0], pe, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[0], label="value")
    axes[0].set_title(f"{name} position embeddings ({pe.shape[0]} positions, d = {pe.shape[1]})")
    axes[0].set_xlabel("embedding dimension")
    axes[0].set_ylabel("position in the sequence")
    image = _heatmap(axes[1], unit @ unit.T, cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[1], label="cosine similarity")
    axes[1].set_title("similarity between positions")
    axes[1].set_xlabel("position")
    axes[1].set_ylabel("position")
    return fig


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
    (one row, or `ncols` columns) share a 0-1 scale and the page's width (`PAGE_WIDTH`), text sized
    to their cells; weights are written in the cells up to `annotate_up_to` tokens (0: never).
    """
    mats = [weights] if isinstance(weights, torch.Tensor) and weights.dim() == 2 else list(weights)
    mats = [torch.as_tensor(m).detach().float().cpu() for m in mats]
    titles = [titles] if isinstance(titles, str) else titles or [None] * len(mats)
    num_tokens = mats[0].shape[0]
    ncols = min(ncols or len(mats), len(mats))
    nrows = -(-len(mats) // ncols)
    labels = [_tick_label(t) for t in tokens]
    longest = max(len(label) for label in labels)
    # Inches beside the panels: the query labels and the axis label left, the colour bar right.
    margin = 0.45 + 0.065 * longest + 1.0
    side = min(5.0, 1.2 + 0.3 * num_tokens) if ncols == 1 else (PAGE_WIDTH - margin) / ncols
    cell = side * 72 / num_tokens  # points per token
    fontsize = min(10.0, max(6.0, 0.55 * cell))
    title_size = 11 if ncols == 1 else 10
    # A title may run over its neighbours' margins only where it has no neighbour.
    wrapped = [_wrap(t, side if ncols > 1 else side + margin, title_size) if t else None for t in titles]
    title_lines = max((t.count("\n") + 1 for t in wrapped if t), default=0)
    below = 0.2 + 0.085 * fontsize / 9 * longest  # under a panel: its key labels, written upwards
    height = nrows * (side + below + 0.2 * title_lines) + 0.35 + (0.5 if suptitle else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + margin, height), squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= len(mats):
            ax.set_visible(False)
            continue
        image = _heatmap(ax, mats[i], vmin=0, vmax=1, annotate=num_tokens <= annotate_up_to, fontsize=min(9.0, max(6.0, 0.3 * cell)))
        first_column, last_row = i % ncols == 0, i // ncols == nrows - 1 or i + ncols >= len(mats)
        ax.set_xticks(range(num_tokens), labels, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(num_tokens), labels if first_column else [], fontsize=fontsize)
        ax.set_xlabel("key: the token attended to" if last_row else "")
        ax.set_ylabel("query: the token attending" if first_column else "")
        ax.set_title(wrapped[i] or "", fontsize=title_size)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.8 if nrows == 1 else 0.5)
    if suptitle:
        fig.suptitle(_wrap(suptitle, side * ncols + margin, 12), fontweight="bold")
    return fig


def plot_softmax_saturation(dims: list[int], results: dict[str, dict[str, list[float]]], n_keys: int) -> Figure:
    """Statistics of softmax(q·k) against the width d, one panel per statistic, one line per variant (chapter 3).

    `results` maps a variant ("unscaled", "scaled by 1/√d") to {statistic name: one value per d}.
    """
    stats = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(stats), figsize=(4.0 * len(stats), 3.8), squeeze=False)
    for ax, stat in zip(axes[0], stats):
        for variant, values in results.items():
            ax.plot(dims, values[stat], marker="o", label=variant)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width d of queries and keys")
        ax.set_title(stat, fontsize=11)
    axes[0][0].legend()
    fig.suptitle(f"Softmax over {n_keys} keys, with random queries and keys of unit variance", fontsize=12)
    return fig


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
    """Median time of each attention variant against sequence length, forward and forward+backward (chapter 4).

    `timings[variant][pass_name]` is a list of milliseconds, one per entry of `seq_lens`;
    `pass_name` is e.g. "forward" or "forward + backward" (one panel each).
    """
    passes = list(next(iter(timings.values())))
    fig, axes = plt.subplots(1, len(passes), figsize=(5.2 * len(passes), 4.0), squeeze=False)
    for ax, pass_name in zip(axes[0], passes):
        for i, (variant, by_pass) in enumerate(timings.items()):
            ax.plot(seq_lens, by_pass[pass_name], marker="o", color=COLORS[i % len(COLORS)], label=variant)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(seq_lens, [str(t) for t in seq_lens])
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel("median time per call (ms, log scale)")
        ax.set_title(pass_name)
        ax.legend()
    fig.suptitle(f"Three multi-head attention modules, same weights{' — ' + device_label if device_label else ''}", fontweight="bold")
    return fig


# ---- chapter 5: the transformer block


def plot_activations(x, values: dict, derivatives: dict | None = None) -> Figure:
    """Activation functions on the left, their derivatives on the right (when given) (chapter 5).

    `values[name]` and `derivatives[name]` are 1-D arrays or tensors over the points `x`.
    """
    panels = [("activation", values)] + ([("derivative", derivatives)] if derivatives else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (kind, curves) in zip(axes[0], panels):
        for i, (name, y) in enumerate(curves.items()):
            ax.plot(_array(x), _array(y), styles[i % len(styles)], color=COLORS[i % len(COLORS)], lw=2, label=name)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xlabel("input x")
        ax.set_ylabel("f(x)" if kind == "activation" else "f'(x)")
        ax.set_title("The functions" if kind == "activation" else "Their derivatives (what backprop multiplies by)")
        ax.legend()
    return fig


def plot_residual_gradients(grad_norms: dict, activation_stds: dict | None = None, floor: float = 1e-30) -> Figure:
    """Per-layer gradient norms (and activation sizes) of deep stacks, one line per variant (chapter 5).

    `grad_norms[name]` lists one gradient norm per layer, input side first. Values below
    `floor` (a gradient that underflowed to 0) are drawn at the floor.
    """
    panels = [("grad", grad_norms)] + ([("std", activation_stds)] if activation_stds else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.2), squeeze=False)
    for ax, (kind, series) in zip(axes[0], panels):
        for i, (name, values) in enumerate(series.items()):
            layers = range(1, len(values) + 1)
            ax.plot(layers, [max(float(v), floor) for v in values], marker="o", ms=3, color=COLORS[i % len(COLORS)], label=name)
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = nearest the input)")
        if kind == "grad":
            ax.set_ylabel("gradient norm of the layer's weight (log scale)")
            ax.set_title("Gradients reaching each layer")
        else:
            ax.set_ylabel("std of the layer's output (log scale)")
            ax.set_title("Size of the activations")
        ax.legend(fontsize=9)
    return fig


# ---- chapter 6: the GPT model


def plot_param_breakdown(names: list[str], parts: dict[str, list[int]]) -> Figure:
    """Stacked bars: where each model's parameters are (in millions), with the total written at the end (chapter 6).

    `parts[part][i]` is the number of parameters of `part` in model `names[i]`.
    """
    fig, ax = plt.subplots(figsize=(8.0, 0.7 * len(names) + 1.8))
    left = [0.0] * len(names)
    for i, (part, counts) in enumerate(parts.items()):
        millions = [c / 1e6 for c in counts]
        ax.barh(names, millions, left=left, color=COLORS[i % len(COLORS)], label=part)
        left = [a + b for a, b in zip(left, millions)]
    for y, total in enumerate(left):
        ax.text(total, y, f"  {total:,.0f}M", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.15)
    ax.set_xlabel("parameters (millions)")
    ax.set_title("Where the parameters are")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=9)
    ax.grid(axis="y", visible=False)
    return fig


def plot_training_memory(names: list[str], memory_gb: dict[str, list[float]], limits: dict[str, float] | None = None) -> Figure:
    """Grouped bars of memory (GB) per model and regime, with horizontal lines for device memory sizes (chapter 6)."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    _grouped_bars(ax, names, memory_gb)
    for j, (label, gb) in enumerate((limits or {}).items()):
        ax.axhline(gb, color="black", ls=["--", ":", "-."][j % 3], lw=1)
        ax.text(-0.45, gb, label, va="bottom", ha="left", fontsize=9)
    ax.set_ylabel("memory (GB, 10^9 bytes)")
    ax.set_title("Memory for weights, gradients and optimizer states (activations not included)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92), fontsize=9)
    ax.grid(axis="x", visible=False)
    return fig


def plot_next_token_probs(words: list[str], probs: dict[str, list[float]]) -> Figure:
    """Grouped bars: a next-token distribution over a few words, one colour per setting (e.g. temperature) (chapter 6)."""
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    _grouped_bars(ax, words, probs)
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title("The same logits, different sampling settings")
    ax.legend()
    ax.grid(axis="x", visible=False)
    return fig


# ---- chapter 7: training


def _history_dict(history) -> dict:
    return history.to_dict() if hasattr(history, "to_dict") else dict(history)


def plot_losses(history, baseline: float | None = None, title: str = "Training and validation loss") -> Figure:
    """Loss against optimizer steps (bottom axis) and tokens seen (top axis) (chapter 7).

    `history` is a `gptcourse.train.History` (or its `to_dict()`): the faint line is every
    step's batch loss, the markers the evaluations. `baseline` draws a dashed line, e.g.
    the loss of a uniform guess, ln(vocabulary size).
    """
    h = _history_dict(history)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    if h.get("step_loss"):
        ax.plot(range(1, len(h["step_loss"]) + 1), h["step_loss"], color=COLORS[0], alpha=0.25, lw=1, label="batch loss (each step)")
    ax.plot(h["step"], h["train_loss"], "o-", color=COLORS[0], ms=4, label="training loss")
    if any(not math.isnan(v) for v in h["val_loss"]):
        ax.plot(h["step"], h["val_loss"], "s-", color=COLORS[1], ms=4, label="validation loss")
    if baseline is not None:
        ax.axhline(baseline, color=COLORS[7], ls="--", lw=1)
        ax.annotate(f"uniform guess: {baseline:.2f}", (1, baseline), xycoords=("axes fraction", "data"), xytext=(-4, -3), textcoords="offset points", ha="right", va="top", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.87))
    steps, tokens = h["step"][-1], h["tokens_seen"][-1]
    if steps > 0 and tokens > 0:
        per_step = tokens / steps
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step / 1000, lambda t: t * 1000 / per_step))
        top.set_xlabel("tokens seen (thousands)")
    return fig


def plot_lr_schedule(steps: list[int], lrs: list[float], warmup_steps: int | None = None, title: str = "Learning rate: linear warm-up, then cosine decay") -> Figure:
    """The learning rate of every step, with the end of warm-up marked (chapter 7)."""
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    ax.plot(steps, lrs, color=COLORS[2])
    if warmup_steps:
        ax.axvline(warmup_steps, color=COLORS[7], ls=":", lw=1)
        ax.text(warmup_steps, max(lrs), " end of warm-up", va="top", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(title)
    return fig


# ---- chapter 8: pretrained GPT-2


def plot_kv_cache_idea(prompt_tokens: int = 3, new_tokens: int = 4) -> Figure:
    """What each generation step computes, without and with a KV cache (chapter 8).

    Rows are steps, columns token positions: without a cache every step recomputes the whole
    sequence; with one, only the newest token, the earlier keys and values read from the cache.
    """
    n = prompt_tokens + new_tokens
    colors = {"computed": COLORS[3], "cached": COLORS[5], "none": "#f2f2f2"}
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 0.55 * new_tokens + 2.0), sharey=True, layout="constrained")
    for ax, cached in zip(axes, (False, True), strict=True):
        work = 0
        for step in range(new_tokens):
            length = prompt_tokens + step  # tokens the model reads at this step
            for pos in range(n):
                if pos >= length:
                    kind = "none"
                elif cached and step > 0 and pos < length - 1:
                    kind = "cached"
                else:
                    kind = "computed"
                work += kind == "computed"
                ax.add_patch(plt.Rectangle((pos, -step - 0.45), 0.92, 0.9, color=colors[kind]))
            ax.text(n + 0.1, -step, f"predicts token {length + 1}", va="center", fontsize=8)
        ax.set_xlim(-0.1, n + 2.2)
        ax.set_ylim(-new_tokens + 0.4, 0.6)
        ax.set_xticks([p + 0.46 for p in range(n)], [str(p + 1) for p in range(n)])
        ax.set_yticks([-s for s in range(new_tokens)], [f"step {s + 1}" for s in range(new_tokens)])
        ax.set_xlabel("token position")
        ax.grid(False)
        ax.set_title(f"{'With' if cached else 'Without'} a KV cache: {work} token computations")
    handles = [Patch(color=colors["computed"], label="run through every layer"), Patch(color=colors["cached"], label="keys and values read from the cache")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig


def plot_kv_speedup(contexts: list[int], seconds: dict[str, tuple[list[float], list[float]]], ratios: dict[str, list[list[float]]]) -> Figure:
    """Left: one generation step's time against the tokens before it, per model, without (solid)
    and with (dashed) a KV cache. Right: the cache's speed-up, median and range of the rounds (ch. 8).

    ``seconds[model]`` = (without, with), one time per context; ``ratios[model]``: per context, the rounds' speed-ups.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.6))
    for color, (label, (without, with_cache)) in zip(COLORS, seconds.items()):
        ax.plot(contexts, 1e3 * np.array(without), "o-", color=color, label=label)
        ax.plot(contexts, 1e3 * np.array(with_cache), "s--", color=color)
        mid, low, high = (np.array([f(r) for r in ratios[label]]) for f in (np.median, np.min, np.max))
        ax2.errorbar(contexts, mid, yerr=[mid - low, high - mid], fmt="o-", color=color, capsize=3)
    titles = ("One step: no cache (solid), cache (dashed)", "The cache's speed-up")
    for a, title, ylabel in zip((ax, ax2), titles, ("milliseconds", "no cache ÷ cache")):
        a.set_xscale("log", base=2)
        a.set(xticks=contexts, xticklabels=contexts, xlabel="tokens in the context", ylabel=ylabel, title=title)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax2.axhline(1.0, color=COLORS[7], lw=1, ls=":")
    ax2.set_ylim(bottom=0)
    return fig
