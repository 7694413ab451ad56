"""What the repository publishes: the student edition, committed and never stale (Colab opens it
from GitHub); releases (tools/release.py, `make release VERSION=...`), tried on a temporary
repository made from this one, never on this one; and the Makefile's tool targets, which need
only a small venv and pass what a person types to the tools as data, never as shell code."""

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "student"
TOOLS = ["student_edition.py", "course.py", "set_repository.py", "release.py"]  # what `make student/repository/release` run
URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="no git")


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def write_student_edition(root: Path, out: Path) -> dict[str, bytes]:
    """What `root`'s tools/student_edition.py writes now, into `out`."""
    done = subprocess.run([sys.executable, str(root / "tools" / "student_edition.py"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return snapshot(out)


# The student edition, committed.


def test_the_student_edition_is_the_same_every_time(tmp_path):
    once, again = write_student_edition(ROOT, tmp_path / "a"), write_student_edition(ROOT, tmp_path / "b")
    differ = sorted(name for name in once if once[name] != again.get(name))
    assert not differ, f"tools/student_edition.py writes other bytes each run (a new cell with a random id?): {differ}"


def test_the_committed_student_edition_is_what_the_tool_writes(tmp_path):
    assert STUDENT.is_dir(), "student/ is missing: run `make student` and commit student/ (Colab opens it from the repository)"
    wanted, committed = write_student_edition(ROOT, tmp_path / "student"), snapshot(STUDENT)
    stale = sorted(name for name in wanted.keys() | committed.keys() if wanted.get(name) != committed.get(name))
    assert not stale, f"student/ is stale, these files differ from what tools/student_edition.py writes now: {stale}. Run `make student` and commit student/"
    listed = subprocess.run(["git", "ls-files", "--", "student"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0:  # (in a git checkout)
        untracked = sorted(set(committed) - {line.removeprefix("student/") for line in listed.stdout.splitlines()})
        assert not untracked, f"student/ holds files git does not track, which Colab cannot open from GitHub: {untracked}. Commit student/"


# Releases, on a temporary repository.


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A new git repository holding this one's files as they are now (tracked or not ignored), committed on main."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    root = tmp_path / "repo"
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, root / name)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "config", "user.name", "Release Test")
    git(root, "config", "user.email", "release-test@example.invalid")
    git(root, "config", "commit.gpgsign", "false")
    git(root, "config", "tag.gpgsign", "false")
    git(root, "add", "--all")
    git(root, "commit", "-q", "-m", "The course")
    return root


def release(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "tools" / "release.py"), *args], cwd=root, capture_output=True, text=True)


def install_sources(folder: Path) -> dict[str, list[str]]:
    return {
        path.name: [c.source for c in nbformat.read(path, as_version=4).cells if "colab-install" in c.metadata.get("tags", [])]
        for path in sorted(folder.glob("*.ipynb"))
    }


def check_released(root: Path, version: str, tmp_path: Path) -> None:
    tag = f"v{version}"
    assert git(root, "status", "--porcelain", "--untracked-files=all") == "", "a release leaves nothing uncommitted"
    assert git(root, "log", "-1", "--format=%s") == f"Release {tag}"
    assert git(root, "describe", "--exact-match", "HEAD") == tag
    assert git(root, "cat-file", "-t", tag) == "tag", "an annotated tag"
    assert f'\nversion = "{version}"\n' in (root / "pyproject.toml").read_text()
    assert yaml.safe_load((root / "_config.yml").read_text())["repository"]["branch"] == tag, "the Colab links name the tag"
    for folder in ("notebooks", "student"):
        cells = install_sources(root / folder)
        assert cells and len(cells) == len(install_sources(root / "notebooks"))
        for name, sources in cells.items():
            assert sources and all(f'"gptcourse @ git+{URL}@{tag}"' in s for s in sources), f"{folder}/{name}'s install cell"
    assert f"git+{URL}@{tag}" in (root / "README.md").read_text()
    assert snapshot(root / "student") == write_student_edition(root, tmp_path / f"student-{tag}"), "student/ is the released chapters' edition"


@needs_git
def test_a_release_names_its_tag_everywhere_and_the_next_one_moves_on(repo, tmp_path):
    before = git(repo, "rev-parse", "HEAD")
    done = release(repo, "0.2.0")
    assert done.returncode == 0, done.stderr
    assert "git push origin main v0.2.0" in done.stdout
    check_released(repo, "0.2.0", tmp_path)
    assert git(repo, "rev-parse", "HEAD~1") == before, "one commit"
    # Outside student/, the commit changes only the lines naming the version, the branch or the repository.
    diff = git(repo, "diff", "--unified=0", "HEAD~1", "HEAD", "--", ".", ":(exclude)student")
    for line in diff.splitlines():
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
            assert any(s in line for s in ("version = ", "branch: ", URL)), line

    # The next release starts from a tag, not from main.
    done = release(repo, "0.2.1")
    assert done.returncode == 0, done.stderr
    check_released(repo, "0.2.1", tmp_path)
    for old in (f"{URL}@v0.2.0", "/blob/v0.2.0/", "branch: v0.2.0"):
        assert subprocess.run(["git", "-C", str(repo), "grep", "-q", "-F", old, "--", ".", ":(exclude)tests"]).returncode == 1, f"{old!r} is left"


def refused(repo: Path, *args: str) -> str:
    """release's complaint about `args`, after checking that it changed nothing and tagged nothing."""
    head, status, files = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"), snapshot(repo)
    done = release(repo, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"), snapshot(repo)) == (head, status, files)
    assert git(repo, "tag", "--list") == ""
    return done.stderr


@needs_git
@pytest.mark.parametrize(
    "version, reason",
    [("banana", "is not a version: give one such as 0.2.0"), ("0.2.0; rm -rf ~", "is not a version"), ("", "is not a version"), ("1.0+mine", "local part")],
)
def test_a_bad_version_is_refused(repo, version, reason):
    assert reason in refused(repo, version)


@needs_git
def test_an_older_version_is_refused(repo):
    assert "older than pyproject.toml's version" in refused(repo, "0.0.9")


@needs_git
def test_a_dirty_tree_is_refused(repo):
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA change.\n")
    assert "commit or stash them first" in refused(repo, "0.2.0")
    git(repo, "checkout", "README.md")
    (repo / "notes.txt").write_text("not committed\n")
    assert "notes.txt" in refused(repo, "0.2.0")


@needs_git
def test_an_existing_tag_is_refused(repo):
    git(repo, "tag", "v0.2.0")
    head, files = git(repo, "rev-parse", "HEAD"), snapshot(repo)
    done = release(repo, "0.2.0")
    assert done.returncode == 2 and "the tag v0.2.0 exists already" in done.stderr
    assert (git(repo, "rev-parse", "HEAD"), snapshot(repo)) == (head, files)


@needs_git
def test_a_failed_release_puts_the_tree_back(repo):
    (repo / "tools" / "student_edition.py").write_text("import sys\nsys.exit('the student edition broke')\n")
    git(repo, "commit", "-q", "-am", "A broken student edition")
    head, files = git(repo, "rev-parse", "HEAD"), snapshot(repo)
    done = release(repo, "0.2.0")
    assert done.returncode == 2 and "the student edition broke" in done.stderr
    assert (git(repo, "rev-parse", "HEAD"), snapshot(repo), git(repo, "tag", "--list")) == (head, files, "")


# The Makefile's tool targets.


def test_the_tools_need_only_their_dependency_group():
    """The modules `make student`, `make repository` and `make release` run import only the standard
    library, each other, and pyproject.toml's dependency group `tools` (what .venv-tools holds)."""
    tomllib = pytest.importorskip("tomllib")
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("dependency-groups", {})
    assert "tools" in groups, "pyproject.toml needs [dependency-groups] tools = [...], which `make student` installs"
    provides = {"nbformat": "nbformat", "pyyaml": "yaml", "packaging": "packaging"}
    installed = {provides.get(req.split(">")[0].split("=")[0].split("<")[0].strip().lower()) for req in groups["tools"]}
    local = {name.removesuffix(".py") for name in TOOLS}
    for name in TOOLS:
        tree = ast.parse((ROOT / "tools" / name).read_text())
        imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        missing = imported - set(sys.stdlib_module_names) - local - installed
        assert not missing, f"tools/{name} imports {sorted(missing)}, which the dependency group `tools` does not install"


@pytest.fixture
def fake_tools(tmp_path):
    """A tools venv whose python records its arguments, one JSON line a run, instead of running anything."""
    venv, log = tmp_path / "tools-venv", tmp_path / "argv.jsonl"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!{sys.executable}\nimport json, sys\nwith open({str(log)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    python.chmod(0o755)
    stamp = venv / ".setup-done"
    stamp.touch()
    later = time.time() + 86400  # newer than pyproject.toml: make does not set the venv up again
    os.utime(stamp, (later, later))

    def make(*args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        env = {k: v for k, v in os.environ.items() if k not in {"CHAPTERS", "URL", "BRANCH", "VERSION", "MAKEFLAGS", "MAKELEVEL"}}
        done = subprocess.run(["make", "-s", "--no-print-directory", *args, f"TOOLS_VENV={venv}"], cwd=ROOT, capture_output=True, text=True, env=env)
        runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return done, runs

    return make


# What a person might type, meant or not, that a shell (or make itself: `$(shell ...)`) would run if
# the value were pasted into the recipe. The Makefile takes each value verbatim ($(value ...)), so
# the tool receives exactly what was typed, `$$` and `$(...)` included, as text.
HOSTILE = ['"; touch {pwned}; echo "', "$$(touch {pwned})", "$(shell touch {pwned})", "`touch {pwned}`", "'; touch {pwned}; '"]


@needs_make
@pytest.mark.parametrize("hostile", HOSTILE)
def test_make_passes_values_as_data(fake_tools, tmp_path, hostile):
    pwned = tmp_path / "pwned"
    typed = hostile.format(pwned=pwned)
    value = typed  # what the tool receives: the value verbatim
    done, runs = fake_tools("student", f"CHAPTERS={typed}")
    assert done.returncode == 0, done.stderr
    assert runs == [["tools/student_edition.py", "--out", "student", "--chapters", value]]
    done, runs = fake_tools("release", f"VERSION={typed}")
    assert done.returncode == 0, done.stderr
    assert runs == [["tools/release.py", value]]
    done, runs = fake_tools("repository", f"URL={typed}", f"BRANCH={typed}")
    assert done.returncode == 0, done.stderr
    assert runs == [["tools/set_repository.py", value, "--branch", value]]
    assert not pwned.exists(), "a value was run as shell code"


@needs_make
def test_make_student_and_friends(fake_tools):
    done, runs = fake_tools("student")
    assert done.returncode == 0 and runs == [["tools/student_edition.py", "--out", "student"]], "no CHAPTERS: every chapter"
    done, runs = fake_tools("student", "CHAPTERS=04,07")
    assert runs == [["tools/student_edition.py", "--out", "student", "--chapters", "04,07"]]
    done, runs = fake_tools("repository", "URL=https://github.com/" + "someone/course")
    assert runs == [["tools/set_repository.py", "https://github.com/" + "someone/course"]], "no BRANCH: no --branch"
    done, runs = fake_tools("release")
    assert done.returncode == 2 and "Usage: make release VERSION=0.2.0" in done.stderr and runs == []


@needs_make
def test_make_student_needs_only_the_tools_venv(tmp_path):
    """Dry runs (make -n) on a machine with nothing set up: the tools venv and its dependency group, nothing else."""
    for target in ("student", "repository URL=https://github.com/" + "someone/course", "release VERSION=0.2.0"):
        done = subprocess.run(["make", "-n", "--no-print-directory", *target.split(), f"TOOLS_VENV={tmp_path}/t", f"VENV={tmp_path}/v"], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "pip install -q --group tools" in done.stdout, target
        for heavy in ("torch", "requirements.txt", "npm", "jupyter", "playwright", "apt-get", f"{tmp_path}/v"):
            assert heavy not in done.stdout, f"make {target} would run {heavy}:\n{done.stdout}"


@needs_make
def test_make_clean_keeps_the_committed_student_edition():
    done = subprocess.run(["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "_build" in done.stdout and "student" not in done.stdout
