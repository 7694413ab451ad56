"""The figures of the measurement chapters: FLOPs (chapter 9) and MFU (chapter 10).

Like `gptcourse.plots` (whose style and colours they share), each function draws one
figure, gives it alt text (`gptcourse.alt_text.describe`) and returns the ``Figure``.
The numbers come from `gptcourse.flops` (FLOP counts) and `gptcourse.mfu` (measurements).
"""

from __future__ import annotations

import dataclasses
import statistics

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .alt_text import describe
from .config import GPTConfig
from .flops import attention_crossover, count_flops, flops_per_token_6n
from .plots import COLORS, PAGE_WIDTH

# A phone shows a figure at most 358 CSS px wide: 10-point text, the smallest here, stays
# at least 8 CSS px in a figure PAGE_WIDTH (6) inches wide. So two panels go one above the
# other, each as wide as a single one.
SMALL = 10  # points: annotations, legends and tick labels


def _rate(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e12:.3g} TFLOP/s"


# ---- chapter 9: counting FLOPs


def plot_flop_breakdown(count, title: str | None = None) -> Figure:
    """Each component's share of a pass's FLOPs (a `gptcourse.flops.FlopCount`), as bars (chapter 9)."""
    rows = count.rows()
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.8 + 0.38 * len(rows)))
    names = [r["component"] for r in rows][::-1]
    shares = [100 * r["share"] for r in rows][::-1]
    colors = [COLORS[1] if "attention" in n and "projection" not in n else COLORS[0] for n in names]
    colors = [COLORS[3] if n == "LM head" else c for n, c in zip(names, colors)]
    bars = ax.barh(names, shares, color=colors)
    ax.bar_label(bars, labels=[f"{s:.1f}%" for s in shares], padding=3, fontsize=SMALL)
    ax.set_xlim(0, max(shares) * 1.25)
    ax.set_xlabel("share of all FLOPs (%)")
    cfg = count.config
    pass_name = "forward + backward" if count.training else "forward"
    shape = f"L={cfg.n_layers}, d={cfg.emb_dim}, B={count.batch_size}, T={count.seq_len}"
    ax.set_title(title or f"{count.total / 1e12:.3g} TFLOPs, {pass_name}\n{shape}")
    top = max(rows, key=lambda r: r["share"])
    describe(fig, f"Bar chart of each component's share of the {count.total / 1e12:.3g} "
             f"TFLOPs of a {pass_name} pass ({shape}): the largest is the {top['component']}, "
             f"at {100 * top['share']:.1f}%; the attention matrix's two matmuls "
             f"are {100 * count.attention_share:.1f}% together.")
    return fig


