"""The built book (`make book`), read in a real browser with no network: Debian's Chromium,
driven by Playwright, on the pages served from _build/html over loopback.

Every page in _toc.yml loads, with its title, its figures and its math rendered; a chapter's
Colab button opens that chapter's notebook in the repository; solutions stay hidden until
clicked; a chapter's launch menu offers "Open the exercises in Colab", its student edition in
the repository, and its download menu the notebook with no outputs, the notebook as the book
ran it (outputs included) and the student notebook, served by the book; each chapter figure
has a sentence of alt text, opens full size on a tap and fits the column; pages with widgets
carry their state and render them, and only they load the widget scripts (tqdm's bar is
text); and nothing is fetched from anywhere but loopback, with no failed request and no error
in the console. Every page has one search box and an icon, and the theme's icons come from its
web fonts (no fontawesome.js but where widgets need it); it holds an 88-character code line without scrolling on a
1280-px desktop, where no code block or output scrolls sideways, and it never scrolls sideways
on a 390-px phone. `make browser` runs it (make test does, after the book). Chromium comes from
Debian (`make browser` installs it), never from `playwright install`.

Under plain `pytest`, a missing book, Chromium or Playwright skips these tests, with the
reason; `make browser` sets BOOK_REQUIRED=1, and there each is a failure.
"""

import functools
import http.server
import os
import re
import sys
import threading
import urllib.parse
from pathlib import Path

import nbformat
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from course import chapter_heading, exercises, notebook_paths  # noqa: E402

# BOOK_ROOT: test a book built elsewhere (a copy of the sources, built there); the default is this one.
ROOT = Path(os.environ.get("BOOK_ROOT", Path(__file__).resolve().parents[1]))
HTML = ROOT / "_build" / "html"
CHROMIUM = "/usr/bin/chromium"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [ch["file"] for part in TOC["parts"] for ch in part["chapters"]]
LOOPBACK = {"127.0.0.1", "localhost"}
REQUIRED = os.environ.get("BOOK_REQUIRED") == "1"  # set by `make browser`


def unavailable(reason: str) -> None:
    """Fail when the book must be tested (make browser), else skip with the reason."""
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


PHONE = {"width": 390, "height": 844}  # a common phone's viewport, in CSS pixels
CODE_LINE = 88  # characters: STYLE.md's longest code line, which the desktop column must show whole

# Elements of the page that stick out of the viewport, sideways: visible ones (not a closed
# drawer, hidden by visibility or opacity), that no box of their own scrolls or clips.
STICKING_OUT = """() => {
  const width = window.innerWidth, out = [];
  const clippedInside = (e) => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const r = p.getBoundingClientRect();
      if (getComputedStyle(p).overflowX !== "visible" && r.left >= -0.5 && r.right <= width + 0.5) return true;
    }
    return false;
  };
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || (r.right <= width + 0.5 && r.left >= -0.5)) continue;
    if (!e.checkVisibility({visibilityProperty: true, opacityProperty: true}) || clippedInside(e)) continue;
    out.push(`<${e.localName} class="${e.getAttribute("class") || ""}"> ${Math.round(r.left)}..${Math.round(r.right)} px: ${e.textContent.trim().slice(0, 60)}`);
  }
  return out;
}"""

# Whether a code cell's box holds a line of `n` characters without scrolling: a copy of the first
# code cell's <pre> (same place, same styles), holding only that line.
CODE_LINE_FITS = """(n) => {
  const pre = document.querySelector("div.cell_input pre");
  const line = pre.cloneNode(false);
  line.textContent = "x".repeat(n);
  pre.after(line);
  const fits = {scrollWidth: line.scrollWidth, clientWidth: line.clientWidth};
  line.remove();
  return fits;
}"""

