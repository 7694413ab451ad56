"""The figures of chapters 6-8: the whole GPT's parameters and memory, its training, and its generation.

Like `gptcourse.plots` (which imports them all, so that either name works), each function
draws one figure from the numbers it is given, at most `PAGE_WIDTH` wide with no text under
10 points, gives it a sentence of alt text, and returns the matplotlib ``Figure``.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .alt_text import describe
from .figure_style import COLORS, PAGE_WIDTH, SMALLEST_FONT, array, grouped_bars, listing, wrap

# ---- chapter 6: the GPT model


def plot_param_breakdown(names: list[str], parts: dict[str, list[int]]) -> Figure:
    """Stacked bars: where each model's parameters are (in millions), with the total written at the end (chapter 6).

    `parts[part][i]` is the number of parameters of `part` in model `names[i]`.
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.55 * len(names) + 0.25 * math.ceil(len(parts) / 2) + 1.6), layout="constrained")
    left = [0.0] * len(names)
    for i, (part, counts) in enumerate(parts.items()):
        millions = [c / 1e6 for c in counts]
        ax.barh(names, millions, left=left, color=COLORS[i % len(COLORS)], label=part)
        left = [a + b for a, b in zip(left, millions)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:,.0f}M", va="center", fontsize=SMALLEST_FONT)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.2)
    ax.set_xlabel("parameters (millions)")
    ax.set_title("Where the parameters are")
    fig.legend(loc="outside lower center", ncol=2)
    ax.grid(axis="y", visible=False)
    first = next(iter(parts))
    shares = [parts[first][i] / (total * 1e6) for i, total in enumerate(left) if total]
    totals = ", ".join(f"{name} {total:,.0f}M" for name, total in zip(names, left))
    return describe(fig, f"Stacked bars of the parameters of {listing(names)}, in millions, by part ({listing(parts)}): "
                    f"totals {totals}; the {first} is {shares[0]:.0%} of {names[0]} and {shares[-1]:.0%} of {names[-1]}.")


