"""Point the course at another GitHub repository: a fork's own address, everywhere it is written.

    python tools/set_repository.py https://github.com/you/build-a-gpt [--branch main]
    (or: make repository URL=https://github.com/you/build-a-gpt)

The current address is _config.yml's `repository.url` (the book's launch buttons and repository
button derive from it). Every file of the repository that holds it is rewritten: _config.yml,
each notebook's install cell (`gptcourse @ git+URL@BRANCH`; through nbformat, so cell ids and
metadata are kept), the student edition's notebooks in student/ (committed, so that Colab opens
them from the repository: their install cells follow too), README.md, the `git clone URL` /
`cd NAME` lines of book/setup.md, and any other text file that names it. With --branch, the
branch is changed too (`make release` sets it to the release's tag). Running it again with the
same address changes nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "https://github.com/you/build-a-gpt"
TEXT_SUFFIXES = {".md", ".yml", ".yaml", ".toml", ".txt", ".py", ".cfg", ".ini", ".html", ".rst", ".bib"}
# Build outputs and environments. Not student/: it is committed, and points at the repository too.
SKIP_DIRS = {".git", ".venv", ".venv-tools", "_build", "node_modules", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".ruff_cache"}
URL = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]+)")
BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a repository address, or None."""
    if url.endswith("/"):
        return "it ends with a slash: leave the slash out"
    if url.endswith(".git"):
        return "it ends with .git: give the repository's page address, without .git"
    if url.startswith("http://"):
        return "it starts with http://: use https://"
    match = URL.fullmatch(url)
    if not match:
        return "it is not https://github.com/OWNER/NAME"
    if match["name"] in (".", ".."):
        return "NAME is not a repository's name"
    return None


def rewrite(text: str, old: tuple[str, str], new: tuple[str, str]) -> tuple[str, int]:
    """`text` with the repository (url, branch) `old` replaced by `new`, and how many places changed.

    One pass, so an address that contains the old one is never rewritten twice. With the address
    go the branch written beside it (git+URL@BRANCH, URL/blob/BRANCH, URL/tree/BRANCH) and a
    `cd NAME` on the next line (after `git clone URL`, the folder is named after the repository).
    """
    (old_url, old_branch), (new_url, new_branch) = old, new
    old_name, new_name = old_url.rsplit("/", 1)[1], new_url.rsplit("/", 1)[1]
    end = r"(?![\w-]|\.[\w-])"  # the name goes no further (a full stop may end the sentence)
    pattern = (
        rf"{re.escape(old_url)}(?P<git>\.git)?{end}"
        rf"(?:(?P<sep>@|/blob/|/tree/){re.escape(old_branch)}{end})?"
        rf"(?:(?P<cd>[ \t]*\n[ \t]*cd ){re.escape(old_name)}{end})?"
    )

    def replace(m: re.Match) -> str:
        return new_url + (m["git"] or "") + (m["sep"] and m["sep"] + new_branch or "") + (m["cd"] and m["cd"] + new_name or "")

    return re.subn(pattern, replace, text)


def set_branch(config: str, old: str, new: str) -> tuple[str, int]:
    """_config.yml's text with `repository.branch` set to `new`."""
    return re.subn(rf"(?m)^(\s+branch:[ \t]*){re.escape(old)}[ \t]*$", lambda m: m[1] + new, config, count=1)


def files(root: Path):
    """The text files and notebooks under `root`, outside build outputs and environments."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(names):
            path = Path(folder, name)
            if path.suffix == ".ipynb" or path.suffix in TEXT_SUFFIXES or name == "Makefile":
                yield path


def current_repository(root: Path) -> tuple[str, str]:
    """The (url, branch) that `root`'s _config.yml names, or a ValueError saying why there is none."""
    config_path = root / "_config.yml"
    if not root.is_dir():
        raise ValueError(f"--root {root} is not a folder: give the course's folder, the one holding _config.yml")
    if not config_path.is_file():
        raise ValueError(f"--root {root} has no _config.yml: give the course's folder, the one holding it")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        why = " ".join(str(e).split())
        raise ValueError(f"cannot read {config_path}: {why}; fix or restore it (git checkout -- _config.yml)") from None
    repo = config.get("repository") if isinstance(config, dict) else None
    if not isinstance(repo, dict) or not isinstance(repo.get("url"), str) or repo.get("branch") is None:
        raise ValueError(
            f"{config_path} has no repository.url and repository.branch: it is not the course's _config.yml, "
            "or they were removed; restore them (git checkout -- _config.yml)"
        )
    return repo["url"], str(repo["branch"])


def set_repository(url: str, branch: str | None = None, root: Path = ROOT) -> list[str]:
    """Rewrite every place under `root` from its current repository to `url` (and `branch`); say what changed.

    A `root` that is not the course's folder (no _config.yml naming its repository) is a ValueError.
    """
    root = Path(root)
    config_path = root / "_config.yml"
    old_url, old_branch = current_repository(root)
    old, new = (old_url, old_branch), (url, branch or old_branch)
    if old == new:
        return []
    changes = []
    # _config.yml last: it says which address is current, so that if a write fails on the way
    # (a read-only file), running the tool again finds the old address and finishes the job.
    for path in sorted(files(root), key=lambda p: p == config_path):
        name = path.relative_to(root).as_posix()
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            count = 0
            for cell in nb.cells:
                cell.source, n = rewrite(cell.source, old, new)
                count += n
            if count:
                nbformat.write(nb, path)
        else:
            text = path.read_text(encoding="utf-8")
            updated, count = rewrite(text, old, new)
            if path == config_path and new[1] != old[1]:
                updated, n = set_branch(updated, old[1], new[1])
                count += n
            if count:
                path.write_text(updated, encoding="utf-8")
        if count:
            changes.append(f"{name}: {count} place{'s' if count > 1 else ''}")
    return changes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help=f"the repository's address, e.g. {EXAMPLE}")
    parser.add_argument("--branch", help="the branch that Colab and the install cells use (default: keep the current one)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course's folder (default: this repository)")
    args = parser.parse_args(argv)
    if problem := url_problem(args.url):
        parser.error(f"{args.url!r} is not a repository address: {problem}. For example: {EXAMPLE}")
    if args.branch is not None and (not BRANCH.fullmatch(args.branch) or ".." in args.branch or args.branch.endswith(("/", ".lock"))):
        parser.error(f"{args.branch!r} is not a branch name (for example: main)")
    try:  # before any file is touched: a --root that is not the course's is refused whole
        current_repository(args.root)
    except ValueError as e:
        parser.error(str(e))
    try:
        changes = set_repository(args.url, args.branch, args.root)
    except OSError as e:
        parser.error(f"cannot rewrite {e.filename}: {e.strerror}; make it writable and run this again (it finishes the job)")
    if not changes:
        print(f"Nothing to change: the course already points at {args.url}.")
    else:
        print(f"The course now points at {args.url}. Changed:")
    for line in changes:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
