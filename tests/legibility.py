"""How large a figure's text is on a reader's screen, in CSS pixels: the figure tests' measure.

The book shows a figure at its drawn width, or narrower when the column is narrower: the
article column is 358 CSS px wide on a 390-px phone and 736 px on a 1280-px desktop
(tools/book_sweep.py measures both in the built book). A point of text is dpi/72 pixels of
the PNG, so text of `pt` points in a figure drawn `natural` pixels wide and shown `shown`
pixels wide is pt * dpi / 72 * shown / natural CSS px. tests/test_browser.py checks the
other half on the built book: that every figure is shown at the widths assumed here.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

PHONE_COLUMN_PX = 358
DESKTOP_COLUMN_PX = 736
MIN_TEXT_CSS_PX = 8.0  # the smallest text a reader can read on a phone without zooming


def drawn_width(fig: Figure) -> int:
    """The PNG's width in pixels, drawn as the notebooks draw it (tight box, the figure's dpi)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    with Image.open(buffer) as image:
        return image.width


def text_sizes_pt(fig: Figure) -> list[tuple[float, str]]:
    """(size in points, text) of every piece of text the figure draws."""
    fig.canvas.draw()  # places the ticks, so their labels hold their text
    return [(t.get_fontsize(), t.get_text()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_figure() is not None]


def smallest_text_css_px(fig: Figure, column_px: int = PHONE_COLUMN_PX) -> tuple[float, str]:
    """The smallest text's size on screen in a column `column_px` wide, and that text."""
    natural = drawn_width(fig)
    scale = min(1.0, column_px / natural)
    size, text = min(text_sizes_pt(fig))
    return size * fig.dpi / 72 * scale, text


def assert_legible(fig: Figure, name: str = "figure") -> None:
    """Fails unless every text of `fig` is at least MIN_TEXT_CSS_PX on a phone, and the figure
    is shown whole (not scaled down) on a desktop."""
    css_px, text = smallest_text_css_px(fig)
    assert css_px >= MIN_TEXT_CSS_PX, (
        f"{name}: its smallest text, {text!r}, is {css_px:.1f} CSS px on a 390-px phone "
        f"(needs {MIN_TEXT_CSS_PX}): draw it narrower, with larger text, or stack its panels")
    natural = drawn_width(fig)
    assert natural <= DESKTOP_COLUMN_PX, (
        f"{name}: drawn {natural} px wide, wider than the desktop column ({DESKTOP_COLUMN_PX} px)")


def assert_described(fig: Figure, name: str, numbers: list[str]) -> None:
    """Fails unless the figure's alt text (gptcourse.alt_text) is a sentence that gives `numbers`,
    the figure's own data: what it shows, not that it is a figure."""
    from gptcourse.alt_text import alt_text

    text = alt_text(fig)
    assert text and text.endswith(".") and len(text.split()) >= 8, f"{name}: alt text {text!r} is not a sentence"
    missing = [n for n in numbers if n not in text]
    assert not missing, f"{name}: alt text {text!r} does not give {missing}"
