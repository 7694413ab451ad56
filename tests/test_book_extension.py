"""The book build's rewriting of plain notebook exercises into sphinx-exercise blocks, each
chapter's "Open the exercises in Colab" link and downloads (tools/book_extension.py,
tools/book_downloads.py), and tqdm's progress bars as text (tools/book_widgets.py);
tests/test_browser.py checks what a reader then sees."""

import copy
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import ipywidgets
import nbformat
import pytest
from docutils import nodes
from docutils.utils import new_document
from ipywidgets.embed import embed_data
from sphinx.errors import ExtensionError
from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as terminal_tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from book_downloads import with_outputs  # noqa: E402
from book_extension import STUDENT_LINK, add_student_links, copy_student_edition, fence, styled_exercises, write_executed_chapters  # noqa: E402
from book_widgets import STATE_KEY, WIDGET_STATE, WIDGET_VIEW, flatten_progress_bars, progress_bar_text  # noqa: E402
from course import discussion_text, exercises, notebook_paths, solution_code  # noqa: E402

NOTEBOOKS = notebook_paths(ROOT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_exercise_becomes_a_block_with_its_solution_in_a_dropdown(path):
    plain = nbformat.read(path, as_version=4)
    before = copy.deepcopy(plain)
    styled = styled_exercises(nbformat.from_dict(copy.deepcopy(plain)))
    assert plain == before, "the notebook read by others is unchanged"
    found = exercises(plain)
    markdown = [c.source for c in styled.cells if c.cell_type == "markdown"]
    text = "\n".join(markdown)
    assert not re.search(r"^### Exercise ", text, re.M), "no plain heading is left"
    assert "<details>" not in text and "# @title Solution" not in "\n".join(c.source for c in styled.cells)
    for ex in found:
        opening = [m for m in markdown if re.match(rf"`{{3,}}{{exercise}} {re.escape(ex.title)}\n:label: {ex.label}\n:nonumber:\n", m)]
        assert len(opening) == 1, f"{ex.name} is not one exercise block"
        assert ex.statement in opening[0]
        start = next(i for i, c in enumerate(styled.cells) if c.source.startswith(f"```{{solution-start}} {ex.label}\n:class: dropdown"))
        end = next(i for i in range(start, len(styled.cells)) if styled.cells[i].source.startswith("```{solution-end}"))
        inside = styled.cells[start + 1 : end]
        assert [c.source for c in inside if c.cell_type == "code"] == [solution_code(plain.cells[i].source) for i in ex.solutions]
        for i in ex.discussions:
            assert any(discussion_text(plain.cells[i]) == c.source for c in inside), f"{ex.name}'s discussion is not in its dropdown"
        check = plain.cells[ex.checks[0]].source
        assert styled.cells[end + 1].source == check, f"{ex.name}'s self-check follows its solution"
    # Every other cell is kept, in order.
    owned = {i for ex in found for i in (ex.heading, *ex.solutions, *ex.discussions)}
    kept = [c.source for i, c in enumerate(plain.cells) if i not in owned]
    assert [c.source for c in styled.cells if c.source in kept] == kept


def test_a_fence_outlasts_the_backticks_inside():
    assert fence("no code") == "```"
    assert fence("```python\nx\n```") == "````"


def theme_buttons():
    """The header buttons sphinx-book-theme makes for a notebook page: launch and download dropdowns."""
    return [
        {"type": "group", "label": "download-buttons", "buttons": [{"type": "link", "text": ".ipynb"}, {"type": "javascript", "text": ".pdf"}]},
        {"type": "group", "label": "launch-buttons", "buttons": [{"type": "link", "text": "Colab", "url": "https://colab.research.google.com/..."}]},
    ]


@pytest.fixture
def book(tmp_path):
    """A book's source folder with one chapter and its student notebook, and the app a page of it is written by."""
    # The chapter, its student edition, and the copy MyST-NB executed (beside the site).
    for folder in ("notebooks", "student", "_build/jupyter_execute/notebooks"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "04_multihead.ipynb").write_text("{}")
    options = {"repository_url": "https://github.com/someone/course", "repository_branch": "v0.2.0"}
    return SimpleNamespace(srcdir=str(tmp_path), outdir=str(tmp_path / "_build" / "html"), config=SimpleNamespace(html_theme_options=options), builder=SimpleNamespace(format="html"))


def page_context(buttons):
    return {"header_buttons": buttons, "pathto": lambda name, resource: f"../{name}"}


def test_a_chapter_gets_its_exercises_in_colab_and_for_download(book):
    context = page_context(theme_buttons())
    add_student_links(book, "notebooks/04_multihead", "page.html", context, None)
    groups = {g["label"]: g["buttons"] for g in context["header_buttons"]}
    launch = groups["launch-buttons"]
    assert [b["text"] for b in launch] == ["Colab", STUDENT_LINK] and STUDENT_LINK == "Open the exercises in Colab"
    assert launch[1]["url"] == "https://colab.research.google.com/github/someone/course/blob/v0.2.0/student/04_multihead.ipynb"
    downloads = groups["download-buttons"]
    assert [b["text"] for b in downloads] == [".ipynb (no outputs)", ".ipynb (with outputs)", ".ipynb (exercises)", ".pdf"]
    assert [b["url"] for b in downloads[1:3]] == ["../executed/04_multihead.ipynb", "../student/04_multihead.ipynb"]


def test_other_pages_are_left_alone(book):
    context = page_context(theme_buttons())
    add_student_links(book, "book/setup", "page.html", context, None)
    assert context["header_buttons"] == theme_buttons()


def test_a_chapter_without_its_student_notebook_fails_the_build(book):
    (Path(book.srcdir) / "student" / "04_multihead.ipynb").unlink()
    with pytest.raises(ExtensionError, match=r"student/04_multihead.ipynb is missing.*run `make student` and commit student/"):
        add_student_links(book, "notebooks/04_multihead", "page.html", page_context(theme_buttons()), None)


def test_a_chapter_the_build_did_not_execute_fails_the_build(book):
    (Path(book.outdir).parent / "jupyter_execute" / "notebooks" / "04_multihead.ipynb").unlink()
    with pytest.raises(ExtensionError, match=r"04_multihead.ipynb is missing.*rebuild the book from scratch"):
        add_student_links(book, "notebooks/04_multihead", "page.html", page_context(theme_buttons()), None)


def test_a_theme_without_a_launch_dropdown_fails_the_build(book):
    with pytest.raises(ExtensionError, match="no launch dropdown"):
        add_student_links(book, "notebooks/04_multihead", "page.html", page_context(theme_buttons()[:1]), None)


def test_the_student_notebooks_are_copied_into_the_site(book):
    copy_student_edition(book, None)
    assert (Path(book.outdir) / "student" / "04_multihead.ipynb").read_text() == "{}"


# ---- the chapter with its outputs, for download


def executed_as_the_book_runs_it(source):
    """What MyST-NB writes to jupyter_execute/: the styled notebook, each code cell with an output."""
    executed = styled_exercises(nbformat.from_dict(copy.deepcopy(source)))
    for number, cell in enumerate(c for c in executed.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"ran {cell.id}\n")]
        cell.execution_count = number + 1
    executed.metadata["widgets"] = {WIDGET_STATE: {"state": {}, "version_major": 2, "version_minor": 0}}
    return executed


