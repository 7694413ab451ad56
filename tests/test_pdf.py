"""The whole book as one PDF (`make pdf`, tools/book_pdf.py) and the book on paper (print.css).

The PDF has the chapters, the appendices and the references in reading order, each starting a
page, a contents list whose page numbers are those pages, page numbers in the footer, an
outline, and no link to the loopback server it was printed from; the book links to it. Printed
(print media, an A4 page's width), no code block or output of a chapter is cut at the right edge.

Under plain `pytest`, a missing PDF, book, Chromium or Playwright skips the tests that need it,
with the reason; `make browser` (after `make pdf`) sets BOOK_REQUIRED=1, and there each is a
failure. The functions of tools/book_pdf.py are tested on their own first.
"""

import io
import os
import re
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import book_pdf  # noqa: E402
from course import chapter_heading  # noqa: E402

ROOT = Path(os.environ.get("BOOK_ROOT", Path(__file__).resolve().parents[1]))
HTML = ROOT / "_build" / "html"
PDF = HTML / book_pdf.PDF_NAME
ONE_PAGE = ROOT / "_build" / "pdf" / "_build" / "singlehtml"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REQUIRED = os.environ.get("BOOK_REQUIRED") == "1"  # set by `make browser`
# An A4 page's printed width in CSS pixels (96 per inch) between book_pdf's margins.
A4_TEXT_WIDTH = round((210 - 2 * 13) / 25.4 * 96)


def unavailable(reason: str) -> None:
    """Fail when the PDF must be tested (make browser), else skip with the reason."""
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def squeeze(text: str) -> str:
    """Text without its spaces: Chromium's outline and pypdf's text drop or add some."""
    return re.sub(r"\s+", "", text)


def title(docname: str) -> str:
    """The page's heading, from its source, as tests/test_browser.py reads it."""
    path = ROOT / f"{docname}.ipynb"
    if path.exists():
        meta = nbformat.read(path, as_version=4).metadata["course"]
        return chapter_heading(meta["chapter"], meta["title"])
    return next(line for line in (ROOT / f"{docname}.md").read_text().splitlines() if line.startswith("# "))[2:].strip()


# --- tools/book_pdf.py, on its own -----------------------------------------------------------


def test_reader_toc_leaves_out_the_instructors_guide_and_keeps_the_order():
    toc = {
        "root": "book/intro",
        "parts": [
            {"caption": "Start here", "chapters": [{"file": "book/setup"}, {"file": "book/instructors"}]},
            {"caption": "Guide", "chapters": [{"file": "book/instructors"}]},
            {"caption": "Building", "chapters": [{"file": "notebooks/01_tokens"}, {"file": "notebooks/02_embeddings"}]},
        ],
    }
    reader = book_pdf.reader_toc(toc)
    assert book_pdf.reading_order(reader) == [("Start here", "book/setup"), ("Building", "notebooks/01_tokens"), ("Building", "notebooks/02_embeddings")]
    assert reader["root"] == "book/intro"
    assert len(toc["parts"][0]["chapters"]) == 2, "the book's own table of contents is unchanged"


def test_the_pdf_reads_the_book_in_the_order_of_toc_yml():
    order = [docname for _, docname in book_pdf.reading_order(book_pdf.reader_toc(TOC))]
    chapters = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    appendices = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("appendix_*.ipynb"))]
    assert order == ["book/setup", *chapters, *appendices, "book/references"]


def test_pdf_config_makes_paths_absolute_and_reads_make_books_cache(tmp_path):
    config = {"title": "T", "sphinx": {"local_extensions": {"book_extension": "tools/"}, "config": {"x": 1}}}
    out = book_pdf.pdf_config(config, tmp_path)
    assert out["sphinx"]["local_extensions"]["book_extension"] == str((tmp_path / "tools").resolve())
    assert out["sphinx"]["local_extensions"]["book_pdf"] == str(Path(book_pdf.__file__).resolve().parent)
    assert out["execute"]["cache"] == str((tmp_path / "_build" / ".jupyter_cache").resolve())
    assert out["sphinx"]["config"] == {"x": 1} and "execute" not in config, "the book's own configuration is unchanged"


