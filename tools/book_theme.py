"""The book's mend of its theme's scripts (`_config.yml`: sphinx.local_extensions).

Sphinx 7.4 writes an inline script (`app.add_js_file(None, body=...)`) twice when an
extension adds it after the builder is set up: `app.add_js_file` hands it to the builder
with the name None, and the builder, before writing, adds everything registered again
with the name "" (`StandaloneHTMLBuilder.prepare_writing`), which its duplicate check takes
for another script. sphinx-thebe, which Jupyter Book always loads, adds its settings so
(`const THEBE_JS_URL = ...`, in env-before-read-docs), and the second `const` throws
"Identifier 'THEBE_JS_URL' has already been declared" on every page; sphinx-togglebutton's
selector (builder-inited) is written twice too, silently (`var`). Here each page keeps one
copy of each script.
"""

from __future__ import annotations


def _key(script) -> tuple:
    """What makes two scripts the same: their file ("" and None alike), priority and attributes."""
    return (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))


def one_copy_of_each_script(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):  # (a theme may hand over something else: leave it alone)
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        if _key(script) not in seen:
            seen.add(_key(script))
            unique.append(script)
    # A new list: the builder's own one is restored before the next page anyway.
    context["script_files"] = unique


def setup(app):
    # Late (priority 900 > the default 500): after every extension has added its page's scripts.
    app.connect("html-page-context", one_copy_of_each_script, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