# By how many pixels the page, or a column of its layout (the sidebars, the article), scrolls
# sideways: none should.
SCROLLS_SIDEWAYS = """() => Object.fromEntries(
  [["page", document.documentElement], ...["bd-sidebar-primary", "bd-sidebar-secondary", "bd-article-container"]
    .map(c => [c, document.querySelector("." + c)])]
  .filter(([, e]) => e && e.checkVisibility({visibilityProperty: true}))
  .map(([name, e]) => [name, e === document.documentElement ? e.scrollWidth - window.innerWidth : e.scrollWidth - e.clientWidth])
  .filter(([, px]) => px > 0))"""

# The article's figures (visible images): drawn and shown widths, alt text, and the link around each.
FIGURES = """() => Array.from(document.querySelectorAll("main img")).filter(i => i.getBoundingClientRect().width > 0).map(i => ({
  src: i.getAttribute("src"), alt: i.getAttribute("alt") || "", natural: i.naturalWidth,
  shown: i.getBoundingClientRect().width, link: i.closest("a") ? i.closest("a").getAttribute("href") : null}))"""
# The article column's width (tools/book_sweep.py measures it), as tests/legibility.py assumes it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from legibility import DESKTOP_COLUMN_PX, PHONE_COLUMN_PX  # noqa: E402

ADMONITION_PX = 26  # an exercise's or a solution's box: its border and padding, both sides

# Code and outputs that scroll sideways in their own box, with the widest line (to shorten in the code).
CODE_SCROLLING = """() => Array.from(document.querySelectorAll("main pre"))
  .filter(p => p.checkVisibility() && p.scrollWidth > p.clientWidth)
  .map(p => {
    const widest = p.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "");
    const where = p.closest(".cell_output") ? "output" : "code";
    return `${where}, ${p.scrollWidth - p.clientWidth} px too wide: ${widest.slice(0, 100)}`;
  })"""

# The theme's icons a reader can see (the header's buttons): their width and font.
ICONS = """() => Array.from(document.querySelectorAll(".bd-header-article i[class*='fa-']"))
  .filter(i => i.checkVisibility()).map(i => ({cls: i.className, width: i.getBoundingClientRect().width,
    font: getComputedStyle(i, "::before").fontFamily}))"""

# Search boxes a reader can see (the theme's search buttons and fields; its pop-up form stays hidden).
SEARCH_BOXES = """() => Array.from(document.querySelectorAll(".search-button__button, form.bd-search"))
  .filter(e => e.checkVisibility({visibilityProperty: true, opacityProperty: true})).length"""


def expected_title(docname: str) -> str:
    """The page's first heading, from its source: "# N. Title" of a notebook or a Markdown page."""
    path = ROOT / f"{docname}.ipynb"
    if path.exists():
        meta = nbformat.read(path, as_version=4).metadata["course"]
        return chapter_heading(meta["chapter"], meta["title"])
    first = next(line for line in (ROOT / f"{docname}.md").read_text().splitlines() if line.startswith("# "))
    return first[2:].strip()


def colab_url(docname: str) -> str:
    repo = CONFIG["repository"]
    owner_repo = repo["url"].removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{repo['branch']}/{docname}.ipynb"


def student_colab_url(docname: str) -> str:
    """The chapter's student edition, student/NN_name.ipynb, in the repository, opened in Colab."""
    return colab_url(docname).replace("/notebooks/", "/student/")


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        unavailable(f"{HTML} has no built book: `make browser` builds it and runs these tests")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: `make setup` installs it (pip install -e '.[test]')")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    """A fresh page that may fetch only from loopback; it records what it blocked, every failed request and every console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.blocked, page.failed, page.errors = [], [], []

    def local(url: str) -> bool:
        return urllib.parse.urlsplit(url).hostname in LOOPBACK

    def route(r):
        if local(r.request.url):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    # A request that failed: not found (a missing /favicon.ico, say), or never answered. The
    # requests blocked above fail too; they are reported as blocked.
    page.on("response", lambda r: r.status >= 400 and page.failed.append(f"{r.status} {r.url}"))
    page.on("requestfailed", lambda r: local(r.url) and page.failed.append(f"{r.failure} {r.url}"))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e.message)))
    page.site = site
    yield page
    context.close()


