"""The figures of chapters 9 and 10 draw the numbers of gptcourse.flops and gptcourse.mfu."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from gptcourse import GPT, GPTConfig
from gptcourse.flops import attention_crossover, count_flops
from gptcourse.llama import LlamaConfig
from gptcourse.mfu import TrainingMeasurement
from gptcourse.perf_plots import plot_attention_share, plot_flop_breakdown, plot_mfu_sweep, plot_roofline, plot_step_times
from gptcourse.plots import use_style

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_described, assert_legible  # noqa: E402


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
    top, bottom = plot_attention_share(lengths, presets=("gpt2-small", "gpt2-xl")).axes
    small, xl = top.get_lines()[:2]
    assert small.get_label() == f"gpt2-small (50% at T ≈ {attention_crossover('gpt2-small'):,.0f})"
    assert list(small.get_ydata()) == sorted(small.get_ydata()), "attention's share grows with the context"
    assert all(s > x for s, x in zip(small.get_ydata(), xl.get_ydata(), strict=True)), "wider models push T* out"
    assert all(e < 0 for e in bottom.get_lines()[0].get_ydata()), "6N undercounts"


def test_step_times_in_milliseconds_with_their_median():
    (ax,) = plot_step_times({"cold": [0.5, 0.1, 0.1, 0.2, 0.1]}).axes
    line, median = ax.get_lines()
    assert list(line.get_ydata()) == pytest.approx([500, 100, 100, 200, 100])
    assert list(median.get_ydata()) == pytest.approx([100, 100]) and "median 100 ms" in line.get_label()


def test_mfu_sweep_draws_each_measurement():
    model = GPT(GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=1))
    ms = [TrainingMeasurement.from_step_times(model, None, b, 8, [0.01 * b], peak=1e9) for b in (1, 2, 4)]
    top, bottom = plot_mfu_sweep([1, 2, 4], {"T 8": ms}, xlabel="batch").axes
    assert list(top.get_lines()[0].get_ydata()) == pytest.approx([m.tokens_per_second for m in ms])
    assert list(bottom.get_lines()[0].get_ydata()) == pytest.approx([100 * m.mfu for m in ms])
    assert "MFU against 0.001 TFLOP/s (given)" in bottom.get_title()


def test_roofline_is_the_lower_of_the_two_limits():
    peak, bandwidth = 1e12, 1e11
    (ax,) = plot_roofline(peak, bandwidth, {64: (5.0, 4e11), 512: (40.0, 9e11)}, [("head", 20.0, 8e11)]).axes
    roof = ax.get_lines()[0]
    for x, y in zip(roof.get_xdata(), roof.get_ydata(), strict=True):
        assert y == pytest.approx(min(peak, x * bandwidth) / 1e9)
    assert any("ridge: 10.0 FLOP/byte" in t.get_text() for t in ax.texts)
    assert torch.tensor(ax.get_lines()[2].get_xdata()).tolist() == [5.0, 40.0]


# ---- as the chapters draw them: legible on a phone, described in words


def _sweep(shapes: list[tuple[int, int]], seconds: list[float]) -> list[TrainingMeasurement]:
    """Measurements shaped like chapter 10's on a CPU: (B, T) steps of a narrow GPT, a peak of 192.8 GFLOP/s."""
    model = GPT(GPTConfig(vocab_size=256, context_length=2048, emb_dim=64, n_heads=2, n_layers=2))
    return [TrainingMeasurement.from_step_times(model, None, b, t, [s], peak=192.8e9) for (b, t), s in zip(shapes, seconds, strict=True)]


