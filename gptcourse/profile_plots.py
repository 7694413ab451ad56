"""The figures of appendix C, where the time goes: time against FLOPs, the model's roofline, decode.

Like `gptcourse.perf_plots`, each function draws one figure, gives it alt text and returns
the ``Figure``. They take plain numbers (the measurements come from `gptcourse.profiling`
and `gptcourse.roofline`, a later layer), so they draw any model's profile.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .alt_text import describe
from .figure_style import COLORS, PAGE_WIDTH, SMALLEST_FONT

SMALL = SMALLEST_FONT  # points: annotations, legends and tick labels
PHASE_MARKERS = "os^Dv"  # one marker per phase (training step, prefill, decode, ...)


def plot_time_against_flops(rows: list[tuple[str, float, float]], title: str = "") -> Figure:
    """Each op class's share of a step's time beside its share of the counted FLOPs (appendix C).

    ``rows`` are (label, time share, FLOP share), shares as fractions, in the order to draw
    them from the top. A class with time and no FLOPs is work chapter 9's count leaves out.
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 1.2 + 0.42 * len(rows)))
    labels = [label for label, _, _ in rows][::-1]
    times = [100 * t for _, t, _ in rows][::-1]
    flops = [100 * f for _, _, f in rows][::-1]
    positions = range(len(rows))
    height = 0.4
    time_bars = ax.barh([p + height / 2 for p in positions], times, height, color=COLORS[0], label="share of time")
    flop_bars = ax.barh([p - height / 2 for p in positions], flops, height, color=COLORS[1], label="share of FLOPs (chapter 9)")
    ax.bar_label(time_bars, labels=[f"{t:.1f}%" for t in times], padding=3, fontsize=SMALL)
    ax.bar_label(flop_bars, labels=[f"{f:.1f}%" if f else "" for f in flops], padding=3, fontsize=SMALL)
    ax.set_yticks(list(positions), labels)
    ax.set_xlim(0, max(times + flops) * 1.3)
    ax.set_xlabel("share of the step (%)")
    ax.legend(fontsize=SMALL, loc="lower right")
    ax.set_title(title or "Where a training step's time goes")
    most = max(rows, key=lambda r: r[1])
    unflopped = [label for label, t, f in rows if f == 0 and t > 0]
    describe(fig, f"Horizontal bars, two per op class: its share of the step's time and of its "
             f"counted FLOPs. The most time goes to {most[0]} ({100 * most[1]:.1f}% of the time, "
             f"{100 * most[2]:.1f}% of the FLOPs); "
             + (f"{len(unflopped)} classes take time but no counted FLOPs: {', '.join(unflopped)}."
                if unflopped else "every class with time has counted FLOPs."))
    return fig


def plot_model_roofline(peak: float, bandwidth: float, phases: dict[str, list[tuple[str, float, float]]], title: str = "") -> Figure:
    """The roofline min(peak, intensity × bandwidth) with each op class of each phase on it (appendix C).

    ``phases`` maps a phase ("training step", "prefill", "decode step") to its points
    (op class label, FLOP/byte, achieved FLOP/s). A marker per phase, a colour per class.
    """
    points = [p for pts in phases.values() for p in pts]
    classes = list(dict.fromkeys(label for label, _, _ in points))
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 5.0 + 0.16 * (len(classes) + len(phases))))
    ridge = peak / bandwidth
    intensities = [x for _, x, _ in points] + [ridge]
    lo, hi = min(intensities) / 3, max(intensities) * 3
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(grid, [min(peak, x * bandwidth) / 1e9 for x in grid], color="black", lw=2)
    ax.axvline(ridge, color="grey", ls=":", lw=1)
    ax.text(ridge, peak / 1e9 * 1.15, f" ridge: {ridge:.1f} FLOP/byte", fontsize=SMALL)
    for p, pts in enumerate(phases.values()):
        for label, x, y in pts:
            color = COLORS[classes.index(label) % len(COLORS)]
            ax.scatter([x], [y / 1e9], marker=PHASE_MARKERS[p % len(PHASE_MARKERS)], s=55,
                       color=color, edgecolors="black", linewidths=0.5, zorder=3)
    # Two legends: the shape says the phase, the colour the op class.
    for p, phase in enumerate(phases):
        ax.scatter([], [], marker=PHASE_MARKERS[p % len(PHASE_MARKERS)], color="white", edgecolors="black", label=phase)
    for c, label in enumerate(classes):
        ax.scatter([], [], marker="s", color=COLORS[c % len(COLORS)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ys = [y / 1e9 for _, _, y in points]
    ax.set_ylim(min(ys) / 3, peak / 1e9 * 3)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(title or "The roofline of our GPT")
    ax.legend(fontsize=SMALL, loc="upper left", bbox_to_anchor=(0, -0.15), ncol=2)
    said = []
    for phase, pts in phases.items():
        below = [label for label, x, _ in pts if x < ridge]
        said.append(f"{phase}: {len(below)} of {len(pts)} classes left of the ridge")
    describe(fig, f"Roofline on log-log axes: a roof of {peak / 1e9:,.1f} GFLOP/s, sloped left of "
             f"its ridge at {ridge:.1f} FLOP/byte, with each op class of each phase placed at its "
             f"arithmetic intensity and achieved GFLOP/s. {'; '.join(said)}.")
    return fig


def plot_decode_bandwidth(batch_sizes: list[int], predicted: dict[str, list[float]], measured: dict[str, list[float]], mbu: dict[str, list[float]], title: str = "") -> Figure:
    """Top: decode tokens/s against batch, predicted (lines) and measured (markers); bottom: MBU (appendix C).

    ``predicted``, ``measured`` and ``mbu`` map a series name (e.g. "context 128") to one
    value per batch size; MBU as a fraction of the measured bandwidth.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 7.2), sharex=True)
    for i, name in enumerate(predicted):
        color = COLORS[i % len(COLORS)]
        top.plot(batch_sizes, predicted[name], color=color, ls="--", lw=1.2, label=f"{name}, predicted")
        top.plot(batch_sizes, measured[name], color=color, marker="o", ls="none", label=f"{name}, measured")
        bottom.plot(batch_sizes, [100 * m for m in mbu[name]], color=color, marker="o", label=name)
    top.set_xscale("log", base=2)
    top.set_yscale("log")
    top.set_ylabel("tokens/s")
    top.set_title(title or "Decoding: tokens/s and memory-bandwidth utilisation")
    top.legend(fontsize=SMALL)
    bottom.set_ylabel("MBU (% of measured bandwidth)")
    bottom.set_xlabel("batch size (sequences decoded together)")
    bottom.set_ylim(0, max(110, max(100 * m for ms in mbu.values() for m in ms) * 1.1))
    bottom.axhline(100, color="grey", ls=":", lw=1)
    bottom.legend(fontsize=SMALL)
    said = []
    for name in measured:
        said.append(f"{name}: {measured[name][0]:,.0f} tokens/s at batch {batch_sizes[0]} "
                    f"(MBU {100 * mbu[name][0]:.0f}%) to {measured[name][-1]:,.0f} at batch "
                    f"{batch_sizes[-1]} (MBU {100 * mbu[name][-1]:.0f}%)")
    describe(fig, "Top: decode tokens per second against batch size on log axes, the "
             "prediction from bandwidth and peak as dashed lines, the measurements as dots. "
             f"Bottom: the memory-bandwidth utilisation of each measurement. {'; '.join(said)}.")
    return fig
