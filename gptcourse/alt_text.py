"""Alt text for the course's figures: one sentence saying what a figure shows.

Written where the figure is drawn: plot functions call `describe(fig, "...")` on their
own figures. The sentence travels inside the PNG (its "Description" text chunk) once
`use_style()` has run, and the book puts it into the image's alt attribute
(tools/book_figures.py), for readers who cannot see the figure.
"""

from __future__ import annotations

from functools import partial

from matplotlib.figure import Figure

PNG_KEY = "Description"  # the PNG spec's keyword for a description of the image


def describe(fig: Figure, text: str) -> Figure:
    """Give `fig` its alt text: a sentence saying what it shows. Returns `fig`."""
    if not isinstance(fig, Figure):
        raise TypeError(f"describe() takes a matplotlib Figure, not {type(fig).__name__}: "
                        "pass the figure, e.g. fig = plt.figure(); describe(fig, '...')")
    text = " ".join(str(text).split())
    if len(text.split()) < 4:
        raise ValueError(f"alt text {text!r} is too short to say what the figure shows: "
                         "write a sentence, e.g. 'Loss falls from 10.8 to 3.1 in 200 steps.'")
    fig.alt_text = text
    return fig


def alt_text(fig: Figure) -> str | None:
    """The alt text `describe` gave `fig`, or None."""
    return getattr(fig, "alt_text", None)


def _png(fig: Figure, print_figure, **kwargs):
    """The figure as the inline backend draws it, its alt text in the PNG."""
    text = alt_text(fig)
    return print_figure(fig, "png", metadata={PNG_KEY: text} if text else None, **kwargs)


def embed_alt_text_in_notebook_figures() -> None:
    """In Jupyter, draw each figure's PNG with its alt text inside; elsewhere, nothing."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:  # plain Python: no notebook draws figures
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    # Replaces the inline backend's PNG formatter (same drawing: tight box, base64),
    # which takes no per-figure metadata.
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, partial(_png, print_figure=print_figure,
                                       bbox_inches="tight", base64=True))