def test_the_download_with_outputs_is_the_source_with_the_outputs_of_the_run():
    source = nbformat.read(ROOT / "notebooks" / "04_multihead.ipynb", as_version=4)
    before = copy.deepcopy(source)
    merged = with_outputs(source, executed_as_the_book_runs_it(source))
    assert source == before, "the source notebook is unchanged"
    assert [(c.id, c.cell_type, c.source) for c in merged.cells] == [(c.id, c.cell_type, c.source) for c in source.cells], "plain exercises, no directives"
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert [c.outputs[0].text for c in code] == [f"ran {c.id}\n" for c in code]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert WIDGET_STATE in merged.metadata["widgets"]
    nbformat.validate(merged)


def test_a_stale_executed_copy_is_refused():
    source = nbformat.read(ROOT / "notebooks" / "04_multihead.ipynb", as_version=4)
    executed = executed_as_the_book_runs_it(source)
    executed.cells = [c for c in executed.cells if c.id != next(c.id for c in source.cells if c.cell_type == "code")]
    with pytest.raises(ValueError, match="the executed copy has no code cell .* it is stale"):
        with_outputs(source, executed)


def test_each_chapter_with_its_outputs_is_written_into_the_site(book):
    source = nbformat.read(ROOT / "notebooks" / "04_multihead.ipynb", as_version=4)
    nbformat.write(source, Path(book.srcdir) / "notebooks" / "04_multihead.ipynb")
    nbformat.write(executed_as_the_book_runs_it(source), Path(book.outdir).parent / "jupyter_execute" / "notebooks" / "04_multihead.ipynb")
    write_executed_chapters(book, None)
    served = nbformat.read(Path(book.outdir) / "executed" / "04_multihead.ipynb", as_version=4)
    assert all(c.outputs for c in served.cells if c.cell_type == "code") and served.cells[0].source == source.cells[0].source


