"""The book's own Sphinx extension (`_config.yml`: sphinx.local_extensions).

1. The instructor guide's chapter tables. `book/instructors.md` holds a placeholder,

       ```{course-chapters}
       ```

   which is replaced, as the page is read, by the objectives, prerequisites, run times and
   exercises of every chapter, read from the notebooks themselves (`tools/course.py`). The
   page is re-read whenever a notebook changes. Without this extension the placeholder is an
   unknown directive, which fails the build (-W).

2. Solutions without grading marks: the `### BEGIN SOLUTION` / `### END SOLUTION` lines that
   the student edition needs (tools/student_edition.py) are left out of the book's code.

3. Widgets that work offline. MyST-NB loads RequireJS and the ipywidgets embedder from CDNs
   and, through `app.add_js_file`, on every page written after the first page with widgets
   (and on those, before RequireJS, so they fail with "define is not defined"). `_config.yml`
   turns that off (`nb_ipywidgets_js: {}`); here local copies, fetched from the npm registry by
   `make setup`, are added to the pages that show widgets, and to no other.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.fileutil import copy_asset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import Chapter, read_chapters  # noqa: E402

PLACEHOLDER = "```{course-chapters}\n```"
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
# Where `make setup` puts RequireJS and @jupyter-widgets/html-manager's dist/ (see the Makefile).
WIDGETS_JS = Path(sys.prefix) / "share" / "build-a-gpt" / "widgets"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Between RequireJS and the embedder, on pages with widgets.
WIDGETS_SETUP = """
// The embedder finds its fonts beside its AMD module: map that module's folder to _static/widgets.
require.config({paths: {"@jupyter-widgets/html-manager/dist": new URL("%s", document.baseURI).href}});
// ipywidgets typesets labels through MathJax 2's MathJax.Hub.Queue; the book loads MathJax 3, which has
// no Hub (and replaces window.MathJax as it loads, before DOMContentLoaded): give it one.
document.addEventListener("DOMContentLoaded", () => {
  if (window.MathJax && !window.MathJax.Hub) window.MathJax.Hub = {Queue: (job) => window.MathJax.typesetPromise?.([job[2]])};
});
"""


def cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def colab_url(repository_url: str, branch: str, chapter: Chapter) -> str:
    """Where the chapter's launch button opens it: the notebook in the repository, in Colab."""
    repo = repository_url.removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{chapter.docname}.ipynb"


def chapters_markdown(chapters: list[Chapter], repository_url: str, branch: str = "main") -> str:
    """The guide's tables: an overview, then each chapter in detail."""
    lines = [
        "| Chapter | Run time on a laptop CPU (2 cores) | Run time on a Colab T4 GPU | Exercises |",
        "| --- | --- | --- | --- |",
    ]
    for ch in chapters:
        lines.append(f"| {{doc}}`{ch.number}. {cell(ch.title)} </{ch.docname}>` | {cell(ch.runtime['cpu'])} | {cell(ch.runtime['t4'])} | {len(ch.exercises)} |")
    for ch in chapters:
        lines += ["", f"### {ch.number}. {ch.title}", ""]
        lines += [f"{{doc}}`Read it </{ch.docname}>` · [open it in Colab]({colab_url(repository_url, branch, ch)}) · `{ch.path.name}`", ""]
        lines += ["**Learning objectives.** After the chapter, students can:", ""]
        lines += [f"- {item}" for item in ch.objectives]
        lines += ["", "**Prerequisites.**", ""]
        lines += [f"- {item}" for item in ch.prerequisites]
        lines += ["", f"**Run time.** On a laptop CPU (2 cores): {ch.runtime['cpu']}. On a Colab T4 GPU: {ch.runtime['t4']}.", ""]
        lines += ["**Exercises.**", "", "| Exercise | What it asks, and so assesses | Checked by |", "| --- | --- | --- |"]
        for ex in ch.exercises:
            graded = "a self-check" if ex.checked else "you (no self-check)"
            lines.append(f"| {ex.number}. {{ref}}`{cell(ex.title)} <{ex.label}>` | {cell(ex.summary)} | {graded} |")
    return "\n".join(lines) + "\n"


def fill_in_guide(app, docname: str, source: list[str]) -> None:
    if PLACEHOLDER not in source[0]:
        return
    chapters = read_chapters(Path(app.srcdir))
    for ch in chapters:
        app.env.note_dependency(str(ch.path))  # re-read the guide when a chapter changes
    options = app.config.html_theme_options
    markdown = chapters_markdown(chapters, options.get("repository_url", ""), options.get("repository_branch", "main"))
    source[0] = source[0].replace(PLACEHOLDER, markdown)


def hide_solution_markers(app, doctree) -> None:
    """Readers need not see nbgrader's `### BEGIN/END SOLUTION` lines in the solutions' code."""
    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if MARKER.search(text):
            text = MARKER.sub("", text).strip("\n")
            block.rawsource = text
            block.children = [nodes.Text(text)]


def add_widget_scripts(app, pagename, templatename, context, doctree) -> None:
    """RequireJS and the widget embedder, from _static/widgets, on pages that show widgets."""
    if WIDGET_VIEW not in context.get("body", ""):
        return
    if not (WIDGETS_JS / "embed-amd.js").exists():
        raise ExtensionError(f"{pagename} shows widgets, but {WIDGETS_JS} has no embed-amd.js: run `make setup`")
    # Per page: Sphinx resets the builder's script list before each page (app.add_js_file would not).
    app.builder.add_js_file("widgets/require.js", priority=600)
    app.builder.add_js_file(None, body=WIDGETS_SETUP % context["pathto"]("_static/widgets", 1), priority=601)
    app.builder.add_js_file("widgets/embed-amd.js", priority=602)


def copy_widget_scripts(app, exception) -> None:
    if exception is None and app.builder.format == "html" and WIDGETS_JS.is_dir():
        copy_asset(str(WIDGETS_JS), str(Path(app.outdir) / "_static" / "widgets"))


def setup(app):
    app.connect("source-read", fill_in_guide)
    app.connect("doctree-read", hide_solution_markers)
    app.connect("html-page-context", add_widget_scripts)
    app.connect("build-finished", copy_widget_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
