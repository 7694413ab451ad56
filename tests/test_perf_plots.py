"""The figures of chapters 9 and 10 draw the numbers of gptcourse.flops and gptcourse.mfu."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import attention_crossover, count_flops
from gptcourse.mfu import TrainingMeasurement
from gptcourse.perf_plots import plot_attention_share, plot_flop_breakdown, plot_mfu_sweep, plot_roofline, plot_step_times


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_flop_breakdown_bars_are_the_shares():
    count = count_flops("gpt2-small", 1, 1024)
    (ax,) = plot_flop_breakdown(count).axes
    shares = {p.get_y(): p.get_width() for p in ax.patches}
    expected = sorted(100 * r["share"] for r in count.rows())
    assert sorted(shares.values()) == pytest.approx(expected)
    assert "forward + backward" in ax.get_title()


def test_attention_share_crosses_half_where_the_formula_says():
    lengths = [2**k for k in range(7, 16)]
    left, right = plot_attention_share(lengths, presets=("gpt2-small", "gpt2-xl")).axes
    small, xl = left.get_lines()[:2]
    assert small.get_label() == f"gpt2-small (50% at T ≈ {attention_crossover('gpt2-small'):,.0f})"
    assert list(small.get_ydata()) == sorted(small.get_ydata()), "attention's share grows with the context"
    assert all(s > x for s, x in zip(small.get_ydata(), xl.get_ydata(), strict=True)), "wider models push T* out"
    assert all(e < 0 for e in right.get_lines()[0].get_ydata()), "6N undercounts"


def test_step_times_in_milliseconds_with_their_median():
    (ax,) = plot_step_times({"cold": [0.5, 0.1, 0.1, 0.2, 0.1]}).axes
    line, median = ax.get_lines()
    assert list(line.get_ydata()) == pytest.approx([500, 100, 100, 200, 100])
    assert list(median.get_ydata()) == pytest.approx([100, 100]) and "median 100 ms" in line.get_label()


def test_mfu_sweep_draws_each_measurement():
    model = GPT(GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=1))
    ms = [TrainingMeasurement.from_step_times(model, None, b, 8, [0.01 * b], peak=1e9) for b in (1, 2, 4)]
    left, right = plot_mfu_sweep([1, 2, 4], {"T 8": ms}, xlabel="batch").axes
    assert list(left.get_lines()[0].get_ydata()) == pytest.approx([m.tokens_per_second for m in ms])
    assert list(right.get_lines()[0].get_ydata()) == pytest.approx([100 * m.mfu for m in ms])
    assert "MFU against 0.001 TFLOP/s (given)" in right.get_title()


def test_roofline_is_the_lower_of_the_two_limits():
    peak, bandwidth = 1e12, 1e11
    (ax,) = plot_roofline(peak, bandwidth, {64: (5.0, 4e11), 512: (40.0, 9e11)}, [("head", 20.0, 8e11)]).axes
    roof = ax.get_lines()[0]
    for x, y in zip(roof.get_xdata(), roof.get_ydata(), strict=True):
        assert y == pytest.approx(min(peak, x * bandwidth) / 1e9)
    assert any("ridge: 10.0 FLOP/byte" in t.get_text() for t in ax.texts)
    assert torch.tensor(ax.get_lines()[2].get_xdata()).tolist() == [5.0, 40.0]
