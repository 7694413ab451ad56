"""The whole book as one PDF, built offline: `make pdf` writes _build/html/build-a-gpt.pdf.

Jupyter Book's own `--builder pdfhtml` downloads a browser (pyppeteer) and `pdflatex` needs TeX
and drops the theme's code and output styles. Here instead:

1. The book is built as one page, by Sphinx's `singlehtml` builder, into _build/pdf/. It has a
   configuration of its own (`pdf_config`), so it never disturbs `make book`'s build, but runs no
   notebook again: it reads the executed ones from `make book`'s cache, _build/.jupyter_cache.
   Its table of contents is _toc.yml's reading order without the instructors' guide
   (`reader_toc`): a guide to assigning the chapters, not part of the text a reader reads.
2. That page is opened in Debian's Chromium (the browser test's, never one a tool downloads),
   served over loopback, every other request refused. Once MathJax has typeset it, a contents
   list goes at the front and it is printed (book/_static/print.css: no sidebars or buttons,
   code and outputs wrap, each chapter starts a page) with page numbers in the footer and a
   PDF outline of the headings. Solutions stay closed, as on the web page: the contents page
   says where they are.
3. The page each chapter starts on is read back from that PDF (the destinations of the
   contents' links, pypdf) into the contents, and the book is printed again; again until the
   numbers no longer move (they would only if a number's width changed a line break: twice is
   the rule). Links within the book become links within the PDF; a link to a file beside the
   page, which would be dead on paper, fails the build.

This file is also the PDF build's Sphinx extension (`setup`, loaded by `pdf_config` only).
"""

from __future__ import annotations

import argparse
import copy
import html
import io
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import CHROMIUM, launch, offline, served  # noqa: E402,F401  (CHROMIUM, served: tests/test_pdf.py)

ROOT = Path(__file__).resolve().parents[1]
PDF_NAME = "build-a-gpt.pdf"
ONE_PAGE = "whole-book.html"  # the one-page book, in _build/pdf/_build/singlehtml/
# Not in the reader's PDF: the guide for instructors (its tables of chapters, times and
# exercises are for planning a course, and are on the web).
LEFT_OUT = ("book/instructors",)
# A4, with room at the foot for the page number.
PAPER = {"format": "A4", "margin": {"top": "14mm", "bottom": "16mm", "left": "13mm", "right": "13mm"}}
FOOTER = '<div style="font-size: 8px; width: 100%; text-align: center; color: #555;"><span class="pageNumber"></span> / <span class="totalPages"></span></div>'
# Where the contents list's page numbers go until they are known: as wide as the widest one.
UNKNOWN_PAGE = "000"
MAX_PRINTS = 4
# Solutions stay closed on paper as on the web page (print.css leaves closed ones out).
SOLUTIONS_NOTE = (
    "The exercises' solutions are not printed: each opens with a click under its exercise in the online "
    "book, and is in the chapter's notebook."
)


def reader_toc(toc: dict, left_out: tuple[str, ...] = LEFT_OUT) -> dict:
    """_toc.yml without the pages a reader's PDF leaves out (and without parts left empty)."""
    toc = copy.deepcopy(toc)
    parts = []
    for part in toc.get("parts", []):
        part["chapters"] = [ch for ch in part["chapters"] if ch["file"] not in left_out]
        if part["chapters"]:
            parts.append(part)
    toc["parts"] = parts
    return toc


def reading_order(toc: dict) -> list[tuple[str, str]]:
    """(part caption, docname) of every page after the root, in the order the book reads."""
    return [(part.get("caption", ""), ch["file"]) for part in toc.get("parts", []) for ch in part["chapters"]]


def pdf_config(config: dict, root: Path) -> dict:
    """_config.yml for the one-page build, which Jupyter Book reads from _build/pdf/.

    Paths Jupyter Book takes relative to the configuration file become absolute; the notebooks'
    outputs come from `make book`'s cache; and this module is loaded as an extension.
    """
    config = copy.deepcopy(config)
    sphinx = config.setdefault("sphinx", {})
    local = {name: str((root / path).resolve()) for name, path in sphinx.get("local_extensions", {}).items()}
    local["book_pdf"] = str(Path(__file__).resolve().parent)
    sphinx["local_extensions"] = local
    config.setdefault("execute", {})["cache"] = str((root / "_build" / ".jupyter_cache").resolve())
    return config


