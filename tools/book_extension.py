"""The book's own Sphinx extension (`_config.yml`: sphinx.local_extensions).

1. The instructor guide's chapter tables. `book/instructors.md` holds a placeholder,

       ```{course-chapters}
       ```

   which is replaced, as the page is read, by an overview table of the chapters (run times,
   exercises) and, for each chapter, a closed dropdown with its objectives, prerequisites,
   run times and exercises, read from the notebooks themselves (`tools/course.py`). The
   page is re-read whenever a notebook, or this file, changes. Without this extension the placeholder is an
   unknown directive, which fails the build (-W).

2. Exercises styled in the book, plain in the notebooks. A chapter's exercises are plain
   Markdown headings with collapsed solution cells (tools/course.py), which read well in
   Colab and Jupyter. As a notebook is read, `style_exercises` rewrites them into
   sphinx-exercise blocks: the heading and statement into an `{exercise}`, the solution cell
   and its `<details>` discussion into a gated `{solution-start}`/`{solution-end}` dropdown.
   sphinx-exercise numbers exercises across the whole book ("Exercise 34"); the course numbers
   them per chapter, so they are unnumbered there and `number_exercise_titles` writes
   "Exercise 4.2 · Title" into each title.

3. Widgets that work offline. MyST-NB loads RequireJS and the ipywidgets embedder from CDNs
   and, through `app.add_js_file`, on every page written after the first page with widgets
   (and on those, before RequireJS, so they fail with "define is not defined"). `_config.yml`
   turns that off (`nb_ipywidgets_js: {}`); here local copies, fetched from the npm registry by
   `make setup`, are added to the pages that show widgets, and to no other. A tqdm progress bar
   is no widget in the book: `book_widgets.flatten_progress_bars` writes it as the text tqdm
   prints in a terminal, so a page whose only widget was a bar loads no widget scripts.

4. The exercises one click away. Beside the theme's launch button for Colab (which opens the
   chapter as it is, solutions included), every chapter's launch dropdown gets "Open the
   exercises in Colab": the chapter's student edition, `student/NN_name.ipynb`, committed to the
   repository (`make student`) so Colab opens it straight from GitHub, at the repository and
   branch `_config.yml` names (`make repository`, `make release`). Its download dropdown gets the
   same notebook, copied into the built site. A chapter with no student notebook fails the build.

5. The chapter as the book ran it. The download dropdown offers three notebooks: the theme's
   source, labelled ".ipynb (no outputs)"; ".ipynb (with outputs)", the source with the outputs of
   the build's run merged in (`book_downloads`), served at executed/NN_name.ipynb; and
   ".ipynb (exercises)", the student edition. A chapter the build did not execute fails it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.fileutil import copy_asset
from sphinx_exercise.nodes import exercise_node

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_downloads import EXECUTED_DIR, EXECUTED_LABEL, SOURCE_LABEL, executed_copy, write_executed  # noqa: E402
from book_widgets import flatten_progress_bars  # noqa: E402
from course import Chapter, discussion_text, exercises, notebook_paths, read_chapters, solution_code  # noqa: E402

PLACEHOLDER = "```{course-chapters}\n```"
# The student edition's folder, in the repository and in the built site (tools/student_edition.py --out).
STUDENT_DIR = "student"
STUDENT_LINK = "Open the exercises in Colab"
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


def short_runtime(text: str) -> str:
    """A run time's headline, for the overview: up to its first note in parentheses or comma
    ("about 30 s with the offline stand-in (...), 1–2 minutes with ..."); the details keep it whole."""
    return cell(re.split(r"\s*[(,]", text, maxsplit=1)[0])


def colab_url(repository_url: str, branch: str, chapter: Chapter) -> str:
    """Where the chapter's launch button opens it: the notebook in the repository, in Colab."""
    repo = repository_url.removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{chapter.docname}.ipynb"


def student_colab_url(repository_url: str, branch: str, notebook: str) -> str:
    """Where "Open the exercises in Colab" opens a chapter: its student edition in the repository."""
    repo = repository_url.removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{STUDENT_DIR}/{notebook}"


