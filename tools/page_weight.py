"""What each page of the built book weighs: the requests a browser makes to show it, and their bytes.

    .venv/bin/python tools/page_weight.py                      # _build/html
    .venv/bin/python tools/page_weight.py OLD/_build/html _build/html   # side by side

Each page of _toc.yml is opened in a fresh browser context (an empty cache, as a first visit) at
1280 px in Debian's Chromium (Playwright, as tests/test_browser.py), served from the folder over
loopback, nothing fetched from anywhere else. Counted: every response's body, once the page has
settled: loaded, math typeset, widgets drawn, fonts loaded, and the network idle for half a second
(MathJax and the widget embedder fetch their fonts late, after "load"). Prints a Markdown table:
page | requests | bytes, one pair of columns per folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import launch, offline, served, toc_pages  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 900}
LOOPBACK = {"127.0.0.1", "localhost"}
# What a page still fetches after "load": MathJax typesets (and loads its fonts), the widget
# embedder draws the widgets (and loads theirs).
SETTLED = """async () => {
  if (window.MathJax?.startup?.promise) await window.MathJax.startup.promise;
  const views = "script[type='application/vnd.jupyter.widget-view+json']";
  for (let i = 0; i < 300 && document.querySelector(views) && !document.querySelector(".jupyter-widgets"); i++)
    await new Promise((done) => setTimeout(done, 100));
  await document.fonts.ready;
}"""


def weigh(browser, url: str) -> tuple[int, int]:
    """(requests, bytes of their bodies) for one page opened in a fresh context."""
    context = browser.new_context(viewport=VIEWPORT)
    bodies = []

    offline(context)  # what the book would fetch from elsewhere is not counted, but refused
    page = context.new_page()
    page.on("requestfinished", lambda request: bodies.append(request.sizes()["responseBodySize"]))
    response = page.goto(url, wait_until="networkidle")
    if response is None or not response.ok:
        raise SystemExit(f"{url}: {response.status if response else 'no response'}")
    page.evaluate(SETTLED)
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready")
    context.close()
    return len(bodies), sum(bodies)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="*", type=Path, default=[ROOT / "_build" / "html"], help="built books (default: _build/html)")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml", help="the pages to weigh (default: this book's _toc.yml)")
    args = parser.parse_args(argv)
    for folder in args.html:
        if not (folder / "index.html").is_file():
            raise SystemExit(f"{folder} holds no built book (no index.html): `make book` builds one")
    pages = toc_pages(args.toc)
    from playwright.sync_api import sync_playwright  # (the test extra: `make setup`)

    table = {page: [] for page in pages}
    with sync_playwright() as p:
        browser = launch(p)
        for folder in args.html:
            with served(folder) as site:
                for page in pages:
                    table[page].append(weigh(browser, f"{site}{page}.html"))
        browser.close()
    header = "| page |" + "".join(f" requests | bytes ({folder}) |" for folder in args.html)
    print(header)
    print("| --- |" + " ---: | ---: |" * len(args.html))
    for page, cells in table.items():
        print(f"| {page} |" + "".join(f" {n} | {size:,} |" for n, size in cells))
    totals = [(sum(row[i][0] for row in table.values()), sum(row[i][1] for row in table.values())) for i in range(len(args.html))]
    print("| all pages |" + "".join(f" {n} | {size:,} |" for n, size in totals))


if __name__ == "__main__":
    main()