def build_one_page(root: Path, flags: list[str]) -> Path:
    """The book as one page (Sphinx's singlehtml builder), into _build/pdf/; its folder."""
    out = root / "_build" / "pdf"
    out.mkdir(parents=True, exist_ok=True)
    config, toc = out / "_config.yml", out / "_toc.yml"
    config.write_text(yaml.safe_dump(pdf_config(yaml.safe_load((root / "_config.yml").read_text()), root), sort_keys=False))
    toc.write_text(yaml.safe_dump(reader_toc(yaml.safe_load((root / "_toc.yml").read_text())), sort_keys=False))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(root), "--path-output", str(out), "--config", str(config), "--toc", str(toc), "--builder", "singlehtml", *flags]
    subprocess.run(command, check=True, cwd=root)
    folder = out / "_build" / "singlehtml"
    # The builder writes the page where the root document lives (book/intro.html) but links its
    # styles, scripts and images as from the folder's top (_static/...): it belongs there.
    root_doc = yaml.safe_load(toc.read_text())["root"]
    (folder / ONE_PAGE).write_bytes((folder / f"{root_doc}.html").read_bytes())
    return folder


def contents_html(entries: list[tuple[str, str, str]], pages: dict[str, int] | None = None) -> str:
    """The contents list at the front: (part, anchor, title) entries, each title a link to its
    page, under its part's caption, with the page it starts on where `pages` (anchor -> page) says."""
    pages = pages or {}
    lines = ['<nav class="book-contents" aria-label="Contents">', "<h2>Contents</h2>", f"<p>{html.escape(SOLUTIONS_NOTE)}</p>"]
    part = None
    for caption, anchor, title in entries:
        if caption != part:
            if part is not None:
                lines.append("</ol>")
            lines += [f'<p class="book-contents-part">{html.escape(caption)}</p>', "<ol>"]
            part = caption
        page = pages.get(anchor, UNKNOWN_PAGE)
        href = html.escape("#" + anchor, quote=True)
        lines.append(f'<li><a href="{href}"><span>{html.escape(title)}</span><span class="book-contents-page">{page}</span></a></li>')
    if part is not None:
        lines.append("</ol>")
    lines.append("</nav>")
    return "\n".join(lines)


def start_pages(pdf: bytes, anchors: list[str]) -> dict[str, int]:
    """The page (from 1) on which each anchor's element is, from the PDF's named destinations,
    which Chromium writes for the targets of the page's own links."""
    from pypdf import PdfReader  # (pypdf: the `test` extra, which `make pdf` and the tests install)

    reader = PdfReader(io.BytesIO(pdf))
    # Chromium names each destination as a PDF name, "/" and the element's id.
    named = {name.removeprefix("/"): dest for name, dest in reader.named_destinations.items()}
    return {anchor: reader.get_destination_page_number(named[anchor]) + 1 for anchor in anchors if anchor in named}


# The title of each page of the book, from its first heading (without the "#" link beside it).
TITLES = """(anchors) => anchors.map(anchor => {
  const heading = document.getElementById(anchor).nextElementSibling.querySelector("h1, h2").cloneNode(true);
  heading.querySelectorAll(".headerlink").forEach(e => e.remove());
  return heading.textContent.trim();
})"""
# The contents list, after the book's title (replaced on each print).
PUT_CONTENTS = """(html) => {
  document.querySelector(".book-contents")?.remove();
  document.querySelector("main h1").insertAdjacentHTML("afterend", html);
}"""
# Links within the book point into the one page: the builder writes a few (citations) as links
# to the root document's file, which on paper would be addresses on this loopback server. The
# rest of the links to this server, which have no place on paper, are returned.
SAME_PAGE = """(rootFile) => {
  const elsewhere = [];
  for (const a of document.querySelectorAll("main a[href]")) {
    if (!a.checkVisibility({visibilityProperty: true})) continue;  // not printed (print.css)
    const url = new URL(a.href);
    if (url.origin !== location.origin || url.pathname === location.pathname) continue;
    if (url.pathname === "/" + rootFile && url.hash) a.setAttribute("href", url.hash);
    else elsewhere.push(a.getAttribute("href"));
  }
  return elsewhere;
}"""
# Every formula typeset (MathJax 3, served from the book itself).
MATH_DONE = """() => window.MathJax?.startup?.promise && Array.from(document.querySelectorAll(".math"))
  .every(m => m.querySelector("mjx-container"))"""


