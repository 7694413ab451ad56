"""The built book in Debian's Chromium, offline: what the tools that read it as a reader share.

`served(folder)` serves a built book over loopback; `offline(context)` refuses every request
that would leave this machine (and notes it); `toc_pages` lists the pages in reading order.
tools/book_pdf.py prints the book so, tools/page_weight.py weighs its pages, tools/book_sweep.py
sweeps them; tests/test_browser.py checks them the same way.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import urllib.parse
from pathlib import Path

import yaml

CHROMIUM = "/usr/bin/chromium"  # Debian's (`make browser` installs it), never one a tool downloads
LOOPBACK = {"127.0.0.1", "localhost"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def toc_pages(toc: Path) -> list[str]:
    """The book's pages in reading order, as docnames (the root, then every chapter)."""
    data = yaml.safe_load(toc.read_text())
    return [data["root"]] + [ch["file"] for part in data["parts"] for ch in part["chapters"]]


@contextlib.contextmanager
def served(folder: Path):
    """`folder` over loopback, for as long as the block runs: its address."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def offline(context, blocked: list[str] | None = None) -> None:
    """Let the browser `context` fetch from loopback only; what it refuses goes into `blocked`."""

    def route(r):
        if urllib.parse.urlsplit(r.request.url).hostname in LOOPBACK:
            r.continue_()
        else:
            if blocked is not None:
                blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)


def launch(playwright):
    """Debian's Chromium, headless, with no background traffic of its own."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