def plot_attention_share(context_lengths: list[int], presets: tuple[str, ...] = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")) -> Figure:
    """Top: the share of training FLOPs in the T×T attention matrix; bottom: how far 6N is off (chapter 9)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 7.6), sharex=True)
    summary = []
    for i, preset in enumerate(presets):
        shares, errors = [], []
        for t in context_lengths:
            cfg = dataclasses.replace(GPTConfig.from_preset(preset), context_length=t)
            count = count_flops(cfg, 1, t)
            shares.append(100 * count.attention_share)
            errors.append(100 * (flops_per_token_6n(cfg) / count.per_token - 1))
        crossing = attention_crossover(preset)  # T* where attention = everything else
        top.plot(context_lengths, shares, marker="o", ms=3, color=COLORS[i], label=f"{preset} (50% at T ≈ {crossing:,.0f})")
        bottom.plot(context_lengths, errors, marker="o", ms=3, color=COLORS[i], label=preset)
        summary.append((preset, crossing, errors))
    top.axhline(50, color="grey", ls="--", lw=1)
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.axvline(1024, color="grey", ls=":", lw=1)
        ax.legend(fontsize=SMALL)
    bottom.set_xlabel("context length T (tokens)")
    top.set_ylabel("attention matrix share\nof FLOPs (%)")
    top.set_title("Where attention starts to dominate")
    bottom.set_ylabel("6N ÷ exact − 1 (%)")
    bottom.set_title("The 6N rule's error\n(N: nanoGPT's, no position embeddings)")
    (first, t_first, err_first), (last, t_last, err_last) = summary[0], summary[-1]
    describe(fig, f"Two line charts against the context length, {context_lengths[0]:,} to "
             f"{context_lengths[-1]:,} tokens. Top: the attention matrix's share of the "
             f"training FLOPs, which passes 50% at T ≈ {t_first:,.0f} for {first} and "
             f"{t_last:,.0f} for {last}. Bottom: the 6N rule's error, from "
             f"{err_first[0]:+.1f}% to {err_first[-1]:+.0f}% for {first} and from "
             f"{err_last[0]:+.1f}% to {err_last[-1]:+.0f}% for {last}.")
    return fig


# ---- chapter 10: measuring MFU


def plot_step_times(series: dict[str, list[float]], title: str = "Training step times") -> Figure:
    """Each step's time (seconds in, milliseconds on the plot), one line per series, with its median (chapter 10)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3.8))
    said = []
    for i, (label, times) in enumerate(series.items()):
        ms = [1e3 * t for t in times]
        median = statistics.median(ms)
        ax.plot(range(1, len(ms) + 1), ms, marker="o", color=COLORS[i], label=f"{label} (median {median:.0f} ms)")
        ax.axhline(median, color=COLORS[i], ls=":", lw=1)
        slowest = max(range(len(ms)), key=ms.__getitem__)
        said.append(f"{label[:1].upper() + label[1:]}: step 1 took {ms[0]:.0f} ms, the slowest (step {slowest + 1}) "
                    f"{ms[slowest]:.0f} ms, the median of {len(ms)} steps {median:.0f} ms")
    ax.set_xlabel("step")
    ax.set_ylabel("time (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=SMALL)
    describe(fig, f"Time of each training step, in milliseconds. {'; '.join(said)}.")
    return fig


def plot_mfu_sweep(xs: list, measurements: dict[str, list], xlabel: str, title: str = "", log_x: bool = True) -> Figure:
    """Tokens/s (top) and MFU (bottom) of `gptcourse.mfu.TrainingMeasurement` lists against `xs` (chapter 10)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 6.6), sharex=True)
    said = []
    for i, (label, ms) in enumerate(measurements.items()):
        rates, mfus = [m.tokens_per_second for m in ms], [100 * m.mfu for m in ms]
        top.plot(xs, rates, marker="o", color=COLORS[i], label=label)
        bottom.plot(xs, mfus, marker="o", color=COLORS[i], label=label)
        said.append(f"{label}: from {rates[0]:,.0f} tokens/s and {mfus[0]:.1f}% MFU at "
                    f"{xs[0]} to {rates[-1]:,.0f} tokens/s and {mfus[-1]:.1f}% at {xs[-1]}")
    for ax in (top, bottom):
        if log_x:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_ylim(bottom=0)
        if len(measurements) > 1:
            ax.legend(fontsize=SMALL)
    bottom.set_xlabel(xlabel)
    top.set_ylabel("tokens / s")
    bottom.set_ylabel("MFU (%)")
    first = next(iter(measurements.values()))[0]
    peak = f"{_rate(first.peak_flops)} ({first.peak_source})"
    bottom.set_title(f"MFU against {peak}")
    top.set_title(title or "Training throughput")
    describe(fig, f"Tokens per second (top) and MFU against {peak} (bottom), against "
             f"{xlabel}. {'; '.join(said)}.")
    return fig


def plot_roofline(peak: float, bandwidth: float, squares: dict[int, tuple[float, float]], others: list[tuple[str, float, float]], title: str = "") -> Figure:
    """The roofline min(peak, intensity × bandwidth), with measured matmuls under it (chapter 10).

    ``squares`` maps n to (FLOP/byte, FLOP/s) of an (n×n)·(n×n) product; ``others`` are
    (label, FLOP/byte, FLOP/s) of any other matmuls (drawn with their own markers).
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.8 + 0.3 * len(others)))
    intensities = [x for x, _ in squares.values()] + [p[1] for p in others] + [peak / bandwidth]
    lo, hi = min(intensities) / 4, max(intensities) * 4
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(grid, [min(peak, x * bandwidth) / 1e9 for x in grid], color="black", lw=2, label="roofline: min(peak, intensity × bandwidth)")
    ax.axvline(peak / bandwidth, color="grey", ls=":", lw=1)
    ax.text(peak / bandwidth, peak / 1e9 * 1.15, f" ridge: {peak / bandwidth:.1f} FLOP/byte", fontsize=SMALL)
    xs, ys = [x for x, _ in squares.values()], [y / 1e9 for _, y in squares.values()]
    ax.plot(xs, ys, marker="o", ls="-", lw=0.8, color=COLORS[0], label="square matmuls (n×n)·(n×n)", zorder=3)
    for n, (x, y) in squares.items():
        ax.annotate(f"{n}", (x, y / 1e9), textcoords="offset points", xytext=(4, -12), fontsize=SMALL, color=COLORS[0])
    for i, (label, x, y) in enumerate(others):
        ax.scatter([x], [y / 1e9], marker="^sDvP*"[i % 6], s=50, color=COLORS[(i + 1) % (len(COLORS) - 1)], zorder=4, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(ys) / 2, peak / 1e9 * 2.5)  # room for the labels of n and of the ridge
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title or "Roofline")
    # Below the plot: the labels are as long as the plot is wide.
    ax.legend(fontsize=SMALL, loc="upper left", bbox_to_anchor=(0, -0.2))
    small, large = min(squares), max(squares, key=lambda n: squares[n][1])
    ours = "; ".join(f"{label}: {y / 1e9:,.1f} GFLOP/s at {x:.1f} FLOP/byte" for label, x, y in others)
    describe(fig, f"Roofline on log-log axes: a roof of {peak / 1e9:,.1f} GFLOP/s, sloped "
             f"left of its ridge at {peak / bandwidth:.1f} FLOP/byte. Square matmuls (labelled "
             f"n) reach {squares[small][1] / 1e9:,.1f} GFLOP/s at n = {small} and "
             f"{squares[large][1] / 1e9:,.1f} at n = {large}" + (f"; {ours}." if ours else "."))
    return fig