def print_book(folder: Path, toc: dict, out: Path) -> tuple[int, int]:
    """The one-page book in `folder` printed to `out` by Chromium, offline: (pages, prints)."""
    from playwright.sync_api import sync_playwright  # (the `test` extra; Chromium from Debian)

    order = reading_order(toc)
    anchors = [f"document-{docname}" for _, docname in order]
    with served(folder) as site, sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(color_scheme="light")
        blocked: list[str] = []
        offline(context, blocked)
        page = context.new_page()
        page.goto(site + ONE_PAGE, wait_until="load")
        page.emulate_media(media="print")  # what print.css shows and hides, as on paper
        page.wait_for_function(MATH_DONE, timeout=180_000, polling=500)
        if elsewhere := page.evaluate(SAME_PAGE, f"{toc['root']}.html"):
            raise SystemExit(f"links out of the one-page book to files beside it, dead on paper: {elsewhere}")
        titles = page.evaluate(TITLES, anchors)
        entries = [(caption, anchor, title) for (caption, _), anchor, title in zip(order, anchors, titles)]
        pages: dict[str, int] = {}
        prints = 0
        while True:
            page.evaluate(PUT_CONTENTS, contents_html(entries, pages))
            pdf = page.pdf(**PAPER, print_background=True, display_header_footer=True, header_template="<div></div>", footer_template=FOOTER, outline=True, tagged=True)
            prints += 1
            found = start_pages(pdf, anchors)
            if missing := [a for a in anchors if a not in found]:
                raise SystemExit(f"the printed book has no destination for {missing}: Chromium changed how it writes links?")
            if found == pages:
                break
            if prints == MAX_PRINTS:
                raise SystemExit(f"the contents' page numbers still moved after {MAX_PRINTS} prints")
            pages = found
        browser.close()
    if blocked:
        raise SystemExit(f"the book asked for what is not in it (refused, offline): {sorted(set(blocked))}")
    out.write_bytes(pdf)
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages), prints


def html_handlers_for_one_page(app) -> None:
    """Render every node on the one page as the HTML builder does.

    Sphinx gives a builder the node handlers registered under its name, and only when there are
    none, those registered for its format (html). sphinx-exercise and MyST-NB register some for
    `singlehtml`, so the ones registered only for html (sphinx-design's dropdowns, say) would be
    missing there, and the build fails on them. Those are added, where the name has none.
    """
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    one_page = handlers.setdefault("singlehtml", {})
    for node, visitors in handlers.get("html", {}).items():
        one_page.setdefault(node, visitors)


def setup(app):
    app.connect("builder-inited", html_handlers_for_one_page)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's sources (default: this repository)")
    parser.add_argument("--out", type=Path, help=f"where the PDF goes (default: _build/html/{PDF_NAME}, served with the book)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = args.out or root / "_build" / "html" / PDF_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    # The book's own flags (the Makefile's BOOK_FLAGS: warnings are errors, every reference resolves).
    flags = shlex.split(os.environ.get("BOOK_FLAGS", "-W -n --keep-going"))
    start = time.perf_counter()
    folder = build_one_page(root, flags)
    built = time.perf_counter()
    pages, prints = print_book(folder, reader_toc(yaml.safe_load((root / "_toc.yml").read_text())), out)
    done = time.perf_counter()
    print(f"{out}: {pages} pages, {out.stat().st_size / 1e6:.1f} MB; one-page build {built - start:.0f} s, {prints} prints {done - built:.0f} s")


if __name__ == "__main__":
    main()
