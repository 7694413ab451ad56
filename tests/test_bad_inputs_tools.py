"""Issue 23, the command-line tools: a bad --root, --csv or --out, and hostile URL/BRANCH values,
get a one-line usage error (exit 2) before anything is written or graded (one test per case)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import set_repository  # noqa: E402
import student_edition  # noqa: E402

GRADE = [sys.executable, str(ROOT / "tools" / "grade.py")]
OLD, OLD_BRANCH = "https://github.com/" + "someone/build-a-gpt", "main"  # split: the tool must not rewrite this file
FORK = "https://github.com/" + "a-fork/my-gpt"


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def course(root: Path) -> Path:
    """The least a course's folder holds for set_repository: _config.yml and one file naming the address."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "_config.yml").write_text(f"repository:\n  url: {OLD}\n  branch: {OLD_BRANCH}\n")
    (root / "README.md").write_text(f"git clone {OLD}\n")
    return root


def usage_error(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ set_repository --root


def test_set_repository_refuses_a_missing_root(tmp_path, capsys):
    err = usage_error(capsys, set_repository.main, [FORK, "--root", str(tmp_path / "missing")])
    assert f"--root {tmp_path / 'missing'} is not a folder: give the course's folder, the one holding _config.yml" in err


def test_set_repository_refuses_a_root_without_config(tmp_path, capsys):
    (tmp_path / "README.md").write_text(f"git clone {OLD}\n")
    before = snapshot(tmp_path)
    err = usage_error(capsys, set_repository.main, [FORK, "--root", str(tmp_path)])
    assert "has no _config.yml: give the course's folder" in err
    assert snapshot(tmp_path) == before


def test_set_repository_refuses_a_config_without_its_repository(tmp_path, capsys):
    (tmp_path / "_config.yml").write_text("title: not the course\n")
    err = usage_error(capsys, set_repository.main, [FORK, "--root", str(tmp_path)])
    assert "has no repository.url and repository.branch" in err and "restore them" in err


HOSTILE = ['"; touch {marker}; "', "`touch {marker}`", "$(touch {marker})", "x; touch {marker}"]


@pytest.mark.parametrize("value", HOSTILE, ids=["quotes", "backticks", "dollar-paren", "semicolon"])
@pytest.mark.parametrize("option", ["url", "--branch"])
def test_set_repository_refuses_hostile_values_before_touching_a_file(tmp_path, capsys, value, option):
    root, marker = course(tmp_path / "course"), tmp_path / "pwned"
    value = value.format(marker=marker)
    before = snapshot(root)
    argv = [value] if option == "url" else [FORK, "--branch", value]
    err = usage_error(capsys, set_repository.main, [*argv, "--root", str(root)])
    assert ("is not a repository address" if option == "url" else "is not a branch name") in err
    assert snapshot(root) == before and not marker.exists()


def test_set_repository_stopped_by_a_read_only_file_says_so_and_a_rerun_finishes(tmp_path, capsys, monkeypatch):
    root = course(tmp_path / "course")
    (root / "book").mkdir()
    (root / "book" / "setup.md").write_text(f"git clone {OLD}\n")  # written after _config.yml's folder
    write_text = Path.write_text

    def read_only(path, *args, **kwargs):
        if path.name == "setup.md":
            raise PermissionError(13, "Permission denied", str(path))
        return write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    err = usage_error(capsys, set_repository.main, [FORK, "--root", str(root)])
    assert "setup.md: Permission denied; make it writable and run this again (it finishes the job)" in err
    assert OLD in (root / "_config.yml").read_text(), "_config.yml, written last, still names the old address"
    monkeypatch.setattr(Path, "write_text", write_text)
    assert set_repository.main([FORK, "--root", str(root)]) == 0
    assert all(FORK in (root / name).read_text() for name in ("_config.yml", "README.md", "book/setup.md"))


def make_copy(tmp_path: Path) -> Path:
    """What `make repository` needs, in tmp_path: the Makefile, the tool, and a tools venv that is this Python."""
    copy = course(tmp_path / "course")
    shutil.copy(ROOT / "Makefile", copy)
    shutil.copy(ROOT / "pyproject.toml", copy)
    (copy / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "set_repository.py", copy / "tools")
    python = copy / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    stamp = copy / "venv" / ".setup-done"
    stamp.touch()
    later = (copy / "pyproject.toml").stat().st_mtime + 60
    os.utime(stamp, (later, later))  # the venv is up to date: make installs nothing
    return copy


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize(
    "variable, value",
    [
        ("URL", '"; touch {marker}; "'),
        ("URL", "`touch {marker}`"),
        ("URL", "$$(touch {marker})"),
        ("BRANCH", "$$(touch {marker})"),
        ("URL", "$(shell touch {marker})"),
    ],
    ids=["quotes", "backticks", "dollar-paren", "branch-dollar-paren", "make-shell"],
)
def test_make_repository_runs_no_code_from_its_values(tmp_path, variable, value):
    copy, marker = make_copy(tmp_path), tmp_path / "pwned"
    before = snapshot(copy)
    given = {"URL": FORK, variable: value.format(marker=marker)}
    cmd = ["make", "-s", "repository", "TOOLS_VENV=venv", *(f"{k}={v}" for k, v in given.items())]
    done = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=120)
    assert not marker.exists(), "a value ran as code"
    assert done.returncode != 0 and "set_repository.py: error:" in done.stderr, done.stderr
    assert snapshot(copy) == before


