"""Progress bars as text in the book, and widget scripts only where a widget is shown.

A chapter that trains shows tqdm's progress bar. In Colab and Jupyter that is a live widget: an
HBox of three models (an HTML description, a FloatProgress bar, an HTML count), and MyST-NB puts
it in the page as a widget view that needs RequireJS and the 3.6 MB ipywidgets embedder to draw
a bar that no longer moves. As a page is read, `flatten_progress_bars` replaces each such view by
the line tqdm prints in a terminal, built from the widget state's final values:

    training: 100%|██████████| 160/160 [00:26<00:00,  5.57step/s, loss=4.870]

Other widgets (chapter 3's attention explorer, chapter 9's FLOP calculator) are kept, with the
state of their own models only; a page left with no widget view keeps no widget state, so
`book_extension.add_widget_scripts` loads no widget scripts there. The notebooks are unchanged.
"""

from __future__ import annotations

import html
import json
import re

from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from tqdm.std import Bar

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# How MyST-NB writes a view into the page (myst_nb.core.render.render_widget_view).
VIEW_SCRIPT = re.compile(rf'^<script type="{re.escape(WIDGET_VIEW)}">(.*)</script>$', re.S)
# MyST-NB's key for the state script among a page's JavaScript (render_nb_finalise).
STATE_KEY = "ipywidgets_state"
REFERENCE = "IPY_MODEL_"
# tqdm's bar in a terminal with no width given: ten characters (tqdm.std.tqdm.format_meter).
BAR_WIDTH = 10


def view_model_id(node: nodes.Node) -> str | None:
    """The model a widget view shows, when `node` is MyST-NB's script for one, else None."""
    if not isinstance(node, nodes.raw) or "html" not in node.get("format", "").split():
        return None
    match = VIEW_SCRIPT.match(node.astext().strip())
    # MyST-NB escapes "</script>" inside the JSON as "<\/script>", which JSON reads back as is.
    return json.loads(match.group(1)).get("model_id") if match else None


def _model(state: dict, reference) -> dict | None:
    """The model a value like "IPY_MODEL_<id>" names, with its name and state."""
    if not isinstance(reference, str) or not reference.startswith(REFERENCE):
        return None
    return state.get(reference.removeprefix(REFERENCE))


def _html_text(value) -> str:
    """tqdm.notebook writes its text as HTML with figure spaces for spaces: back to plain text."""
    return html.unescape(value or "").replace("\u2007", " ")


def progress_bar_text(state: dict, model_id: str) -> str | None:
    """The progress bar a tqdm widget shows, as tqdm prints it in a terminal.

    `state` is the notebook's widget state (model id -> model), `model_id` the view's model.
    None when that model is not a tqdm bar; "" for a bar tqdm hid on closing (leave=False).
    """
    box = state.get(model_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    children = [_model(state, ref) for ref in box["state"].get("children", [])]
    names = [child.get("model_name") if child else None for child in children]
    if names not in (
        ["HTMLModel", "FloatProgressModel", "HTMLModel"],
        ["HTMLModel", "IntProgressModel", "HTMLModel"],
    ):
        return None
    layout = _model(state, box["state"].get("layout"))
    if layout and layout["state"].get("visibility") == "hidden":
        return ""
    left, progress, right = (child["state"] for child in children)
    left_text, right_text = _html_text(left.get("value")), _html_text(right.get("value"))
    if not left_text:  # no total: tqdm prints its counts alone, without a bar
        return right_text.strip()
    low, high = progress.get("min") or 0, progress.get("max") or 0
    fraction = min(max((progress.get("value", 0) - low) / (high - low), 0), 1) if high > low else 0
    bar = format(Bar(fraction, default_len=BAR_WIDTH, charset=Bar.UTF), "")
    return f"{left_text}|{bar}|{right_text}"


def models_shown(state: dict, model_ids) -> set[str]:
    """The models the views of `model_ids` need: those, and every model they name, in turn."""
    needed, todo = set(), list(model_ids)
    while todo:
        model_id = todo.pop()
        if model_id in needed or model_id not in state:
            continue
        needed.add(model_id)
        todo += re.findall(rf"{REFERENCE}(\w+)", json.dumps(state[model_id]["state"]))
    return needed


def progress_bar_node(text: str) -> nodes.literal_block:
    """The bar as the text output of a cell (the class MyST-NB gives text/plain outputs)."""
    return nodes.literal_block(text, text, language="none", classes=["output", "text_plain"])


def flatten_progress_bars(app, doctree: nodes.document) -> None:
    """Each tqdm bar on the page becomes text; the widget state keeps only the widgets left."""
    docname = app.env.docname
    scripts = NbMetadataCollector.get_js_files(app.env, docname)
    if STATE_KEY not in scripts:
        return
    uri, attributes = scripts[STATE_KEY]
    saved = json.loads(attributes["body"])
    state = saved["state"]
    kept = []
    for node in list(doctree.findall(nodes.raw)):
        model_id = view_model_id(node)
        if model_id is None:
            continue
        text = progress_bar_text(state, model_id)
        if text is None:
            kept.append(model_id)
        elif text:
            node.replace_self(progress_bar_node(text))
        else:
            node.parent.remove(node)
    if not kept:
        # No widget left: no state, and none of the scripts MyST-NB would load with it.
        for key in [key for key in scripts if key.startswith("ipywidgets_")]:
            del scripts[key]
        return
    needed = models_shown(state, kept)
    saved["state"] = {key: model for key, model in state.items() if key in needed}
    body = json.dumps(saved).replace("</script>", r"<\/script>")  # as MyST-NB writes it
    scripts[STATE_KEY] = (uri, {**attributes, "body": body})