@pytest.mark.parametrize("docname", PAGES)
def test_page(page, docname):
    response = page.goto(page.site + f"{docname}.html", wait_until="load")
    assert response.status == 200

    # Title.
    title = expected_title(docname)
    assert page.locator("main h1").first.inner_text().strip().rstrip("#").strip() == title
    assert page.title().startswith(title)

    # Figures: every image loaded and decoded.
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    figures = page.evaluate(FIGURES)
    if (ROOT / f"{docname}.ipynb").exists():
        check_figures(page, figures)

    # Math: every formula typeset by MathJax (served from the book itself).
    n_math = page.locator("main .math").count()
    if n_math:
        page.wait_for_function("Array.from(document.querySelectorAll('main .math')).every(m => m.querySelector('mjx-container'))", timeout=30_000)
        assert page.locator("main mjx-container").count() >= n_math

    # Launch button: a chapter opens in Colab from the repository; beside it, its exercises (the
    # student edition, committed in student/) do too. The download menu offers the student notebook.
    if (ROOT / f"{docname}.ipynb").exists():
        links = page.eval_on_selector_all("a[href^='https://colab.research.google.com']", "links => links.map(a => a.href)")
        assert links == [colab_url(docname), student_colab_url(docname)]
        assert (ROOT / "student" / f"{Path(docname).name}.ipynb").is_file(), f"{student_colab_url(docname)} names no file of student/"
        launch_menu = page.locator(".dropdown-launch-buttons button.dropdown-toggle")
        exercises_link = page.locator(".dropdown-launch-buttons a.btn-colab-exercises")
        launch_menu.hover()  # the rocket: the theme opens its launch menu on hover (or a click)
        exercises_link.wait_for(state="visible", timeout=5_000)
        assert exercises_link.inner_text().strip() == "Open the exercises in Colab"
        page.mouse.move(0, 0)
        exercises_link.wait_for(state="hidden", timeout=5_000)
        download = page.locator(".dropdown-download-buttons a.btn-download-exercises-button").get_attribute("href")
        served = page.request.get(urllib.parse.urljoin(page.url, download))
        assert served.ok, f"the student notebook {download!r} is not served"
        student = nbformat.reads(served.text(), as_version=4)
        assert "Student edition" in student.cells[0].source and not any("solution" in c.metadata.get("tags", []) for c in student.cells)
        # The download menu: the source (no outputs), the chapter as the book ran it, the exercises.
        labels = [t.strip() for t in page.locator(".dropdown-download-buttons a").all_inner_texts()]
        assert labels[:3] == [".ipynb (no outputs)", ".ipynb (with outputs)", ".ipynb (exercises)"], labels
        executed = page.locator(".dropdown-download-buttons a.btn-download-executed-button").get_attribute("href")
        served = page.request.get(urllib.parse.urljoin(page.url, executed))
        assert served.ok, f"the executed notebook {executed!r} is not served"
        ran = nbformat.reads(served.text(), as_version=4)
        source = nbformat.read(ROOT / f"{docname}.ipynb", as_version=4)
        assert [(c.id, c.source) for c in ran.cells] == [(c.id, c.source) for c in source.cells], "the source's cells, plain exercises"
        code = [c for c in ran.cells if c.cell_type == "code"]
        assert sum(bool(c.outputs) for c in code) > len(code) // 2 and all(c.execution_count for c in code), "outputs of the build's run"

    # Solutions: closed until clicked.
    for solution in page.locator(".solution.dropdown").all():
        body = solution.locator(":scope > :not(.admonition-title)").first
        assert not body.is_visible(), "a solution shows before it is clicked"
        solution.locator("button.toggle-button").click()
        body.wait_for(state="visible", timeout=5_000)
        assert "@title" not in solution.inner_text(), "Colab's form title belongs to the notebook, not the book"

    # A solution's code column, too, shows a whole 88-character line.
    if page.locator(".solution div.cell_input pre").count():
        box = page.evaluate(CODE_LINE_FITS.replace("div.cell_input pre", ".solution div.cell_input pre"), CODE_LINE)
        assert box["scrollWidth"] <= box["clientWidth"], f"a {CODE_LINE}-character line scrolls in a solution's code: {box}"

    # Code and outputs, solutions open: none scrolls sideways in its own box on a 1280-px desktop
    # (each line fits by the code that writes it: shorter lines, fewer columns, wrapped text).
    scrolling = page.evaluate(CODE_SCROLLING)
    assert not scrolling, f"{len(scrolling)} code blocks scroll sideways at 1280 px: {scrolling}"

    # Exercises: numbered per chapter, as in the notebook ("Exercise 4.2 · Title").
    path = ROOT / f"{docname}.ipynb"
    if path.exists():
        titles = [t.strip() for t in page.locator(".exercise > .admonition-title").all_inner_texts()]
        wanted = [f"{ex.name} · {ex.title}" for ex in exercises(nbformat.read(path, as_version=4))]
        assert [plain(t) for t in titles] == [plain(t) for t in wanted]

    # Widgets: their state is on the page, they render, and only such pages load the widget scripts.
    views = page.locator("script[type='application/vnd.jupyter.widget-view+json']").count()
    if views:
        assert page.locator("script[type='application/vnd.jupyter.widget-state+json']").count() == 1
        page.locator(".jupyter-widgets").first.wait_for(timeout=15_000)
    else:
        assert page.locator("script[src*='embed-amd'], script[src*='require.js']").count() == 0
        assert page.locator("script[type='application/vnd.jupyter.widget-state+json']").count() == 0
    # tqdm's bar, a widget in Colab, is the line tqdm prints in a terminal here.
    if docname == "notebooks/07_training":
        assert re.search(r"training: 100%\|█{10}\| (\d+)/\1 \[", page.locator("main").inner_text()), "no finished progress bar as text"

    # Nothing scrolls sideways on a desktop; one search box; the book's icon (else the browser
    # asks for /favicon.ico, a 404).
    assert not page.evaluate(SCROLLS_SIDEWAYS), "scrolls sideways (px) on a 1280-px desktop"
    assert page.evaluate(SEARCH_BOXES) == 1, "one search box on a desktop"
    # The theme's icons come from the Font Awesome web fonts of its CSS, not from fontawesome.js
    # (1.5 MB a page; book/_templates/layout.html leaves it out but where widgets need it): each
    # is drawn, in that font.
    if not views:
        assert page.locator("script[src*='fontawesome.js']").count() == 0
        icons = page.evaluate(ICONS)
        assert icons and all(i["width"] > 0 and "Font Awesome" in i["font"] for i in icons), f"icons not drawn by the web font: {icons}"
    icon = page.locator("link[rel~='icon']").first.get_attribute("href")
    assert icon and page.request.get(urllib.parse.urljoin(page.url, icon)).ok, f"the page's icon {icon!r} does not load"

    # A chapter's code column shows a whole 88-character line on a 1280-px desktop.
    if (ROOT / f"{docname}.ipynb").exists():
        box = page.evaluate(CODE_LINE_FITS, CODE_LINE)
        assert box["scrollWidth"] <= box["clientWidth"], f"a {CODE_LINE}-character line scrolls in a code cell: {box}"

    # On a phone: the page never scrolls sideways (code blocks and tables scroll in their own box).
    page.set_viewport_size(PHONE)
    # The theme slides its sidebars out of sight: wait for the slide (a CSS transition) to end.
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')", timeout=5_000)
    sideways = page.evaluate(SCROLLS_SIDEWAYS)
    assert not sideways, f"scrolls sideways (px) at {PHONE['width']} px: {sideways}; {page.evaluate(STICKING_OUT)}"
    assert not page.evaluate(STICKING_OUT), f"out of the viewport at {PHONE['width']} px"
    for figure in page.evaluate(FIGURES):  # the column's width (an exercise's box: a little less), never stretched
        widest = min(figure["natural"], PHONE_COLUMN_PX)
        assert widest - ADMONITION_PX <= figure["shown"] <= widest + 1, f"a figure is shown at an unexpected width on a phone: {figure}"
    assert page.evaluate(SEARCH_BOXES) == 1, "one search box on a phone"

    # Offline and clean: nothing requested outside loopback, no failed request, no console error,
    # and the page has its text.
    page.wait_for_timeout(300)  # late requests and errors (fonts, widgets)
    assert not page.blocked, f"requests outside loopback: {page.blocked}"
    assert not page.failed, f"failed requests: {page.failed}"
    assert not page.errors, f"console errors: {page.errors}"
    assert len(page.locator("main").inner_text()) > 200