# ---- tqdm's progress bars as text, other widgets kept


def finished_bar(total=160, postfix=None):
    """A tqdm bar as a notebook shows it (tqdm.notebook), run to the end and closed, with the
    clock frozen so that the terminal's line for it is known."""
    bar = notebook_tqdm(total=total, desc="training", unit="step")
    clock = [bar.start_t]
    bar._time = lambda: clock[0]
    for _ in range(total):
        clock[0] += 0.18
        bar.update(1)
    if postfix:
        bar.set_postfix(postfix)
    terminal = terminal_tqdm.format_meter(**bar.format_dict)
    bar.close()
    return bar, terminal


def test_a_finished_tqdm_bar_reads_as_tqdm_prints_it_in_a_terminal():
    bar, terminal = finished_bar(postfix={"loss": 4.87, "tok_s": "1,562"})
    data = embed_data(views=[bar.container])  # the state and view a notebook saves
    (view,) = data["view_specs"]
    text = progress_bar_text(data["manager_state"]["state"], view["model_id"])
    assert text == terminal and text.startswith("training: 100%|██████████| 160/160 [00:28<00:00,")
    assert text.endswith("step/s, loss=4.87, tok_s=1,562]")


def test_a_bar_from_a_made_up_state():
    def model(name, **state):
        return {"model_name": name, "state": state}

    state = {
        "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"], layout="IPY_MODEL_layout"),
        "left": model("HTMLModel", value="epochs:\u2007\u200737%"),
        "bar": model("FloatProgressModel", value=37.0, min=0.0, max=100.0),
        "right": model("HTMLModel", value="\u200737/100\u2007[00:03&lt;00:05,\u2007\u200711.56it/s]"),
        "layout": model("LayoutModel", visibility=None),
        "slider": model("IntSliderModel", value=3),
    }
    assert progress_bar_text(state, "box") == "epochs:  37%|███▋      | 37/100 [00:03<00:05,  11.56it/s]"
    assert progress_bar_text(state, "slider") is None, "not a progress bar: kept as a widget"
    state["layout"]["state"]["visibility"] = "hidden"  # closed with leave=False: tqdm clears it
    assert progress_bar_text(state, "box") == ""
    state["layout"]["state"]["visibility"] = None
    state["left"]["state"]["value"] = ""  # no total: the counts, without a bar
    assert progress_bar_text(state, "box") == "37/100 [00:03<00:05,  11.56it/s]"


