"""A figure's alt text, from where it is drawn to the book's <img alt> (gptcourse.alt_text,
tools/book_figures.py): a sentence is kept with the figure, written into its PNG by the
notebook's inline backend, and read back by the book build, which fails without one."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from docutils import nodes
from docutils.utils import new_document
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from gptcourse.alt_text import PNG_KEY, alt_text, describe, embed_alt_text_in_notebook_figures

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import book_figures  # noqa: E402

SENTENCE = "Loss falls from 10.8 to 3.1 over 200 steps."


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def a_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [10.8, 5.0, 3.1])
    return fig


def test_describe_keeps_the_sentence_with_the_figure():
    fig = a_figure()
    assert alt_text(fig) is None
    assert describe(fig, f"  {SENTENCE}\n") is fig
    assert alt_text(fig) == SENTENCE


@pytest.mark.parametrize("text", ["", "loss.png", "a plot"])
def test_describe_refuses_what_is_not_a_sentence(text):
    with pytest.raises(ValueError, match="write a sentence"):
        describe(a_figure(), text)


def test_describe_refuses_what_is_not_a_figure():
    with pytest.raises(TypeError, match="Figure"):
        describe(plt.subplots()[1], SENTENCE)  # an Axes: the plausible slip


def test_the_notebook_png_carries_the_alt_text():
    """Through IPython's own display machinery, as `plt.show()` in a notebook uses it."""
    import IPython

    shell = InteractiveShell.instance()

    original = IPython.get_ipython
    IPython.get_ipython = lambda: shell
    try:
        embed_alt_text_in_notebook_figures()
        fig = describe(a_figure(), SENTENCE)
        data, _ = shell.display_formatter.format(fig)
    finally:
        IPython.get_ipython = original
        InteractiveShell.clear_instance()
    png = base64.b64decode(data["image/png"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.text[PNG_KEY] == SENTENCE
        assert image.width > 100  # drawn, not an empty image


def a_png(tmp_path: Path, description: str | None) -> Path:
    path = tmp_path / "figure.png"
    a_figure().savefig(path, metadata={PNG_KEY: description} if description else None)
    return path


class FakeEnv:
    def __init__(self, source: str):
        self.images = {source: ({"notebooks/07_training"}, "figure.png")}

    def doc2path(self, docname):
        return f"{docname}.ipynb"


def build_page(tmp_path, description):
    """A chapter's doctree holding one output image, and the app that reads it."""
    png = a_png(tmp_path, description)
    source = png.name
    doctree = new_document("test")
    doctree += nodes.paragraph()
    image = nodes.image(uri=f"/{source}", candidates={"*": source}, alt=f"/{source}")
    doctree += image
    builder = SimpleNamespace(format="html", get_target_uri=lambda docname: f"{docname}.html")
    app = SimpleNamespace(env=FakeEnv(source), builder=builder, srcdir=str(tmp_path))
    return app, doctree


def test_the_book_reads_the_alt_text_and_links_the_figure(tmp_path):
    app, doctree = build_page(tmp_path, SENTENCE)
    book_figures.describe_figures(app, doctree, "notebooks/07_training")
    image = next(doctree.findall(nodes.image))
    assert image["alt"] == SENTENCE
    assert isinstance(image.parent, nodes.reference)
    assert image.parent["refuri"] == "../_images/figure.png"


def test_the_book_build_warns_on_a_figure_without_alt_text(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(book_figures.logger, "warning", lambda message, **kw: warnings.append(message))
    app, doctree = build_page(tmp_path, None)
    book_figures.describe_figures(app, doctree, "notebooks/07_training")
    assert len(warnings) == 1 and "describe(fig" in warnings[0]
    assert next(doctree.findall(nodes.image))["alt"] == "/figure.png"  # MyST-NB's, left for the warning to name
