"""Appendix C's figures draw the numbers they are given, legibly, with alt text that says them."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from gptcourse.plots import use_style
from gptcourse.profile_plots import plot_decode_bandwidth, plot_model_roofline, plot_time_against_flops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_described, assert_legible  # noqa: E402


@pytest.fixture(autouse=True)
def _style_and_close():
    use_style()
    yield
    plt.close("all")


ROWS = [("QKV projection", 0.12, 0.25), ("layer norm", 0.08, 0.0), ("LM head", 0.30, 0.41), ("AdamW", 0.1, 0.0)]


def test_time_and_flop_bars_are_the_shares():
    fig = plot_time_against_flops(ROWS)
    (ax,) = fig.axes
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == sorted(round(100 * v, 6) for _, t, f in ROWS for v in (t, f))
    assert [t.get_text() for t in ax.get_yticklabels()] == [label for label, _, _ in ROWS][::-1]
    assert_legible(fig, "time against FLOPs")
    assert_described(fig, "time against FLOPs", ["LM head", "30.0%", "2 classes", "layer norm, AdamW"])


def test_roofline_puts_each_point_where_it_is_given():
    phases = {"training step": [("MLP matmuls", 40.0, 5e10), ("GELU", 0.5, 1e9)],
              "decode step": [("MLP matmuls", 0.5, 2e9)]}
    fig = plot_model_roofline(1e11, 1e10, phases)
    (ax,) = fig.axes
    drawn = [tuple(c.get_offsets()[0]) for c in ax.collections if len(c.get_offsets())]
    assert sorted(drawn) == sorted((x, y / 1e9) for pts in phases.values() for _, x, y in pts)
    roof = ax.get_lines()[0]
    assert max(roof.get_ydata()) == pytest.approx(100), "the flat roof is the peak, in GFLOP/s"
    assert_legible(fig, "model roofline")
    assert_described(fig, "model roofline", ["100.0 GFLOP/s", "10.0 FLOP/byte", "training step: 1 of 2",
                                              "decode step: 1 of 1"])


def test_decode_figure_draws_prediction_measurement_and_mbu():
    batches = [1, 4, 16]
    fig = plot_decode_bandwidth(batches, {"context 128": [10, 40, 150]}, {"context 128": [8, 30, 90]},
                                {"context 128": [0.8, 0.75, 0.5]})
    top, bottom = fig.axes
    predicted, measured = top.get_lines()
    assert list(predicted.get_ydata()) == [10, 40, 150] and list(measured.get_ydata()) == [8, 30, 90]
    assert list(bottom.get_lines()[0].get_ydata()) == pytest.approx([80, 75, 50])
    assert_legible(fig, "decode bandwidth")
    assert_described(fig, "decode bandwidth", ["8 tokens/s at batch 1 (MBU 80%)", "90 at batch 16 (MBU 50%)"])