def view_node(model_id):
    """A widget view as MyST-NB puts it in a page (myst_nb.core.render.render_widget_view)."""
    spec = json.dumps({"model_id": model_id, "version_major": 2, "version_minor": 0})
    return nodes.raw("", f'<script type="{WIDGET_VIEW}">{spec}</script>', format="html")


def page_with(*widgets):
    """A page showing `widgets`, and the app that reads it, with the state MyST-NB keeps for it."""
    data = embed_data(views=list(widgets))
    document = new_document("page")
    for spec in data["view_specs"]:
        document += nodes.container("", view_node(spec["model_id"]), nb_element="mime_bundle")
    body = json.dumps(data["manager_state"])
    metadata = defaultdict(dict, {"notebooks/07_training": {"js_files": {STATE_KEY: (None, {"type": WIDGET_STATE, "body": body})}}})
    app = SimpleNamespace(env=SimpleNamespace(docname="notebooks/07_training", nb_metadata=metadata))
    return app, document, [spec["model_id"] for spec in data["view_specs"]]


def scripts(app):
    return app.env.nb_metadata["notebooks/07_training"]["js_files"]


def test_a_page_whose_only_widget_is_a_bar_keeps_no_widget_state():
    bar, terminal = finished_bar()
    app, document, _ = page_with(bar.container)
    flatten_progress_bars(app, document)
    assert [block.astext() for block in document.findall(nodes.literal_block)] == [terminal]
    assert WIDGET_VIEW not in document.pformat()
    assert scripts(app) == {}, "no widget state, so no widget scripts"


def test_other_widgets_are_kept_with_their_own_state_only():
    bar, terminal = finished_bar()
    slider = ipywidgets.IntSlider(value=3, description="heads")
    app, document, (bar_id, slider_id) = page_with(bar.container, slider)
    flatten_progress_bars(app, document)
    assert [block.astext() for block in document.findall(nodes.literal_block)] == [terminal]
    shown = [node.astext() for node in document.findall(nodes.raw)]
    assert len(shown) == 1 and slider_id in shown[0]
    state = json.loads(scripts(app)[STATE_KEY][1]["body"])["state"]
    assert set(state) == {slider_id, slider.layout.model_id, slider.style.model_id}


def test_a_bar_hidden_on_closing_leaves_nothing():
    bar, _ = finished_bar()
    app, document, _ = page_with(bar.container)
    # With leave=False tqdm closes the box and hides its layout; the kernel's last message about
    # that layout, which the executed notebook's state keeps, says "hidden".
    uri, attributes = scripts(app)[STATE_KEY]
    saved = json.loads(attributes["body"])
    saved["state"][bar.container.layout.model_id]["state"]["visibility"] = "hidden"
    scripts(app)[STATE_KEY] = (uri, {**attributes, "body": json.dumps(saved)})
    flatten_progress_bars(app, document)
    assert not list(document.findall(nodes.raw)) and not list(document.findall(nodes.literal_block))


def test_a_cached_chapter_is_offered_with_its_outputs(tmp_path):
    """MyST-NB writes its copy of a notebook taken from the cache without outputs: they come from the cache."""
    from book_downloads import with_cached_outputs
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    ran = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", id="a")])
    ran.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    ran.cells[0].execution_count = 1
    cache = get_cache(tmp_path / ".jupyter_cache")
    cache.cache_notebook_bundle(CacheBundleIn(ran, "chapter.ipynb"), check_validity=False)
    written = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", id="a")])
    app = SimpleNamespace(env=SimpleNamespace(mystnb_config=SimpleNamespace(execution_cache_path=str(tmp_path / ".jupyter_cache"))))
    assert with_cached_outputs(app, written).cells[0].outputs[0]["text"] == "1\n"
    assert with_cached_outputs(app, ran) is ran  # a copy MyST-NB ran in this build has its outputs
