"""The live figures: a static figure first, controls that redraw it in place (gptcourse.widgets)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import IPython.display
import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch
from markdown_it import MarkdownIt
from matplotlib.figure import Figure

from gptcourse.alt_text import alt_text
from gptcourse.flops import count_flops
from gptcourse.peaks import peak_flops
from gptcourse.plots import use_style
from gptcourse.widgets import AttentionExplorer, FlopCalculator, LiveFigure, _attention_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import assert_legible  # noqa: E402

T = 5


class FakeHandle:
    def __init__(self, obj):
        self.shown = [obj]

    def update(self, obj):
        self.shown.append(obj)


@pytest.fixture
def shown(monkeypatch):
    """What `display` was given, in order; handles for those shown with a display_id."""
    calls = []

    def display(obj, display_id=False):
        calls.append(obj)
        return FakeHandle(obj) if display_id else None

    monkeypatch.setattr(IPython.display, "display", display)
    yield calls
    plt.close("all")


class Counter(LiveFigure):
    def __init__(self):
        self.slider = ipywidgets.IntSlider(value=1)
        super().__init__(self.slider, [self.slider])

    def figure(self):
        fig, ax = plt.subplots()
        ax.set_title(f"value {self.slider.value}")
        return fig


def test_live_figure_shows_controls_then_a_plain_figure_and_redraws_it_in_place(shown):
    live = Counter()
    live.slider.value = 2  # not shown yet: nothing to redraw, no error
    live._ipython_display_()
    assert shown[0] is live.slider and isinstance(shown[1], Figure) and len(shown) == 2  # no table
    live.slider.value = 3
    (handle,) = live._handles
    assert [fig.axes[0].get_title() for fig in handle.shown] == ["value 2", "value 3"]
    assert len(shown) == 2, "redrawn in place, not displayed again"


def controls(widget):
    """Every control in a widget tree (boxes are walked, not returned)."""
    if isinstance(widget, ipywidgets.Box):
        for child in widget.children:
            yield from controls(child)
    else:
        yield widget


@pytest.mark.parametrize(
    "make",
    [lambda: AttentionExplorer(["The cat sat."], torch.nn.Embedding(50257, 8)), lambda: FlopCalculator()],
    ids=["AttentionExplorer", "FlopCalculator"],
)
def test_labels_are_not_cut_and_controls_wrap_on_a_narrow_screen(make):
    live = make()
    for control in controls(live.controls):
        if isinstance(control, ipywidgets.Checkbox):  # label beside the box, as wide as its text
            assert not control.indent and control.layout.width == "auto", control.description
        else:  # label before the control: its own width, not ipywidgets' 80 px ("temperat…")
            assert control.style.description_width == "initial", control.description
    grids = [box for box in [live.controls, *live.controls.children] if isinstance(box, ipywidgets.GridBox)]
    assert grids and all("auto-fill" in grid.layout.grid_template_columns for grid in grids), "side by side only where they fit"


# ---- chapter 3: the attention explorer


def test_explorer_weights_causal_scale_and_temperature():
    x = torch.randn(T, 16)
    w = _attention_weights(x, causal=True, scale=True, temperature=1.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(T))
    assert (w.triu(diagonal=1) == 0).all()
    # Dividing by √d is a temperature of √d.
    torch.testing.assert_close(_attention_weights(x, False, True, 1.0), _attention_weights(x, False, False, math.sqrt(16)))


def test_explorer_redraws_what_the_controls_say(shown):
    explorer = AttentionExplorer(["A rose is a rose is a rose.", "The cat sat."], torch.nn.Embedding(50257, 8))
    tokens, w = explorer.weights()
    assert len(tokens) == w.shape[0] == w.shape[1] and (w.triu(diagonal=1) == 0).all()
    explorer._ipython_display_()
    explorer.causal.value = False
    explorer.sentence.value = "The cat sat."
    explorer.temperature.value = 4.0
    tokens, w = explorer.weights()
    future = torch.triu(torch.ones_like(w, dtype=torch.bool), diagonal=1)
    assert len(tokens) == 4 and (w[future] > 0).all(), "without the mask, tokens attend to later ones"
    titles = [fig.axes[0].get_title() for fig in explorer._handles[0].shown]
    assert titles[0].endswith("causal") and titles[-1] == "softmax(x·xᵀ / √8 / 4), no mask"


def test_explorer_rejects_bad_arguments():
    embedding = torch.nn.Embedding(50257, 8)
    with pytest.raises(ValueError, match="sentences: give at least one sentence"):
        AttentionExplorer([], embedding)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        AttentionExplorer(["hi"], embedding, temperature=0)


# ---- chapter 9: the FLOP calculator


def test_calculator_asks_the_peaks_table_for_each_gpus_precision():
    calc = FlopCalculator(preset="gpt2-small", context_length=1024, batch_size=8, mixed_precision=True, mfu=0.4)
    devices = calc.numbers()["devices"]
    assert [d["precision"] for d in devices.values()] == ["fp16", "bf16"]  # the T4 has no bf16
    assert "fp16 on the T4, bf16 on the A100" in calc.mixed.description
    calc.mixed.value = False
    assert [d["precision"] for d in calc.numbers()["devices"].values()] == ["fp32", "fp32"]


def test_calculator_numbers_follow_from_flops_peak_and_mfu():
    calc = FlopCalculator("gpt2-medium", context_length=2048, batch_size=4, mfu=0.5)
    state = calc.numbers()
    count = count_flops(calc.config(), 4, 2048)
    assert state["count"] == count and calc.config().context_length == 2048
    t4 = state["devices"]["Tesla T4"]
    assert t4["step_s"] == pytest.approx(count.total / (peak_flops("Tesla T4", "fp16") * 0.5))
    assert t4["tokens_per_s"] == pytest.approx(4 * 2048 / t4["step_s"])
    table = calc.markdown()
    assert "does **not** fit in 16 GB" in table  # GPT-2 medium, batch 4 × 2048, needs far more than a T4 has


def test_calculator_tables_have_header_cells():
    """Rendered, each table opens with a row of header cells (<th>) that name its columns."""
    html = MarkdownIt("commonmark").enable("table").render(FlopCalculator().markdown())
    assert html.count("<table>") == 2
    headers = re.findall(r"<th>(.*?)</th>", html)
    assert headers == [
        "FLOPs per step (forward + backward)", "6N estimate", "attention matrix share",
        "GPU, precision (peak)", "time per step at 40% MFU", "tokens/s", "memory of a step",
    ]
    assert html.count("<tr>") == 2 + 1 + len(FlopCalculator.DEVICES)  # two header rows, one FLOP row, one row per GPU


def test_calculator_redraws_figure_and_table(shown):
    calc = FlopCalculator(batch_size=1)
    calc._ipython_display_()
    figure_handle, table_handle = calc._handles
    calc.batch.value = 64
    assert len(figure_handle.shown) == len(table_handle.shown) == 2
    before, after = (h.data for h in table_handle.shown)
    assert before != after and "does **not** fit in 16 GB" in after


def test_calculator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="preset 'gpt5'"):
        FlopCalculator(preset="gpt5")
    with pytest.raises(ValueError, match="context_length 1000"):
        FlopCalculator(context_length=1000)
    with pytest.raises(ValueError, match="mfu must be > 0"):
        FlopCalculator(mfu=0)


# ---- the static figures, what the book shows: legible on a phone, described in words

@pytest.mark.parametrize("batch_size", [8, 64])
def test_calculator_figure_is_legible_on_a_phone_and_says_what_it_shows(batch_size):
    use_style()
    calc = FlopCalculator(preset="gpt2-small", context_length=1024, batch_size=batch_size, mfu=0.4)
    fig = calc.figure()
    assert_legible(fig, f"FLOP calculator, batch {batch_size}")
    state, text = calc.numbers(), alt_text(fig)
    t4 = state["devices"]["Tesla T4"]
    for number in (f"batch {batch_size}", f"{state['count'].total / 1e12:,.1f} TFLOPs", f"{t4['memory'].total / 1e9:,.1f} GB of its 16 GB"):
        assert number in text, f"alt text {text!r} does not give {number!r}"
    top, bottom = (ax.get_position() for ax in fig.axes)
    assert top.y0 > bottom.y1, "the memory panel stands under the FLOPs, not beside them"


def test_explorer_figure_is_legible_on_a_phone_and_says_what_it_shows():
    use_style()
    sentence = "The cat sat on the mat because the cat was tired."  # chapter 3's, 12 tokens
    explorer = AttentionExplorer([sentence], torch.nn.Embedding(50257, 64), temperature=4.0)
    fig = explorer.figure()
    assert_legible(fig, "attention explorer")
    tokens, weights = explorer.weights()
    text = alt_text(fig)
    assert f"the {len(tokens)} tokens of “{sentence}”" in text and f"{weights[-1].max():.2f}" in text, text