def chapters_markdown(chapters: list[Chapter], repository_url: str, branch: str = "main") -> str:
    """The guide's chapters: one overview table, three short columns that fit a 390-px phone
    (with the run times in two columns its longest words and padding needed 395 px of the 358
    there), then each chapter's details (links, objectives, prerequisites, run times, exercises)
    in a dropdown, closed until clicked, so the page can be scanned."""
    lines = [
        "| Chapter | Run time: laptop CPU · Colab T4 | Exercises |",
        "| --- | --- | --- |",
    ]
    for ch in chapters:
        checked = sum(ex.checked for ex in ch.exercises)
        gpu = " (GPU)" if ch.gpu else ""  # Colab opens it on a GPU runtime
        lines.append(
            f"| {{doc}}`{cell(ch.heading)} </{ch.docname}>`{gpu}"
            f" | {short_runtime(ch.runtime['cpu'])} · {short_runtime(ch.runtime['t4'])}"
            f" | {len(ch.exercises)} ({checked} checked) |"
        )
    lines += ["", "**Each chapter in detail.** Open one for its links (the book, Colab, its exercises in Colab),"
              " objectives, prerequisites, full run times, and its exercises with what each asks and so assesses."]
    for ch in chapters:
        lines += ["", *chapter_details(ch, repository_url, branch)]
    return "\n".join(lines) + "\n"


def chapter_details(ch: Chapter, repository_url: str, branch: str) -> list[str]:
    """One chapter's details, as the lines of a MyST dropdown titled with its heading."""
    body = [
        f"{{doc}}`Read it </{ch.docname}>` · [open it in Colab]({colab_url(repository_url, branch, ch)})"
        f" · [its exercises in Colab]({student_colab_url(repository_url, branch, ch.path.name)}) · `{ch.path.name}`",
        "",
        "**Learning objectives.** After the chapter, students can:",
        "",
        *[f"- {item}" for item in ch.objectives],
        "",
        "**Prerequisites.**",
        "",
        *[f"- {item}" for item in ch.prerequisites],
        "",
        f"**Run time.** On a laptop CPU (2 cores): {ch.runtime['cpu']}. On a Colab T4 GPU: {ch.runtime['t4']}."
        f" Colab opens it with a {'GPU' if ch.gpu else 'CPU'} runtime.",
        "",
        "**Exercises**, with what each asks and so assesses:",
        "",
    ]
    for ex in ch.exercises:
        marks = ["a self-check" if ex.checked else "no self-check: you read the answer"]
        if ex.asks_in_words:
            marks.append("asks in words")
        # The title on a line of its own, what it asks in a paragraph below it.
        body += [f"- {{ref}}`{ex.name} · {cell(ex.title)} <{ex.label}>` ({', '.join(marks)})", "", f"  {ex.summary}", ""]
    # A colon fence longer than any run of colons in the text, so that none can close it early.
    colons = ":" * max(3, 1 + max((len(run) for run in re.findall(r":+", "\n".join(body))), default=0))
    return [f"{colons}{{dropdown}} {ch.heading}", *body, colons]


def fill_in_guide(app, docname: str, source: list[str]) -> None:
    if PLACEHOLDER not in source[0]:
        return
    chapters = read_chapters(Path(app.srcdir))
    for ch in chapters:
        app.env.note_dependency(str(ch.path))  # re-read the guide when a chapter changes,
    app.env.note_dependency(__file__)  # or when the way it is written does (this file)
    options = app.config.html_theme_options
    markdown = chapters_markdown(chapters, options.get("repository_url", ""), options.get("repository_branch", "main"))
    source[0] = source[0].replace(PLACEHOLDER, markdown)


def fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`, so it cannot close early."""
    return "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))


def directive_cell(name: str, argument: str = "", options: str = "", body: str = "", cell_id: str = ""):
    """A markdown cell holding one MyST directive."""
    inner = "\n\n".join(part for part in (options, body) if part)
    outer = fence(inner)
    cell = nbformat.v4.new_markdown_cell(f"{outer}{{{name}}} {argument}".rstrip() + f"\n{inner}\n{outer}")
    if cell_id:
        cell.id = cell_id  # stable ids: the same notebook always becomes the same page
    return cell


def styled_exercises(nb):
    """The notebook `nb` with its plain exercises rewritten as sphinx-exercise blocks."""
    found = exercises(nb)
    if not found:
        return nb
    blocks = {}  # cell index -> the cells that replace it
    for ex in found:
        blocks[ex.heading] = [directive_cell("exercise", ex.title, f":label: {ex.label}\n:nonumber:", ex.statement, f"{ex.label}-exercise")]
        if answer := ex.solutions + ex.discussions:
            # The dropdown stands where the solution starts: code given with the statement stays above it.
            blocks[min(answer)] = solution_cells(nb, ex)
    owned = {i for ex in found for i in (ex.heading, *ex.solutions, *ex.discussions)}
    cells = []
    for index, cell in enumerate(nb.cells):
        if index in blocks:
            cells += blocks[index]
        elif index not in owned:
            cells.append(cell)
    nb.cells = cells
    return nb


def solution_cells(nb, ex) -> list:
    """An exercise's solution code and discussion, as one dropdown that opens on a click."""
    discussion = "\n\n".join(discussion_text(nb.cells[i]) for i in ex.discussions)
    if not ex.solutions:  # a solution in words only
        return [directive_cell("solution", ex.label, ":class: dropdown", discussion, f"{ex.label}-solution")] if discussion else []
    code = []
    for i in ex.solutions:
        cell = nbformat.from_dict(nb.cells[i])  # a copy: the notebook read by others is unchanged
        cell.source = solution_code(cell.source)  # the dropdown's title already says "Solution"
        code.append(cell)
    cells = [directive_cell("solution-start", ex.label, ":class: dropdown", cell_id=f"{ex.label}-solution-start"), *code]
    if discussion:
        cells.append(nbformat.v4.new_markdown_cell(discussion))
        cells[-1].id = f"{ex.label}-discussion"
    return cells + [directive_cell("solution-end", cell_id=f"{ex.label}-solution-end")]


def style_exercises(app, docname: str, source: list[str]) -> None:
    if not app.env.doc2path(docname).endswith(".ipynb"):
        return
    nb = nbformat.reads(source[0], as_version=4)
    source[0] = nbformat.writes(styled_exercises(nb))


def number_exercise_titles(app, doctree, docname: str) -> None:
    """sphinx-exercise's "Exercise (Title)" of an unnumbered exercise, as "Exercise 4.2 · Title"."""
    for node in doctree.findall(exercise_node):
        label = node.get("label", "")
        if not label.startswith("ex-"):
            continue
        number = label.removeprefix("ex-").replace("-", ".").upper()
        title = node.children[0]
        words = [child.astext() for child in title.children]
        if len(words) < 3 or words[:2] != ["Exercise", " ("] or words[-1] != ")":
            raise ExtensionError(f"{docname}: exercise {label} has an unexpected title {title.astext()!r} (sphinx-exercise changed?)")
        title.children = [nodes.Text(f"Exercise {number} · "), *title.children[2:-1]]
        for child in title.children:
            child.parent = title


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
    # The widgets draw their icons with Font Awesome as the theme's fontawesome.js sets it up;
    # without it the embedder asks for its fonts beside the page (404s). Here it stays
    # (book/_templates/layout.html leaves it out of every other page).
    context["shows_widgets"] = True


def copy_widget_scripts(app, exception) -> None:
    if exception is None and app.builder.format == "html" and WIDGETS_JS.is_dir():
        copy_asset(str(WIDGETS_JS), str(Path(app.outdir) / "_static" / "widgets"))



def chapter_notebook(app, pagename: str) -> str | None:
    """The notebook's file name (04_multihead.ipynb) when `pagename` is a chapter of the course, else None."""
    chapters = {f"notebooks/{path.name.removesuffix('.ipynb')}": path.name for path in notebook_paths(Path(app.srcdir))}
    return chapters.get(pagename)


def add_student_links(app, pagename, templatename, context, doctree) -> None:
    """On a chapter's page: "Open the exercises in Colab" in the launch dropdown, the student notebook in the download one."""
    notebook = chapter_notebook(app, pagename)
    if notebook is None:
        return
    if not (Path(app.srcdir) / STUDENT_DIR / notebook).is_file():
        raise ExtensionError(f"{pagename}: {STUDENT_DIR}/{notebook} is missing, so its exercises cannot be opened: run `make student` and commit {STUDENT_DIR}/")
    groups = {button.get("label"): button for button in context.get("header_buttons", []) if button.get("type") == "group"}
    if "launch-buttons" not in groups:
        raise ExtensionError(f"{pagename}: the theme made no launch dropdown to add {STUDENT_LINK!r} to (sphinx-book-theme changed?)")
    options = app.config.html_theme_options
    url = student_colab_url(options.get("repository_url", ""), options.get("repository_branch", "main"), notebook)
    groups["launch-buttons"]["buttons"].append(
        {"type": "link", "text": STUDENT_LINK, "tooltip": STUDENT_LINK, "icon": "_static/images/logo_colab.png", "url": url, "label": "colab-exercises"}
    )
    if "download-buttons" in groups:  # (the theme has one unless use_download_button is off)
        downloads = groups["download-buttons"]["buttons"]
        source = next((b for b in downloads if b.get("text") == ".ipynb"), None)
        if source is None:
            raise ExtensionError(f"{pagename}: the theme's download dropdown has no .ipynb to label {SOURCE_LABEL!r} (sphinx-book-theme changed?)")
        source["text"], source["tooltip"] = SOURCE_LABEL, "Download the chapter as written: no outputs"
        executed_copy(app, pagename)  # (fails the build, naming the fix, when the build did not run it)
        downloads[downloads.index(source) + 1 : downloads.index(source) + 1] = [
            {
                "type": "link",
                "text": EXECUTED_LABEL,
                "tooltip": "Download the chapter as the book ran it: outputs included",
                "icon": "fas fa-code",
                "url": context["pathto"](f"{EXECUTED_DIR}/{notebook}", 1),
                "label": "download-executed-button",
            },
            {
                "type": "link",
                "text": ".ipynb (exercises)",
                "tooltip": "Download the exercises: the student edition",
                "icon": "fas fa-code",
                "url": context["pathto"](f"{STUDENT_DIR}/{notebook}", 1),
                "label": "download-exercises-button",
            },
        ]


def copy_student_edition(app, exception) -> None:
    """The student notebooks into the built site, for the download buttons."""
    if exception is None and app.builder.format == "html":
        for path in notebook_paths(Path(app.srcdir)):
            source = Path(app.srcdir) / STUDENT_DIR / path.name
            if source.is_file():  # (add_student_links has failed the build on a missing one)
                target = Path(app.outdir) / STUDENT_DIR / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())


def write_executed_chapters(app, exception) -> None:
    """Every chapter with its outputs into the built site, for the download buttons."""
    if exception is None and app.builder.format == "html":
        for path in notebook_paths(Path(app.srcdir)):
            write_executed(app, f"{path.parent.name}/{path.stem}")


def setup(app):
    app.connect("source-read", fill_in_guide)
    app.connect("source-read", style_exercises)
    app.connect("doctree-read", flatten_progress_bars)
    app.connect("doctree-resolved", number_exercise_titles)
    app.connect("html-page-context", add_widget_scripts)
    app.connect("build-finished", copy_widget_scripts)
    # After the theme's launch and download buttons (sphinx-book-theme adds them at priority 501).
    app.connect("html-page-context", add_student_links, priority=502)
    app.connect("build-finished", copy_student_edition)
    app.connect("build-finished", write_executed_chapters)
    # env_version: a build environment pickled before progress bars became text is read afresh.
    return {"version": "1.0", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}
