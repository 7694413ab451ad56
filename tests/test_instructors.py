"""The instructor guide (book/instructors.md) agrees with the notebooks, and can be scanned: its
chapter overview and details are made from them at build time (tools/book_extension.py), and
here that making is checked, on the Markdown as MyST's own parser reads it: one narrow overview
table, then each chapter's details in a dropdown, closed until clicked, with its exercises as a
list (not a table of long text that scrolls sideways on a phone)."""

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml
from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from book_extension import PLACEHOLDER, chapters_markdown, fill_in_guide, short_runtime  # noqa: E402
from course import chapter_heading, exercises, notebook_paths, read_chapters  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO = CONFIG["repository"]
GUIDE = ROOT / "book" / "instructors.md"
NOTEBOOKS = notebook_paths(ROOT)
# Markdown read as the book reads it (_config.yml: parse.myst_enable_extensions).
MYST = create_md_parser(MdParserConfig(enable_extensions=set(CONFIG["parse"]["myst_enable_extensions"])), RendererHTML)
OVERVIEW_COLUMNS = 3  # at most: a fourth does not fit a 390-px phone's column without scrolling


def top_level(markdown: str) -> list:
    """The blocks of `markdown` as MyST reads them: its top-level tokens (a table is one, from
    table_open to table_close, kept as table_open)."""
    return [t for t in MYST.parse(markdown) if t.level == 0 and not t.type.endswith("_close")]


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of the first table in `markdown`, row by row, header first."""
    rows, row = [], None
    for t in MYST.parse(markdown):
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append(t.content)
        elif t.type == "tr_close":
            rows.append(row)
            row = None
        elif t.type == "table_close":
            break
    return rows


@pytest.fixture(scope="module")
def guide():
    return chapters_markdown(read_chapters(ROOT), REPO["url"], REPO["branch"])


@pytest.fixture(scope="module")
def details(guide):
    """Each chapter's heading -> the body of its dropdown."""
    fences = [t for t in top_level(guide) if t.type == "colon_fence"]
    assert all(t.info.startswith("{dropdown} ") for t in fences)
    return {t.info.removeprefix("{dropdown} "): t.content for t in fences}


def test_the_guide_is_in_the_book_and_made_by_the_extension():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    start = next(part for part in toc["parts"] if part["caption"] == "Start here")
    files = [ch["file"] for ch in start["chapters"]]
    assert "book/instructors" in files and files.index("book/instructors") == files.index("book/setup") + 1
    assert PLACEHOLDER in GUIDE.read_text(), "book/instructors.md must hold the {course-chapters} placeholder"
    assert CONFIG["sphinx"]["local_extensions"]["book_extension"] == "tools/"


