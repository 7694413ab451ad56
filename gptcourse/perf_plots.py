"""The figures of the measurement chapters: FLOPs (chapter 9) and MFU (chapter 10).

Like `gptcourse.plots` (whose style and colours they share), each function draws one
figure and returns the matplotlib ``Figure``. The numbers come from the modules that own
them: FLOP counts from `gptcourse.flops`, measurements from `gptcourse.mfu`.
"""

from __future__ import annotations

import dataclasses
import statistics

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .config import GPTConfig
from .flops import attention_crossover, count_flops, flops_per_token_6n
from .plots import COLORS

# ---- chapter 9: counting FLOPs


def plot_flop_breakdown(count, title: str | None = None) -> Figure:
    """Each component's share of a pass's FLOPs (a `gptcourse.flops.FlopCount`), as bars (chapter 9)."""
    rows = count.rows()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    names = [r["component"] for r in rows][::-1]
    shares = [100 * r["share"] for r in rows][::-1]
    colors = [COLORS[1] if "attention" in n and "projection" not in n else COLORS[0] for n in names]
    colors = [COLORS[3] if n == "LM head" else c for n, c in zip(names, colors)]
    bars = ax.barh(names, shares, color=colors)
    for bar, share in zip(bars, shares):
        ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{share:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, max(shares) * 1.18)
    ax.set_xlabel("share of all FLOPs (%)")
    cfg = count.config
    pass_name = "forward + backward" if count.training else "forward"
    ax.set_title(title or f"{count.total / 1e12:.3g} TFLOPs: L={cfg.n_layers}, d={cfg.emb_dim}, B={count.batch_size}, T={count.seq_len}, {pass_name}")
    return fig


def plot_attention_share(context_lengths: list[int], presets: tuple[str, ...] = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")) -> Figure:
    """Left: the share of training FLOPs in the T×T attention matrix; right: how far 6N is off (chapter 9)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    for i, preset in enumerate(presets):
        shares, errors = [], []
        for t in context_lengths:
            cfg = dataclasses.replace(GPTConfig.from_preset(preset), context_length=t)
            count = count_flops(cfg, 1, t)
            shares.append(100 * count.attention_share)
            errors.append(100 * (flops_per_token_6n(cfg) / count.per_token - 1))
        crossing = attention_crossover(preset)  # T* where attention = everything else
        left.plot(context_lengths, shares, marker="o", ms=3, color=COLORS[i], label=f"{preset} (50% at T ≈ {crossing:,.0f})")
        right.plot(context_lengths, errors, marker="o", ms=3, color=COLORS[i], label=preset)
    left.axhline(50, color="grey", ls="--", lw=1)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length T (tokens)")
        ax.axvline(1024, color="grey", ls=":", lw=1)
        ax.legend(fontsize=8)
    left.set_ylabel("attention matrix share of FLOPs (%)")
    left.set_title("Where attention starts to dominate")
    right.set_ylabel("6N ÷ exact − 1 (%)")
    right.set_title("The 6N rule's error (N: nanoGPT's, no position emb.)")
    return fig


# ---- chapter 10: measuring MFU


def plot_step_times(series: dict[str, list[float]], title: str = "Training step times") -> Figure:
    """Each step's time (seconds in, milliseconds on the plot), one line per series, with its median (chapter 10)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (label, times) in enumerate(series.items()):
        ms = [1e3 * t for t in times]
        ax.plot(range(1, len(ms) + 1), ms, marker="o", color=COLORS[i], label=f"{label} (median {statistics.median(ms):.0f} ms)")
        ax.axhline(statistics.median(ms), color=COLORS[i], ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("time (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    return fig


def plot_mfu_sweep(xs: list, measurements: dict[str, list], xlabel: str, title: str = "", log_x: bool = True) -> Figure:
    """Tokens/s (left) and MFU (right) of `gptcourse.mfu.TrainingMeasurement` lists against `xs` (chapter 10)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 3.8))
    for i, (label, ms) in enumerate(measurements.items()):
        left.plot(xs, [m.tokens_per_second for m in ms], marker="o", color=COLORS[i], label=label)
        right.plot(xs, [100 * m.mfu for m in ms], marker="o", color=COLORS[i], label=label)
    for ax in (left, right):
        if log_x:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylim(bottom=0)
        if len(measurements) > 1:
            ax.legend()
    left.set_ylabel("tokens / s")
    right.set_ylabel("MFU (%)")
    first = next(iter(measurements.values()))[0]
    right.set_title(f"MFU against {first.peak_flops / 1e12:.3g} TFLOP/s ({first.peak_source})", fontsize=11)
    left.set_title(title or "Training throughput", fontsize=11)
    return fig


def plot_roofline(peak: float, bandwidth: float, squares: dict[int, tuple[float, float]], others: list[tuple[str, float, float]], title: str = "") -> Figure:
    """The roofline min(peak, intensity × bandwidth), with measured matmuls under it (chapter 10).

    ``squares`` maps n to (FLOP/byte, FLOP/s) of an (n×n)·(n×n) product; ``others`` are
    (label, FLOP/byte, FLOP/s) of any other matmuls (drawn with their own markers).
    """
    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    intensities = [x for x, _ in squares.values()] + [p[1] for p in others] + [peak / bandwidth]
    lo, hi = min(intensities) / 4, max(intensities) * 4
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(grid, [min(peak, x * bandwidth) / 1e9 for x in grid], color="black", lw=2, label="roofline: min(peak, intensity × bandwidth)")
    ax.axvline(peak / bandwidth, color="grey", ls=":", lw=1)
    ax.text(peak / bandwidth, peak / 1e9 * 1.15, f" ridge: {peak / bandwidth:.1f} FLOP/byte", fontsize=8)
    xs, ys = [x for x, _ in squares.values()], [y / 1e9 for _, y in squares.values()]
    ax.plot(xs, ys, marker="o", ls="-", lw=0.8, color=COLORS[0], label="square matmuls (n×n)·(n×n)", zorder=3)
    for n, (x, y) in squares.items():
        ax.annotate(f"n={n}", (x, y / 1e9), textcoords="offset points", xytext=(4, -10), fontsize=7, color=COLORS[0])
    for i, (label, x, y) in enumerate(others):
        ax.scatter([x], [y / 1e9], marker="^sDvP*"[i % 6], s=50, color=COLORS[(i + 1) % (len(COLORS) - 1)], zorder=4, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title or "Roofline")
    ax.legend(fontsize=7, loc="lower right")
    return fig