# ------------------------------------------------------------------ grade --csv


def grade(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # A submission that does not exist: should the checks let it through, grading ends at once.
    return subprocess.run([*GRADE, "missing-01_tokens.ipynb", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_grade_refuses_a_csv_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("in the way\n")
    done = grade("--csv", str(tmp_path / "afile" / "grades.csv"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'afile'} is a file, not a folder; choose a path in a folder you can write to" in done.stderr
    assert (tmp_path / "afile").read_text() == "in the way\n"


def test_grade_refuses_a_csv_that_is_not_a_regular_file(tmp_path):
    # Before: a FIFO (or, as root, /dev/null) was graded into, then replaced by the CSV.
    fifo = tmp_path / "grades.csv"
    os.mkfifo(fifo)
    done = grade("--csv", str(fifo), cwd=tmp_path)
    assert done.returncode == 2 and "is not a regular file (a device, a pipe or a socket)" in done.stderr
    assert "name a regular file, e.g. --csv grades.csv" in done.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode), "left as it was"


def test_grade_refuses_feedback_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("in the way\n")
    done = grade("--csv", str(tmp_path / "g.csv"), "--feedback", str(tmp_path / "afile" / "fb"), cwd=tmp_path)
    assert done.returncode == 2 and "is a file, not a folder; choose a path in a folder you can write to" in done.stderr
    assert not (tmp_path / "g.csv").exists()


# ------------------------------------------------------------------ student_edition --out


def test_student_edition_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("in the way\n")
    err = usage_error(capsys, student_edition.main, ["--out", str(tmp_path / "afile"), "--chapters", "01"])
    assert "is a file, not a folder; choose a folder you can write to (e.g. --out student)" in err


def test_student_edition_refuses_an_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("in the way\n")
    err = usage_error(capsys, student_edition.main, ["--out", str(tmp_path / "afile" / "student"), "--chapters", "01"])
    assert f"{tmp_path / 'afile'} is a file, not a folder" in err


def test_student_edition_refuses_a_folder_where_a_notebook_goes(tmp_path, capsys):
    out = tmp_path / "student"
    (out / "01_tokens.ipynb").mkdir(parents=True)
    err = usage_error(capsys, student_edition.main, ["--out", str(out), "--chapters", "01"])
    assert "01_tokens.ipynb is a folder, where the file 01_tokens.ipynb goes; move it away" in err
    assert sorted(p.name for p in out.iterdir()) == ["01_tokens.ipynb"], "nothing written"


def test_student_edition_stopped_by_a_read_only_notebook_says_which(tmp_path, capsys, monkeypatch):
    def read_only(nb, path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(student_edition.nbformat, "write", read_only)
    err = usage_error(capsys, student_edition.main, ["--out", str(tmp_path / "student"), "--chapters", "01"])
    assert "01_tokens.ipynb: Permission denied; make it writable, or choose another --out" in err
