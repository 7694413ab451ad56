"""The instructor guide (book/instructors.md) agrees with the notebooks: its chapter tables are
made from them at build time (tools/book_extension.py), and here that making is checked."""

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from book_extension import PLACEHOLDER, chapters_markdown  # noqa: E402
from course import chapter_heading, exercises, notebook_paths, read_chapters  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO = CONFIG["repository"]
GUIDE = ROOT / "book" / "instructors.md"
NOTEBOOKS = notebook_paths(ROOT)


@pytest.fixture(scope="module")
def tables():
    return chapters_markdown(read_chapters(ROOT), REPO["url"], REPO["branch"])


def test_the_guide_is_in_the_book_and_made_by_the_extension():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    start = next(part for part in toc["parts"] if part["caption"] == "Start here")
    files = [ch["file"] for ch in start["chapters"]]
    assert "book/instructors" in files and files.index("book/instructors") == files.index("book/setup") + 1
    assert PLACEHOLDER in GUIDE.read_text(), "book/instructors.md must hold the {course-chapters} placeholder"
    assert CONFIG["sphinx"]["local_extensions"]["book_extension"] == "tools/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_is_in_the_tables(path, tables):
    meta = nbformat.read(path, as_version=4).metadata["course"]
    n, heading = meta["chapter"], chapter_heading(meta["chapter"], meta["title"])
    assert f"{{doc}}`{heading} </notebooks/{path.stem}>`" in tables, f"chapter {n} is missing from the overview"
    section = tables.split(f"\n### {heading}\n", 1)[1].split("\n### ", 1)[0]
    for item in [*meta["objectives"], *meta["prerequisites"]]:
        assert f"- {item}\n" in section, f"chapter {n}: {item!r} is missing"
    assert f"On a laptop CPU (2 cores): {meta['runtime']['cpu']}." in section
    assert f"On a Colab T4 GPU: {meta['runtime']['t4']}." in section
    colab = f"https://colab.research.google.com/github/{REPO['url'].removeprefix('https://github.com/')}/blob/{REPO['branch']}/notebooks/{path.name}"
    assert f"]({colab})" in section

    found = exercises(nbformat.read(path, as_version=4))
    assert found
    for ex in found:
        assert f"| {{ref}}`Exercise {ex.number} · {ex.title} <{ex.label}>` |" in section, f"chapter {n}: {ex.name} is missing"
    rows = re.findall(r"^\| \{ref\}`Exercise ", section, re.M)
    assert len(rows) == len(found)
    gpu = nbformat.read(path, as_version=4).metadata.get("accelerator") == "GPU"
    assert f"| {'a GPU' if gpu else 'a CPU'} | {len(found)} |" in tables.split(f"</notebooks/{path.stem}>`", 1)[1].splitlines()[0]
