"""tools/set_repository.py (`make repository URL=...`): a fork's address in every place the
repository's is written, nothing else touched; run on a copy of the repository."""

import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from set_repository import main  # noqa: E402

TOOL = [sys.executable, str(ROOT / "tools" / "set_repository.py")]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
OLD, OLD_BRANCH = CONFIG["url"], CONFIG["branch"]
NEW, NEW_BRANCH = "https://github.com/" + "a-fork/my-gpt", "course-2027"  # split: this file must not name it


def tracked_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in listed.stdout.splitlines() if (ROOT / p).is_file()]


@pytest.fixture
def copy(tmp_path):
    """The repository's files (tracked or not ignored), copied into tmp_path."""
    for name in tracked_files():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def set_to(root, *args):
    return subprocess.run([*TOOL, *args, "--root", str(root)], capture_output=True, text=True)


def test_every_place_changes_and_nothing_else(copy):
    before = snapshot(copy)
    holding = {name for name, data in before.items() if OLD.encode() in data}
    assert {"_config.yml", "README.md", "book/setup.md"} <= holding
    assert any(name.startswith("notebooks/") for name in holding)

    done = set_to(copy, NEW, "--branch", NEW_BRANCH)
    assert done.returncode == 0, done.stderr
    after = snapshot(copy)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == holding, "exactly the files that named the repository change"
    assert all(name in done.stdout for name in changed), "it says what it changed"
    assert not any(OLD.encode() in data for data in after.values()), "the old address is left somewhere"

    repo = yaml.safe_load((copy / "_config.yml").read_text())["repository"]
    assert (repo["url"], repo["branch"]) == (NEW, NEW_BRANCH)
    assert f"git clone {NEW}\ncd my-gpt\n" in (copy / "book/setup.md").read_text()
    for name in sorted(n for n in holding if n.endswith(".ipynb")):
        old_nb, new_nb = nbformat.reads(before[name].decode(), 4), nbformat.read(copy / name, 4)
        assert old_nb.metadata == new_nb.metadata
        assert [(c.id, c.metadata, c.cell_type) for c in old_nb.cells] == [(c.id, c.metadata, c.cell_type) for c in new_nb.cells]
        install = next(c for c in new_nb.cells if "colab-install" in c.metadata.get("tags", []))
        assert f'"gptcourse @ git+{NEW}@{NEW_BRANCH}"' in install.source, name

    # Only the lines that name the repository, its branch, or the folder a clone makes, differ.
    for name in changed:
        diff = difflib.unified_diff(before[name].decode().splitlines(), after[name].decode().splitlines(), n=0, lineterm="")
        for line in diff:
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                assert any(s in line for s in (OLD, NEW, "branch: ", "cd build-a-gpt", "cd my-gpt")), f"{name}: {line}"

    # And back again: the original, byte for byte.
    done = set_to(copy, OLD, "--branch", OLD_BRANCH)
    assert done.returncode == 0, done.stderr
    assert snapshot(copy) == before


def test_running_it_twice_changes_nothing_more(copy):
    assert set_to(copy, NEW).returncode == 0
    once = snapshot(copy)
    assert yaml.safe_load((copy / "_config.yml").read_text())["repository"]["branch"] == OLD_BRANCH, "no --branch: the branch stays"
    again = set_to(copy, NEW)
    assert again.returncode == 0 and "Nothing to change" in again.stdout
    assert snapshot(copy) == once


@pytest.mark.parametrize(
    "url, problem",
    [
        (NEW + ".git", ".git"),
        (NEW + "/", "slash"),
        (NEW.replace("https", "http"), "https://"),
        ("https://gitlab.com/a-fork/my-gpt", "https://github.com/OWNER/NAME"),
        ("https://github.com/a-fork", "https://github.com/OWNER/NAME"),
        ("github.com/a-fork/my-gpt", "https://github.com/OWNER/NAME"),
    ],
)
def test_a_bad_address_is_refused_and_nothing_changes(tmp_path, capsys, url, problem):
    (tmp_path / "_config.yml").write_text(f"repository:\n  url: {OLD}\n  branch: {OLD_BRANCH}\n")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main([url, "--root", str(tmp_path)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert problem in err and "For example: https://github.com/" in err
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_repository_needs_a_url():
    done = subprocess.run(["make", "-s", "repository"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "make repository URL=https://github.com/OWNER/NAME" in done.stderr


def test_the_student_edition_follows(copy, tmp_path):
    """student/ is committed, and its install cells name the repository too: rewritten, it is what
    the student edition tool writes from the rewritten chapters."""
    tool = [sys.executable, str(copy / "tools" / "student_edition.py")]
    subprocess.run([*tool, "--out", str(copy / "student")], check=True, capture_output=True)
    assert set_to(copy, NEW, "--branch", NEW_BRANCH).returncode == 0
    subprocess.run([*tool, "--out", str(tmp_path / "fresh")], check=True, capture_output=True)
    assert snapshot(copy / "student") == snapshot(tmp_path / "fresh")
    for path in sorted((copy / "student").glob("*.ipynb")):
        install = next(c for c in nbformat.read(path, 4).cells if "colab-install" in c.metadata.get("tags", []))
        assert f'"gptcourse @ git+{NEW}@{NEW_BRANCH}"' in install.source, path.name