def plot_training_memory(names: list[str], memory_gb: dict[str, list[float]], limits: dict[str, float] | None = None) -> Figure:
    """Grouped bars of memory (GB) per model and regime, with horizontal lines for device memory sizes (chapter 6)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.8))
    grouped_bars(ax, names, memory_gb)
    for j, (label, gb) in enumerate((limits or {}).items()):
        ax.axhline(gb, color="black", ls=["--", ":", "-."][j % 3], lw=1)
        # Under the line at the left, where the smallest model's bars leave room (the legend is above).
        ax.annotate(label, (-0.45, gb), xytext=(0, -3), textcoords="offset points", va="top", ha="left", fontsize=SMALLEST_FONT)
    ax.set_ylabel("memory (GB, 10^9 bytes)")
    ax.set_title(wrap("Memory for weights, gradients and optimizer states (activations not included)", PAGE_WIDTH - 0.6, 12))
    ax.legend(loc="upper left")
    ax.grid(axis="x", visible=False)
    flat = [(gb, regime, name) for regime, values in memory_gb.items() for name, gb in zip(names, array(values))]
    (lo, lo_regime, lo_name), (hi, hi_regime, hi_name) = min(flat), max(flat)
    text = (f"Grouped bars of the memory of {listing(names)}, one bar per regime ({'; '.join(memory_gb)}): from "
            f"{lo:.2f} GB ({lo_name}, {lo_regime}) to {hi:.1f} GB ({hi_name}, {hi_regime})")
    for label, gb in (limits or {}).items():
        text += f"; a line marks {label}: {sum(v > gb for v, _, _ in flat)} of the {len(flat)} bars are above it"
    return describe(fig, text + ".")


def plot_next_token_probs(words: list[str], probs: dict[str, list[float]]) -> Figure:
    """Grouped bars: a next-token distribution over a few words, one colour per setting (e.g. temperature) (chapter 6)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.2))
    grouped_bars(ax, words, probs)
    # Slanted where the words side by side would be wider than the axes (~0.6 em a character).
    if sum(len(w) + 2 for w in words) * 0.6 * SMALLEST_FONT / 72 > PAGE_WIDTH - 1.0:
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right", rotation_mode="anchor")
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title("The same logits, different sampling settings")
    ax.legend()
    ax.grid(axis="x", visible=False)
    first = array(next(iter(probs.values())))
    best = int(first.argmax())
    at_best = ", ".join(f"{array(p)[best]:.2f} at {name}" for name, p in probs.items())
    quoted = [repr(w) if w.strip() != w else w for w in words]  # ' mat', with its space
    return describe(fig, f"Probabilities of {len(words)} candidate next tokens ({listing(quoted)}) under {len(probs)} sampling "
                    f"settings, one bar each: the likeliest, {quoted[best]}, gets {at_best}.")


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
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.6), layout="constrained")
    if h.get("step_loss"):
        ax.plot(range(1, len(h["step_loss"]) + 1), h["step_loss"], color=COLORS[0], alpha=0.25, lw=1, label="batch loss (each step)")
    ax.plot(h["step"], h["train_loss"], "o-", color=COLORS[0], ms=4, label="training loss")
    validated = [(s, v) for s, v in zip(h["step"], h["val_loss"]) if not math.isnan(v)]
    if validated:
        ax.plot(h["step"], h["val_loss"], "s-", color=COLORS[1], ms=4, label="validation loss")
    if baseline is not None:
        ax.axhline(baseline, color=COLORS[7], ls="--", lw=1)
        ax.annotate(f"uniform guess: {baseline:.2f}", (1, baseline), xycoords=("axes fraction", "data"), xytext=(-4, -3), textcoords="offset points", ha="right", va="top", fontsize=SMALLEST_FONT)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(wrap(title, PAGE_WIDTH - 0.6, 12))
    # Below the axes: inside, at a page's width, it would cover the curves or the baseline's label.
    fig.legend(loc="outside lower center", ncol=2)
    steps, tokens = h["step"][-1], h["tokens_seen"][-1]
    if steps > 0 and tokens > 0:
        per_step = tokens / steps
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step / 1000, lambda t: t * 1000 / per_step))
        top.set_xlabel("tokens seen (thousands)")
    text = f"{title}: over {steps} steps ({tokens:,} tokens), the training loss goes from {h['train_loss'][0]:.2f} to {h['train_loss'][-1]:.2f}"
    if validated:
        text += f", the validation loss from {validated[0][1]:.2f} to {validated[-1][1]:.2f}"
    if baseline is not None:
        text += f"; a dashed line marks the uniform guess, {baseline:.2f}"
    return describe(fig, text + ".")


def plot_lr_schedule(steps: list[int], lrs: list[float], warmup_steps: int | None = None, title: str = "Learning rate: linear warm-up, then cosine decay") -> Figure:
    """The learning rate of every step, with the end of warm-up marked (chapter 7)."""
    steps, lrs = list(steps), list(lrs)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3.2))
    ax.plot(steps, lrs, color=COLORS[2])
    if warmup_steps:
        ax.axvline(warmup_steps, color=COLORS[7], ls=":", lw=1)
        ax.text(warmup_steps, max(lrs), " end of warm-up", va="top", fontsize=SMALLEST_FONT)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(wrap(title, PAGE_WIDTH - 0.6, 12))
    peak = int(np.argmax(lrs))
    return describe(fig, f"The learning rate at each of {len(steps)} optimizer steps: from {lrs[0]:.2g} at step {steps[0]} "
                    f"up to {lrs[peak]:.2g} at step {steps[peak]}" + (f", the end of warm-up marked at step {warmup_steps}" if warmup_steps else "")
                    + f", then down to {lrs[-1]:.2g} at step {steps[-1]}.")


# ---- chapter 8: pretrained GPT-2