def check_figures(page, figures) -> None:
    """A chapter's figures: each says what it shows, opens full size on a tap, and fits the desktop column.

    Each is drawn at most DESKTOP_COLUMN_PX wide, so on a phone it is shown at most 736/358 =
    2.1 times smaller than drawn; tests/legibility.py checks, figure by figure, that its text
    stays legible at that scale (the plot functions' tests and the notebooks' inline figures)."""
    for figure in figures:
        assert len(figure["alt"].split()) >= 4 and not figure["alt"].endswith(".png"), f"a figure's alt text says not what it shows: {figure}"
        assert figure["natural"] <= DESKTOP_COLUMN_PX, f"a figure is drawn wider than the desktop column ({DESKTOP_COLUMN_PX} px): {figure}"
        assert figure["link"] and figure["link"].endswith(".png"), f"a figure does not open full size on a tap: {figure}"
        assert page.request.get(urllib.parse.urljoin(page.url, figure["link"])).ok, f"a figure's full-size link is not served: {figure}"


def plain(text: str) -> str:
    """Text as a reader sees it: no Markdown backticks, straight quotes, single spaces."""
    return " ".join(text.replace("`", "").replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').split())


def test_instructor_guide_lists_every_chapter(page):
    """The guide's tables, as rendered, name every chapter, its objectives and its exercises."""
    page.goto(page.site + "book/instructors.html")
    text = plain(page.locator("main").text_content())  # closed dropdowns too: inner_text skips them
    for path in notebook_paths(ROOT):
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata["course"]
        assert plain(chapter_heading(meta["chapter"], meta["title"])) in text
        titles = [f"{ex.name} · {ex.title}" for ex in exercises(nb)]
        for item in [*meta["objectives"], *titles]:
            if "$" not in item:  # (math renders as MathJax, not as its source)
                assert plain(item) in text, f"{path.name}: {item!r} is not in the rendered guide"


# Tables of the page (in <main>) wider than the box that holds them: they scroll sideways there.
TABLES_SCROLLING = """() => Array.from(document.querySelectorAll("main table"))
  .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
  .map(t => t.rows[0].innerText.replace(/\\s+/g, " ").slice(0, 60))"""


def test_instructor_guide_can_be_scanned(page):
    """The guide opens with one overview of the chapters, which fits a phone; each chapter's
    details wait in a closed dropdown, so the page is a few screens, not forty."""
    page.set_viewport_size(PHONE)
    page.goto(page.site + "book/instructors.html")
    assert page.evaluate(TABLES_SCROLLING) == [], "tables that scroll sideways on a 390-px phone"
    titles = [s.strip() for s in page.locator("main details:not([open]) > summary").all_inner_texts()]
    for path in notebook_paths(ROOT):
        meta = nbformat.read(path, as_version=4).metadata["course"]
        assert chapter_heading(meta["chapter"], meta["title"]) in titles, f"{path.name}: no closed dropdown"