def test_contents_html_links_each_page_under_its_part():
    entries = [("Start here", "document-book/setup", "Set-up"), ("Building", "document-a", "1. A <b>"), ("Building", "document-b", "2. B")]
    html = book_pdf.contents_html(entries, {"document-book/setup": 3, "document-a": 7})
    assert html.count('class="book-contents-part"') == 2
    assert '<a href="#document-a"><span>1. A &lt;b&gt;</span><span class="book-contents-page">7</span></a>' in html
    assert f'<span class="book-contents-page">{book_pdf.UNKNOWN_PAGE}</span>' in html.split('"#document-b"')[1], "a page not known yet"
    assert html.index("Set-up") < html.index("1. A") < html.index("2. B")


def test_start_pages_reads_named_destinations():
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(200, 200)
    writer.add_named_destination("document-a", 0)
    writer.add_named_destination("document-b", 2)
    buffer = io.BytesIO()
    writer.write(buffer)
    assert book_pdf.start_pages(buffer.getvalue(), ["document-a", "document-b", "document-c"]) == {"document-a": 1, "document-b": 3}


def test_the_one_page_build_renders_what_only_html_knows():
    """sphinx-exercise registers node handlers for `singlehtml`; sphinx-design's only for html."""
    from sphinx.registry import SphinxComponentRegistry

    class Dropdown:  # a node type, as sphinx-design's dropdown_title
        pass

    class Exercise:
        pass

    registry = SphinxComponentRegistry()
    registry.add_translation_handlers(Dropdown, html=(print, None))
    registry.add_translation_handlers(Exercise, html=(print, None), singlehtml=(repr, None))
    book_pdf.html_handlers_for_one_page(types.SimpleNamespace(builder=types.SimpleNamespace(name="singlehtml"), registry=registry))
    assert registry.translation_handlers["singlehtml"] == {"Dropdown": (print, None), "Exercise": (repr, None)}


# --- the built PDF ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader():
    if not PDF.is_file():
        unavailable(f"{PDF} is missing: `make pdf` builds it (`make browser` does, then runs these tests)")
    from pypdf import PdfReader

    return PdfReader(PDF)


def outline(reader) -> list[tuple[str, int, float]]:
    """The PDF's outline, flattened: (title, page from 1, height of its top on the page in points)."""
    flat = []

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                flat.append((squeeze(item.title), reader.get_destination_page_number(item) + 1, float(item.top)))

    walk(reader.outline)
    return flat


def headings(reader) -> list[tuple[str, str, int, float]]:
    """Each page of the book in reading order: (docname, title, page, top) of its heading's first outline entry."""
    found = outline(reader)
    out = []
    for _, docname in book_pdf.reading_order(book_pdf.reader_toc(TOC)):
        wanted = squeeze(title(docname))
        matches = [(page, top) for t, page, top in found if t == wanted]
        assert matches, f"{title(docname)!r} is not in the PDF's outline"
        out.append((docname, wanted, *matches[0]))
    return out


def test_pdf_has_every_chapter_appendix_and_the_references_in_reading_order(reader):
    found = headings(reader)
    pages = [page for _, _, page, _ in found]
    assert pages == sorted(pages) and len(set(pages)) == len(pages), f"not in reading order, one page each: {found}"
    assert found[-1][0] == "book/references" and found[-1][2] <= len(reader.pages)
    assert all(docname != "book/instructors" for docname, *_ in found)


def test_each_chapter_starts_a_page_that_the_contents_names(reader):
    starts = book_pdf.start_pages(PDF.read_bytes(), [f"document-{d}" for d, *_ in headings(reader)])
    contents = squeeze(reader.pages[0].extract_text() + reader.pages[1].extract_text())
    assert "Contents" in contents
    for docname, heading, page, top in headings(reader):
        height = float(reader.pages[page - 1].mediabox.height)
        # The heading is at the top of its page (the break is before it), the contents' link goes to that page, and
        # the contents list gives its number.
        assert top > height - 100, f"{heading} is {height - top:.0f} pt down page {page}: not at a page's top"
        assert starts[f"document-{docname}"] == page, f"the contents link to {docname} goes to page {starts[f'document-{docname}']}, not {page}"
        assert heading + str(page) in contents, f"the contents do not give page {page} for {heading}"