def test_one_narrow_overview_then_a_closed_dropdown_per_chapter(guide, details):
    blocks = top_level(guide)
    assert blocks[0].type == "table_open", "the guide opens with the overview table"
    assert [t.type for t in blocks].count("table_open") == 1, "one table only: the details are not tables"
    rows = table_rows(guide)
    assert len(rows[0]) <= OVERVIEW_COLUMNS, f"the overview has {len(rows[0])} columns: {rows[0]}"
    assert len(rows) == 1 + len(NOTEBOOKS)
    # Every chapter's details in a dropdown, in reading order, after the table; none open.
    headings = [ch.heading for ch in read_chapters(ROOT)]
    assert list(details) == headings
    fences = [t for t in blocks if t.type == "colon_fence"]
    assert blocks.index(fences[0]) > 0 and all(":open:" not in t.content for t in fences)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_is_in_the_overview_and_its_details(path, guide, details):
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata["course"]
    n, heading = meta["chapter"], chapter_heading(meta["chapter"], meta["title"])
    found = exercises(nb)
    assert found

    # The overview: the chapter's link (marked when Colab opens it on a GPU), its run times
    # without their notes, and how many exercises it has and how many a self-check grades.
    gpu = nb.metadata.get("accelerator") == "GPU"
    link = f"{{doc}}`{heading} </notebooks/{path.stem}>`" + (" (GPU)" if gpu else "")
    row = next((r for r in table_rows(guide)[1:] if r[0] == link), None)
    assert row, f"chapter {n} is missing from the overview, or its GPU mark is wrong"
    checked = sum(bool(ex.checks) for ex in found)
    runtime = f"{short_runtime(meta['runtime']['cpu'])} · {short_runtime(meta['runtime']['t4'])}"
    assert row[1:] == [runtime, f"{len(found)} ({checked} checked)"]

    # The details: links, objectives, prerequisites, run times with their notes, exercises.
    section = details[heading]
    for item in [*meta["objectives"], *meta["prerequisites"]]:
        assert f"- {item}\n" in section, f"chapter {n}: {item!r} is missing"
    assert f"On a laptop CPU (2 cores): {meta['runtime']['cpu']}." in section
    assert f"On a Colab T4 GPU: {meta['runtime']['t4']}." in section
    assert f"Colab opens it with a {'GPU' if gpu else 'CPU'} runtime." in section
    owner_repo = REPO["url"].removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{owner_repo}/blob/{REPO['branch']}"
    assert f"]({colab}/notebooks/{path.name})" in section
    assert f"]({colab}/student/{path.name})" in section

    # Exercises as a list: each its own item, its title linked, then what it asks.
    items = re.findall(r"^- \{ref\}`(Exercise [^`]+) <(ex-[^>]+)>` \(([^)]*)\)\n\n  (.+)$", section, re.M)
    assert [(title, label) for title, label, _, _ in items] == [(f"{ex.name} · {ex.title}", ex.label) for ex in found]
    for ex, (_, _, marks, summary) in zip(found, items):
        assert summary == ex.summary
        assert marks.startswith("a self-check" if ex.checks else "no self-check")
        assert ("asks in words" in marks) == ex.asks_in_words, f"{ex.name}: {marks!r}"
    assert "table_open" not in {t.type for t in MYST.parse(section)}, f"chapter {n}: its details hold a table"


def test_short_runtime_is_the_headline_before_any_note():
    assert short_runtime("about 40 s (up to 1.5 minutes when busy)") == "about 40 s"
    headline = short_runtime("about 30 s with the stand-in (busy: a minute), 1–2 minutes with weights")
    assert headline == "about 30 s with the stand-in"
    assert short_runtime("about the same, plus one short GPU run (not measured)") == "about the same"
    assert short_runtime("under 20 | 30 s") == "under 20 \\| 30 s"  # fit for a table cell


def test_a_dropdown_is_not_closed_early_by_the_text_it_holds():
    """A chapter's text that holds a line of colons (a fence of its own) stays in its dropdown."""
    chapters = read_chapters(ROOT)[:1]
    chapters[0].objectives[0] += "\n:::\nand a fence"
    markdown = chapters_markdown(chapters, REPO["url"], REPO["branch"])
    fences = [t for t in top_level(markdown) if t.type == "colon_fence"]
    assert len(fences) == 1 and chapters[0].exercises[-1].title in fences[0].content


def test_the_pages_reference_parts_are_dropdowns():
    """Below the overview, what an instructor reads once (what students download, the reports,
    the statuses, how the grader works and what it cannot prevent) is in dropdowns."""
    fences = {t.info for t in top_level(GUIDE.read_text()) if t.type == "colon_fence"}
    for title in ["What students download", "What each status means", "How the grader works", "What remains possible"]:
        assert f"{{dropdown}} {title}" in fences


def test_the_guide_is_read_again_when_a_chapter_or_its_maker_changes():
    """Sphinx re-reads a page only when its source or a noted dependency changes: the guide notes
    every chapter, and this extension, so a change to how it is written shows at the next build."""
    noted = []
    options = {"repository_url": REPO["url"], "repository_branch": REPO["branch"]}
    app = SimpleNamespace(
        srcdir=str(ROOT), env=SimpleNamespace(note_dependency=noted.append), config=SimpleNamespace(html_theme_options=options)
    )
    source = [GUIDE.read_text()]
    fill_in_guide(app, "book/instructors", source)
    assert PLACEHOLDER not in source[0] and chapters_markdown(read_chapters(ROOT), REPO["url"], REPO["branch"]) in source[0]
    assert {Path(path).resolve() for path in noted} == {*NOTEBOOKS, ROOT / "tools" / "book_extension.py"}