BY_BATCH = _sweep([(b, 256) for b in (1, 2, 4, 8)], [0.0151, 0.0224, 0.0344, 0.0636])
BY_CONTEXT = _sweep([(2048 // t, t) for t in (128, 256, 512, 1024, 2048)], [0.0265, 0.030, 0.041, 0.046, 0.063])
SQUARES = {32: (5.3, 8.6e9), 64: (10.7, 27.3e9), 128: (21.3, 118.7e9), 256: (42.7, 178.1e9), 512: (85.3, 192.8e9), 1024: (170.7, 166.5e9)}
OURS = [("GPT feed-forward up (1024×128)·(128×512)", 46.5, 180.4e9), ("GPT LM head (1024×128)·(128×4096)", 55.4, 130.2e9),
        ("GPT attention scores, 32 × (128×32)·(32×128)", 10.7, 100.3e9)]
COLD = [0.104, 0.220, 0.060, 0.073, 0.058, 0.074, 0.055, 0.061]  # chapter 10's first 8 steps on a CPU

# (the figure as a chapter draws it, numbers its alt text must give)
CHAPTER_FIGURES = {
    "ch9 FLOP breakdown": (lambda: plot_flop_breakdown(count_flops("gpt2-small", 1, 1024, training=False)), ["0.292 TFLOPs", "LM head, at 27.1%", "13.3%"]),
    "appendix B FLOP breakdown": (lambda: plot_flop_breakdown(count_flops(LlamaConfig.from_preset("smollm2-135m"), 1, 2048), title="SmolLM2-135M's shape, T = 2048, training"),
                                  ["2.52 TFLOPs", "Q·Kᵀ, at 17.2%", "34.5%"]),
    "ch9 attention share": (lambda: plot_attention_share([2**k for k in range(7, 18)]), ["6,702", "10,124", "131,072", "-95%"]),
    "ch10 step times": (lambda: plot_step_times({"the first 8 training steps": COLD}, title="Time of each training step, from the very first"),
                        ["104 ms", "(step 2) 220 ms", "median of 8 steps 67 ms"]),
    "ch10 MFU by batch": (lambda: plot_mfu_sweep([1, 2, 4, 8], {"context 256": BY_BATCH}, xlabel="batch size", title="Tokens/s against batch size, T = 256"),
                          [f"{BY_BATCH[0].tokens_per_second:,.0f} tokens/s", f"{100 * BY_BATCH[-1].mfu:.1f}% at 8", "0.193 TFLOP/s"]),
    "ch10 MFU by context": (lambda: plot_mfu_sweep([128, 256, 512, 1024, 2048], {"2048 tokens per step": BY_CONTEXT}, xlabel="context length T (B·T fixed)",
                                                   title="Tokens/s against context length (T* = 448)"),
                            [f"{BY_CONTEXT[-1].tokens_per_second:,.0f} tokens/s", "at 2048"]),
    "ch10 roofline": (lambda: plot_roofline(192.8e9, 34.0e9, SQUARES, OURS, title="Roofline of this CPU (torch.float32)"),
                      ["192.8 GFLOP/s", "5.7 FLOP/byte", "8.6 GFLOP/s at n = 32", "LM head (1024×128)·(128×4096): 130.2 GFLOP/s"]),
}


@pytest.mark.parametrize("name", CHAPTER_FIGURES)
def test_every_figure_is_legible_on_a_phone_and_says_what_it_shows(name):
    """Every text at least 8 CSS px in the phone's 358-px column, the figure no wider than the
    desktop column; and alt text that is a sentence with the figure's own numbers in it."""
    use_style()
    draw, numbers = CHAPTER_FIGURES[name]
    fig = draw()
    assert_legible(fig, name)
    assert_described(fig, name, numbers)


@pytest.mark.parametrize("draw", [lambda: plot_attention_share([128, 1024, 8192]), lambda: plot_mfu_sweep([1, 2, 4, 8], {"T 256": BY_BATCH}, xlabel="batch")])
def test_two_panels_stand_one_above_the_other(draw):
    """Side by side, each panel would get half a phone's width; stacked, each gets all of it."""
    use_style()
    top, bottom = (ax.get_position() for ax in draw().axes)
    assert top.x0 == pytest.approx(bottom.x0) and top.y0 > bottom.y1
