"""A reader's sweep of the built book: what stands between a reader and the text, page by page.

    .venv/bin/python tools/book_sweep.py [_build/html] [--json out.json]

Every page of _toc.yml, in Debian's Chromium (Playwright), offline, served over loopback:

- figures: how many; how many are drawn wider than twice their shown width on a 390-px
  phone (natural ÷ shown, the issue's measure), and how many have a file name for alt text;
- code: how many code blocks (input or output) scroll sideways on a 1280-px desktop;
- tables that scroll sideways at 1280 px;
- the page's height at 1280 px and at 390 px;
- what the page loads: requests and bytes (tools/page_weight.py's measure: a first visit).

The same measures back tests/test_browser.py's checks; this prints them as a table, for a
before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import CHROMIUM, launch, offline, served, toc_pages  # noqa: E402
from page_weight import weigh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Each figure of the article: its drawn (natural) and shown widths, and its alt text.
FIGURES = """() => Array.from(document.querySelectorAll("main img")).map(i => ({
  src: i.getAttribute("src"), alt: i.getAttribute("alt") || "",
  natural: i.naturalWidth, shown: i.getBoundingClientRect().width}))"""

# Code blocks and printed outputs that scroll sideways in their own box.
SCROLLING_PRE = """() => Array.from(document.querySelectorAll("main pre"))
  .filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => p.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 100))"""

SCROLLING_TABLES = """() => Array.from(document.querySelectorAll("main table"))
  .filter(t => { const box = t.closest(".pst-scrollable-table-container, .cell_output, .table-wrapper") || t;
                 return box.scrollWidth > box.clientWidth + 1 || t.scrollWidth > t.clientWidth + 1; }).length"""


def looks_like_a_path(alt: str) -> bool:
    return not alt.strip() or alt.strip().endswith((".png", ".svg", ".jpg", ".jpeg", ".gif")) or "/" in alt and " " not in alt


def sweep_page(browser, site: str, docname: str) -> dict:
    requests, size = weigh(browser, site + f"{docname}.html")  # what it loads, on a first visit
    context = browser.new_context(viewport=DESKTOP)
    offline(context)
    page = context.new_page()
    page.goto(site + f"{docname}.html", wait_until="load")
    page.wait_for_timeout(500)
    desktop_height = page.evaluate("document.documentElement.scrollHeight")
    scrolling = page.evaluate(SCROLLING_PRE)
    tables = page.evaluate(SCROLLING_TABLES)
    page.set_viewport_size(PHONE)
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')", timeout=5_000)
    figures = [f for f in page.evaluate(FIGURES) if f["natural"] > 0 and f["shown"] > 0]
    phone_tables = page.evaluate(SCROLLING_TABLES)
    row = {
        "page": docname,
        "figures": len(figures),
        "wide_figures": sum(f["natural"] / f["shown"] > 2 for f in figures),
        "worst_ratio": round(max((f["natural"] / f["shown"] for f in figures), default=0), 2),
        "path_alt": sum(looks_like_a_path(f["alt"]) for f in figures),
        "scrolling_code_1280": len(scrolling),
        "scrolling_tables_1280": tables,
        "scrolling_tables_390": phone_tables,
        "height_1280": desktop_height,
        "height_390": page.evaluate("document.documentElement.scrollHeight"),
        "requests": requests,
        "bytes": size,
        "examples": scrolling[:3],
    }
    context.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"), help="the built book (default: _build/html)")
    parser.add_argument("--root", default=str(ROOT), help="the sources, for _toc.yml (default: this repository)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    html = Path(args.html)
    if not (html / "index.html").is_file():
        parser.error(f"{html} holds no built book (no index.html): run `make book` first")
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    rows = []
    with served(html) as site, sync_playwright() as p:
        browser = launch(p)
        for docname in toc_pages(Path(args.root) / "_toc.yml"):
            rows.append(sweep_page(browser, site, docname))
        browser.close()
    columns = ["page", "figures", "wide_figures", "worst_ratio", "path_alt", "scrolling_code_1280",
               "scrolling_tables_1280", "scrolling_tables_390", "height_1280", "height_390", "requests", "bytes"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns) + " |")
    totals = {c: sum(row[c] for row in rows) for c in columns[1:] if c != "worst_ratio"}
    print("| total | " + " | ".join(f"{totals[c]:,}" if c in totals else "" for c in columns[1:]) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
