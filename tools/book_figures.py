"""The chapters' figures in the book: alt text from the figure itself, and a tap to open it whole.

1. Alt text. A figure's alt text is written where the figure is drawn
   (`gptcourse.alt_text.describe`), and travels inside its PNG as the "Description" text
   chunk (`use_style()` makes notebooks draw figures that way). MyST-NB gives every output
   image its file path as alt text; here each figure of a chapter gets its sentence
   instead. A chapter figure without one is a build warning, which fails the build (-W).

2. A tap to open it whole. On a phone a figure is shown at the column's width, smaller
   than drawn; each chapter figure links to its own PNG, which the phone's browser opens
   full size, to zoom into.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from PIL import Image
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gptcourse.alt_text import PNG_KEY  # noqa: E402

logger = logging.getLogger(__name__)


def png_description(path: Path) -> str | None:
    """The PNG's "Description" text chunk (its alt text), or None."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(PNG_KEY)
    return " ".join(text.split()) if text else None


def is_notebook(app, docname: str) -> bool:
    return app.env.doc2path(docname).endswith(".ipynb")


def describe_figures(app, doctree, docname: str) -> None:
    """Each PNG a chapter's code drew gets its alt text, and a link to itself."""
    if not is_notebook(app, docname) or app.builder.format != "html":
        return
    images_dir = relative_uri(app.builder.get_target_uri(docname), "_images")
    for image in list(doctree.findall(nodes.image)):
        source = image.get("candidates", {}).get("*", image["uri"].lstrip("/"))
        path = Path(app.srcdir) / source
        if path.suffix.lower() != ".png" or not path.is_file():
            continue
        text = png_description(path)
        if not text:
            logger.warning(
                f"{docname}: a figure has no alt text ({path.name}): describe it where it is "
                "drawn, gptcourse.alt_text.describe(fig, 'what it shows') (plot functions do)",
                location=image,
            )
            continue
        image["alt"] = text
        if isinstance(image.parent, nodes.reference) or source not in app.env.images:
            continue
        link = nodes.reference("", "", internal=True, reftitle="Open the figure full size")
        link["refuri"] = f"{images_dir}/{app.env.images[source][1]}"
        image.replace_self(link)
        link.append(image)


def setup(app):
    app.connect("doctree-resolved", describe_figures)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
