"""Each chapter for download as the book ran it, outputs included.

The theme's ".ipynb" download is the chapter's source: no outputs. MyST-NB writes the notebook it
executed to _build/jupyter_execute/, but that copy holds the book's sphinx-exercise directives
(`book_extension.style_exercises`), not the plain exercises a reader opens in Colab or Jupyter.
So the download "with outputs" is the source notebook with the executed copy's outputs, execution
counts and widget state merged in, cell by cell (cells keep their ids through the styling),
served at executed/NN_name.ipynb.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from sphinx.errors import ExtensionError

# The folder of the built site that serves the executed chapters.
EXECUTED_DIR = "executed"
# Where MyST-NB writes the notebooks it executed, beside the site (myst_nb.sphinx_ext).
EXECUTE_DIR = "jupyter_execute"
# Written in the download menu beside each kind of notebook.
SOURCE_LABEL = ".ipynb (no outputs)"
EXECUTED_LABEL = ".ipynb (with outputs)"
REBUILD = "rebuild the book from scratch: rm -rf _build/html _build/jupyter_execute, then make book"


def with_outputs(source, executed, name: str = "the notebook"):
    """The notebook `source` with the outputs of `executed`, the same notebook as the book ran it.

    Code cells are matched by id; every code cell of `source` must be in `executed`. The result
    is a new notebook: neither argument changes.
    """
    ran = {cell.get("id"): cell for cell in executed.cells if cell.cell_type == "code"}
    merged = nbformat.from_dict(source)  # a copy
    missing = [cell.get("id") for cell in merged.cells if cell.cell_type == "code" and cell.get("id") not in ran]
    if missing:
        raise ValueError(f"{name}: the executed copy has no code cell {missing[0]!r} ({len(missing)} missing): it is stale")
    for cell in merged.cells:
        if cell.cell_type == "code":
            done = ran[cell.id]
            cell.outputs = nbformat.from_dict(done.get("outputs", []))
            cell.execution_count = done.get("execution_count")
    if "widgets" in executed.metadata:  # widgets show in Jupyter from this state
        merged.metadata["widgets"] = nbformat.from_dict(executed.metadata["widgets"])
    return merged


def executed_copy(app, pagename: str) -> Path:
    """The notebook MyST-NB executed for `pagename`; the build fails when it is missing."""
    path = Path(app.outdir).parent / EXECUTE_DIR / f"{pagename}.ipynb"
    if not path.is_file():
        raise ExtensionError(f"{pagename}: {path} is missing, so the chapter cannot be offered with its outputs: {REBUILD}")
    return path


def with_cached_outputs(app, executed):
    """`executed` with its outputs from the execution cache, when MyST-NB wrote it without them.

    MyST-NB 1.4 writes its executed copy with outputs only when it ran the notebook in this
    build: on a cache hit it merges the cached outputs into a new notebook, renders that, and
    writes the copy it started from (myst_nb/sphinx_.py, `NbParser.parse`). The cache holds
    them, matched by the cells' code as MyST-NB matched them."""
    if any(cell.get("outputs") for cell in executed.cells if cell.cell_type == "code"):
        return executed
    from jupyter_cache import get_cache

    _, merged = get_cache(app.env.mystnb_config.execution_cache_path).merge_match_into_notebook(executed)
    return merged


def write_executed(app, pagename: str) -> Path:
    """The chapter with its outputs, at executed/NN_name.ipynb in the built site."""
    source = nbformat.read(Path(app.srcdir) / f"{pagename}.ipynb", as_version=4)
    try:
        executed = with_cached_outputs(app, nbformat.read(executed_copy(app, pagename), as_version=4))
    except KeyError as error:  # jupyter-cache: no cached run matches this copy
        raise ExtensionError(f"{pagename}: no cached run of it to take its outputs from: {REBUILD}") from error
    try:
        merged = with_outputs(source, executed, pagename)
    except ValueError as error:
        raise ExtensionError(f"{error}: {REBUILD}") from error
    target = Path(app.outdir) / EXECUTED_DIR / f"{Path(pagename).name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(merged, target)
    return target