def test_pdf_pages_are_numbered(reader):
    total = len(reader.pages)
    for number in (1, total // 2, total):
        assert f"{number} / {total}" in reader.pages[number - 1].extract_text(), f"page {number} has no number"


def test_pdf_links_only_into_itself_or_to_the_web(reader):
    """Nothing points at the loopback server the book was printed from."""
    local = []
    for number, page in enumerate(reader.pages, 1):
        for annotation in page.get("/Annots") or []:
            action = annotation.get_object().get("/A") or {}
            uri = str(action.get("/URI", ""))
            if (uri and not uri.startswith(("https://", "http://", "mailto:"))) or re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", uri):
                local.append((number, uri))
    assert not local, f"links to nowhere on paper: {local[:5]}"


def test_the_book_links_the_pdf():
    intro = HTML / "book" / "intro.html"
    if not intro.is_file():
        unavailable(f"{HTML} has no built book: `make book` builds it")
    links = re.findall(r'href="([^"]+\.pdf)"', intro.read_text())
    assert links, "the book's first page does not link the PDF"
    for link in links:
        target = (intro.parent / link).resolve()
        assert target == PDF.resolve(), f"{link} is not {PDF.name}"
        if not target.is_file():
            unavailable(f"{link} is dangling until `make pdf` builds {PDF}")


# --- the book on paper: print media ----------------------------------------------------------

CUT = """() => Array.from(document.querySelectorAll(".bd-article pre"))
  .filter(p => p.checkVisibility({visibilityProperty: true}) && p.scrollWidth > p.clientWidth + 0.5)
  .map(p => `${p.scrollWidth} > ${p.clientWidth} px: ${p.textContent.trim().split("\\n")[0].slice(0, 60)}`)"""


@pytest.fixture(scope="module")
def print_page():
    if not (HTML / "index.html").exists():
        unavailable(f"{HTML} has no built book: `make book` builds it")
    if not Path(book_pdf.CHROMIUM).exists():
        unavailable(f"{book_pdf.CHROMIUM} is missing: `make browser` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: `make setup` installs it (pip install -e '.[test]')")
    with book_pdf.served(HTML) as site, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=book_pdf.CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": A4_TEXT_WIDTH, "height": 1000})
        context.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url else r.abort())
        page = context.new_page()
        page.site = site
        yield page
        browser.close()


CHAPTERS = [ch["file"] for part in TOC["parts"] for ch in part["chapters"] if ch["file"].startswith("notebooks/")]


# Whether a printed code cell holds a line of `n` characters on one line: a copy of the first code
# cell's <pre> (same place, same styles) holding only that line, as tall as one line of it.
ONE_LINE = """(n) => {
  const pre = document.querySelector("div.cell_input pre");
  const line = pre.cloneNode(false);
  line.textContent = "x";
  pre.after(line);
  const one = line.clientHeight;
  line.textContent = "x".repeat(n);
  const fits = line.clientHeight === one && line.scrollWidth <= line.clientWidth;
  line.remove();
  return fits;
}"""
CODE_LINE = 88  # characters: STYLE.md's longest code line


@pytest.mark.parametrize("docname", CHAPTERS)
def test_printed_code_and_outputs_wrap_instead_of_being_cut(print_page, docname):
    print_page.goto(print_page.site + f"{docname}.html", wait_until="load")
    print_page.emulate_media(media="print")
    cut = print_page.evaluate(CUT)
    assert not cut, f"{len(cut)} code blocks cut at the right edge of an A4 page: {cut[:3]}"
    assert print_page.evaluate(ONE_LINE, CODE_LINE), f"an {CODE_LINE}-character code line does not fit one printed line on A4"