def plot_kv_cache_idea(prompt_tokens: int = 3, new_tokens: int = 4) -> Figure:
    """What each generation step computes, without a KV cache (top) and with one (bottom) (chapter 8).

    Rows are steps, columns token positions: without a cache every step recomputes the whole
    sequence; with one, only the newest token, the earlier keys and values read from the cache.
    """
    n = prompt_tokens + new_tokens
    colors = {"computed": COLORS[3], "cached": COLORS[5], "none": "#f2f2f2"}
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 2 * (0.4 * new_tokens + 1.0) + 0.6), sharex=True, layout="constrained")
    works = []
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
            ax.text(n + 0.1, -step, f"predicts token {length + 1}", va="center", fontsize=SMALLEST_FONT)
        works.append(work)
        ax.set_xlim(-0.1, n + 2.9)  # room for the "predicts token" labels
        ax.set_ylim(-new_tokens + 0.4, 0.6)
        ax.set_xticks([p + 0.46 for p in range(n)], [str(p + 1) for p in range(n)])
        ax.set_yticks([-s for s in range(new_tokens)], [f"step {s + 1}" for s in range(new_tokens)])
        ax.grid(False)
        ax.set_title(f"{'With' if cached else 'Without'} a KV cache: {work} token computations", fontsize=11)
    axes[-1].set_xlabel("token position")
    handles = [Patch(color=colors["computed"], label="run through every layer"), Patch(color=colors["cached"], label="keys and values read from the cache")]
    fig.legend(handles=handles, loc="outside lower center", ncol=1)
    return describe(fig, f"Which token positions each of {new_tokens} generation steps computes after a {prompt_tokens}-token prompt. "
                    f"Without a KV cache (top) every step runs all the tokens so far through every layer: {works[0]} token "
                    f"computations. With one (bottom), each step after the first runs only the newest token and reads the "
                    f"earlier keys and values from the cache: {works[1]}.")


def plot_kv_speedup(contexts: list[int], seconds: dict[str, tuple[list[float], list[float]]], ratios: dict[str, list[list[float]]]) -> Figure:
    """Top: one generation step's time against the tokens before it, per model, without (solid)
    and with (dashed) a KV cache. Bottom: the cache's speed-up, median and range of the rounds (ch. 8).

    ``seconds[model]`` = (without, with), one time per context; ``ratios[model]``: per context, the rounds' speed-ups.
    """
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 6.6), sharex=True, layout="constrained")
    medians = {}
    for color, (label, (without, with_cache)) in zip(COLORS, seconds.items()):
        ax.plot(contexts, 1e3 * np.array(without), "o-", color=color, label=label)
        ax.plot(contexts, 1e3 * np.array(with_cache), "s--", color=color)
        mid, low, high = (np.array([f(r) for r in ratios[label]]) for f in (np.median, np.min, np.max))
        medians[label] = mid
        ax2.errorbar(contexts, mid, yerr=[mid - low, high - mid], fmt="o-", color=color, capsize=3)
    titles = ("One step: no cache (solid), cache (dashed)", "The cache's speed-up")
    for a, title, ylabel in zip((ax, ax2), titles, ("milliseconds", "no cache ÷ cache")):
        a.set_xscale("log", base=2)
        a.set(xticks=contexts, xticklabels=contexts, ylabel=ylabel)
        a.set_title(title, fontsize=11)
    ax2.set_xlabel("tokens in the context")
    ax.set_yscale("log")
    ax.legend()
    ax2.axhline(1.0, color=COLORS[7], lw=1, ls=":")
    ax2.set_ylim(bottom=0)
    at_last = ", ".join(f"{mid[-1]:.1f}× for {label}" for label, mid in medians.items())
    return describe(fig, f"The time of one generation step against the tokens in the context, {contexts[0]} to {contexts[-1]}, "
                    f"for {len(seconds)} models, without (solid) and with (dashed) a KV cache (top), and the cache's speed-up, "
                    f"median and range over the rounds (bottom): at {contexts[-1]} tokens it is {at_last}.")
