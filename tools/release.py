"""Release the course: one commit, tagged, that every install cell and Colab link names.

    python tools/release.py 0.2.0      (or: make release VERSION=0.2.0)

A notebook handed out in week 1 should install, in week 10, the package it was written for,
not whatever `main` holds by then. So a release, on a clean working tree:

1. checks the version (PEP 440, read by `packaging`: 0.2.0, 1.0rc1, ...; no local "+..." part),
   that it is not older than pyproject.toml's, and that its tag, vVERSION, does not exist;
2. sets pyproject.toml's version;
3. points the course at the tag, as `make repository` would with the tag as the branch
   (tools/set_repository.py): _config.yml's branch (the book's Colab buttons, and its
   "Open the exercises in Colab" links), every notebook's install cell
   (`gptcourse @ git+URL@vVERSION`), README.md and anything else that names the branch;
4. writes the student edition again into student/ (tools/student_edition.py), so that its
   install cells name the tag too and it matches the chapters;
5. checks that every install cell, in notebooks/ and student/, names the tag; commits
   "Release vVERSION" and tags that commit vVERSION (an annotated tag).

Nothing is pushed: it says what to push. If a step fails, the working tree is put back as it
was (it was clean) and nothing is committed. A fork releases the same way, after
`make repository URL=...` has set its address.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent))
from set_repository import set_repository  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDENT_DIR = "student"
INSTALL_TAG = "colab-install"  # the install cell's tag (CONTRIBUTING.md)
# pyproject.toml's [project] table, up to the next table, and the version in it.
PROJECT_TABLE = re.compile(r"(?ms)^\[project\][ \t]*\n.*?(?=^\[|\Z)")
VERSION_LINE = re.compile(r'(?m)^(version[ \t]*=[ \t]*")([^"\n]*)(")')


class ReleaseError(Exception):
    """A release refused or failed: the message says why, and what to do."""


def parse_version(text: str) -> Version:
    """`text` as a release version, or ReleaseError saying why it is not one."""
    try:
        version = Version(text)
    except InvalidVersion:
        raise ReleaseError(f"{text!r} is not a version: give one such as 0.2.0 (PEP 440; for example 1.0, 0.3.1, 1.0rc1)") from None
    if version.local:
        raise ReleaseError(f"{text!r} has a local part (+{version.local}), which a published release must not have: leave it out")
    return version


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReleaseError(f"`git {' '.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def project_version(pyproject: str) -> tuple[str, re.Match]:
    """The [project] table's version in pyproject.toml's text, and where it is."""
    table = PROJECT_TABLE.search(pyproject)
    found = list(VERSION_LINE.finditer(table[0])) if table else []
    if len(found) != 1:
        raise ReleaseError('pyproject.toml\'s [project] table has no single `version = "..."` line to set')
    return found[0][2], found[0]


def set_project_version(pyproject: str, version: str) -> str:
    table = PROJECT_TABLE.search(pyproject)
    _, line = project_version(pyproject)
    start, end = table.start() + line.start(2), table.start() + line.end(2)
    return pyproject[:start] + version + pyproject[end:]


def check_ready(root: Path, version: Version, tag: str) -> None:
    """Refuse, with the reason, unless `root` is a clean git checkout of a branch, without `tag`, at an older version."""
    if Path(git(root, "rev-parse", "--show-toplevel")).resolve() != root.resolve():
        raise ReleaseError(f"{root} is not the top of a git repository")
    if changes := git(root, "status", "--porcelain", "--untracked-files=all"):
        listed = "\n  ".join(changes.splitlines()[:10])
        raise ReleaseError(f"the working tree has changes, which a release would mix in: commit or stash them first.\n  {listed}")
    if subprocess.run(["git", "-C", str(root), "symbolic-ref", "-q", "HEAD"], capture_output=True).returncode != 0:
        raise ReleaseError("HEAD is detached: check out the branch to release from (git switch main)")
    if subprocess.run(["git", "-C", str(root), "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], capture_output=True).returncode == 0:
        raise ReleaseError(f"the tag {tag} exists already: release a newer version (or delete the tag if it was a mistake: git tag -d {tag})")
    current, _ = project_version((root / "pyproject.toml").read_text(encoding="utf-8"))
    if version < Version(current):
        raise ReleaseError(f"{version} is older than pyproject.toml's version, {current}: release {current} or newer")


def install_cells_naming(root: Path, folder: str, url: str, tag: str) -> list[str]:
    """The notebooks in `folder` whose install cell does not install the package from `url` at `tag`."""
    wrong = []
    for path in sorted((root / folder).glob("*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if INSTALL_TAG in c.metadata.get("tags", [])]
        if not cells or not all(f"git+{url}@{tag}" in c.source for c in cells):
            wrong.append(path.relative_to(root).as_posix())
    return wrong


def write_student_edition(root: Path) -> None:
    """student/ written afresh by the course's own tool (a chapter renamed leaves no old notebook behind)."""
    shutil.rmtree(root / STUDENT_DIR, ignore_errors=True)
    done = subprocess.run([sys.executable, str(root / "tools" / "student_edition.py"), "--out", str(root / STUDENT_DIR)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReleaseError(f"tools/student_edition.py failed:\n{done.stderr.strip()}")


def release(version_text: str, root: Path = ROOT) -> str:
    """Release `version_text` from the repository at `root`; return the tag."""
    version = parse_version(version_text)
    tag = f"v{version}"
    check_ready(root, version, tag)
    url = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    head = git(root, "rev-parse", "HEAD")
    try:
        pyproject = root / "pyproject.toml"
        pyproject.write_text(set_project_version(pyproject.read_text(encoding="utf-8"), str(version)), encoding="utf-8")
        set_repository(url, tag, root)
        write_student_edition(root)
        notebooks = sorted((root / "notebooks").glob("*.ipynb"))
        if not notebooks or not list((root / STUDENT_DIR).glob("*.ipynb")):
            raise ReleaseError("no notebooks in notebooks/ or student/: nothing would install the release")
        if wrong := install_cells_naming(root, "notebooks", url, tag) + install_cells_naming(root, STUDENT_DIR, url, tag):
            raise ReleaseError(f"these notebooks' install cells do not install {url}@{tag}: {', '.join(wrong)}")
        git(root, "add", "--all")
        git(root, "commit", "--quiet", "-m", f"Release {tag}")
        git(root, "tag", "--annotate", tag, "-m", f"Release {tag}")
    except BaseException:
        # The tree was clean (check_ready): back to the commit it was at (undoing a release commit
        # whose tag failed), every tracked file as it was, every new one removed. (Ignored files,
        # such as .venv, are left alone.)
        subprocess.run(["git", "-C", str(root), "reset", "--quiet", "--hard", head], check=False)
        subprocess.run(["git", "-C", str(root), "clean", "--quiet", "-d", "--force"], check=False)
        raise
    return tag


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the version to release, e.g. 0.2.0 (tagged v0.2.0)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course's repository (default: this one)")
    args = parser.parse_args(argv)
    try:
        tag = release(args.version, args.root)
    except ReleaseError as error:
        print(f"make release: {error}", file=sys.stderr)
        return 2
    branch = git(args.root, "rev-parse", "--abbrev-ref", "HEAD")
    print(f"Released {tag}: commit {git(args.root, 'rev-parse', '--short', 'HEAD')} \"Release {tag}\", tagged {tag}.")
    print(f"The install cells, Colab links and student/ now name {tag}. Publish it: git push origin {branch} {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
