"""Does the install cell change anything Colab already has? `pip install gptcourse`, run by real
pip on the runtime's own Python, into a venv that holds Colab's published package list.

    python tools/colab_install_check.py tests/data/colab/py313-gpu.txt [--project .] [--python PATH]

Colab publishes what its runtime holds (`pip freeze`, in the googlecolab/backend-info repository;
tests/data/colab/README.md says which commits are kept here). Hundreds of those packages (CUDA
torch, TensorFlow, JAX) cannot be installed on this machine, and need not be: pip decides what to
install from the *metadata* of what is installed, never from its files. So the venv is seeded with
one `.dist-info` per Colab package: its name, its version, and the requirements that version
declares (read from PyPI by pip itself, for every Colab package that the install reaches). Then
pip installs the package for real, as the notebook's install cell does (no --upgrade), and
`pip freeze` before and after are compared. The check fails when a package Colab has is changed
or removed; the packages Colab lacks are listed as added.

What it cannot see, by design: packages Colab installed from elsewhere than PyPI (CUDA builds such
as torch 2.11.0+cu128, wheels from a URL, git checkouts) are seeded with their name and version
only, since their own requirements are not on PyPI; wheel tags are this machine's (glibc may be
newer than Colab's Ubuntu 22.04); and PyPI changes: a release made after this check ran can still
change what a later install picks.

It needs a Python of the runtime's minor version (environment markers and wheel tags depend on
it): --python, or found on PATH, under pyenv or through uv; and PyPI (or the index pip is
configured with).
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
# pip as the check's own interpreter has it (`pip --python` runs it under the runtime's Python),
# never a local constraints file: Colab's pip knows nothing of this machine's pip configuration.
PIP_ENV = {"PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_REQUIRE_VIRTUALENV": "0"}
# The runtime's Python, which the header of each kept file gives (os-info.txt's line, copied in).
PYTHON_LINE = re.compile(r"^#.*\bPython (\d+)\.(\d+)\.\d+", re.MULTILINE)
# What a marker may ask of the target Python, read off that Python (packaging's own names).
MARKER_ENV_SCRIPT = """
import json, os, platform, sys
info = sys.implementation.version
version = f"{info.major}.{info.minor}.{info.micro}"
if info.releaselevel != "final":
    version += info.releaselevel[0] + str(info.serial)
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": version,
    "os_name": os.name, "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(), "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


class CheckError(RuntimeError):
    """The check could not run (no interpreter, pip failed): not a verdict on the package."""


class IndexUnreachable(CheckError):
    """pip failed, and said it could not connect to the package index: the check needs PyPI (or a mirror)."""


@dataclass
class ColabPackage:
    name: str  # as Colab's freeze writes it
    version: str  # local labels kept: this is what is installed
    on_pypi: bool  # False for CUDA/CPU builds (+cu128, +cpu) and URL or git installs
    requires: list[str] | None = None  # None: not read (yet)


@dataclass
class Diff:
    added: dict[str, str] = field(default_factory=dict)  # name -> version pip installed
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (Colab's, after)
    removed: dict[str, str] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)  # reached, but seeded without requirements

    @property
    def ok(self) -> bool:
        return not self.changed and not self.removed


def read_freeze(path: Path) -> tuple[dict[str, ColabPackage], tuple[int, int]]:
    """Colab's `pip freeze` as {canonical name: package}, and the Python it was taken on."""
    text = path.read_text()
    found = PYTHON_LINE.search(text)
    if not found:
        raise CheckError(f"{path} has no '# Python X.Y' line: copy the runtime's os-info.txt Python line into its header")
    packages = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if " @ " in line:
            name, url = (part.strip() for part in line.split(" @ ", 1))
            version, on_pypi = url_version(url), False
        else:
            name, version = line.split("==", 1)
            on_pypi = "+" not in version  # +cu128 / +cpu: PyTorch's own index, not PyPI
        packages[canonicalize_name(name)] = ColabPackage(name, version, on_pypi)
    return packages, (int(found[1]), int(found[2]))


def url_version(url: str) -> str:
    """The version in a wheel's or sdist's file name; '0' for a git checkout (no version to read)."""
    filename = url.split("#", 1)[0].rsplit("/", 1)[-1].replace("%2B", "+")
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:
        return "0"


def find_python(version: tuple[int, int]) -> Path:
    """An interpreter of exactly `version`: on PATH, under pyenv, or uv's; CheckError if none."""
    name = f"python{version[0]}.{version[1]}"
    candidates = [shutil.which(name)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(pyenv_root.glob(f"versions/{version[0]}.{version[1]}.*/bin/{name}"), reverse=True)
    if shutil.which("uv"):
        found = subprocess.run(["uv", "python", "find", f"{version[0]}.{version[1]}"], capture_output=True, text=True)
        candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    for candidate in filter(None, candidates):
        # A pyenv shim is on PATH even where that version is not selected: ask the interpreter.
        probe = subprocess.run([candidate, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.split() == [str(version[0]), str(version[1])]:
            return Path(candidate)
    raise CheckError(
        f"No Python {version[0]}.{version[1]} found (PATH, pyenv, uv), and the check needs the runtime's own Python: "
        f"install one (apt-get install {name}, pyenv install {version[0]}.{version[1]}, or uv python install "
        f"{version[0]}.{version[1]}) or pass --python."
    )


def pip(python: Path, *args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    """This interpreter's pip, run under `python` (pip --python): the runtime's markers and tags."""
    command = [sys.executable, "-m", "pip", "--python", str(python), *(["-q"] if quiet else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | PIP_ENV)
    if done.returncode != 0:
        error = CheckError if index_reachable() else IndexUnreachable
        raise error(f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def index_reachable() -> bool:
    """Whether pip's index (PIP_INDEX_URL, pip's configured index-url, or PyPI) answers, asked
    alone: local find-links and extra indexes (a mirror on disk) could answer for some packages only."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True)
    url = os.environ.get("PIP_INDEX_URL") or (configured.stdout.strip() if configured.returncode == 0 else "") or "https://pypi.org/simple"
    cert = ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []
    probe = subprocess.run([sys.executable, "-m", "pip", "--isolated", "index", "versions", "pip", "--index-url", url,
                            "--retries", "0", "--timeout", "20", "--no-cache-dir", *cert], capture_output=True, text=True)
    return probe.returncode == 0


def make_venv(python: Path, where: Path) -> tuple[Path, Path]:
    """A venv of `python` with no pip of its own (pip runs from outside): its interpreter and site-packages."""
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(where)], check=True)
    interpreter = where / "bin" / "python"
    purelib = subprocess.run([str(interpreter), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return interpreter, Path(purelib)


def seed(site: Path, packages: list[ColabPackage]) -> None:
    """Register `packages` as installed: a .dist-info each, with their name, version and requirements
    (written again when their requirements become known)."""
    for package in packages:
        info = site / f"{re.sub(r'[-_.]+', '_', package.name)}-{package.version}.dist-info"
        info.mkdir(exist_ok=True)
        lines = ["Metadata-Version: 2.1", f"Name: {package.name}", f"Version: {package.version}"]
        lines += [f"Requires-Dist: {requirement}" for requirement in package.requires or []]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        (info / "INSTALLER").write_text("pip\n")
        # RECORD lists these files, so that pip can uninstall the package when it replaces it.
        (info / "RECORD").write_text("".join(f"{info.name}/{name},,\n" for name in ("METADATA", "INSTALLER", "RECORD")))


def build_wheel(project: Path, out: Path) -> Path:
    """The project as one wheel (built once, installed as the cell would install it), built from a
    copy: setuptools writes build/ into the tree it builds, and two checks at once would collide."""
    source = out.parent / "source"
    shutil.copytree(project, source, ignore=shutil.ignore_patterns(".git", ".venv", "_build", "build", "student", "node_modules",
                                                                   "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                          capture_output=True, text=True, env=os.environ | PIP_ENV)
    if done.returncode != 0:
        raise CheckError(f"building {project} failed:\n{done.stderr[-3000:]}")
    return next(out.glob("*.whl"))


def wheel_requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def read_requirements(python: Path, work: Path, pins: list[ColabPackage]) -> dict[str, list[str] | None]:
    """The requirements each Colab version declares, from PyPI's metadata (pip --dry-run --no-deps).

    One pip run for all; a pin pip cannot find (a version Colab built itself) is read alone and,
    failing again, returned as None."""
    def ask(batch: list[ColabPackage]) -> dict[str, list[str]]:
        report = work / "metadata.json"
        pip(python, "install", "--dry-run", "--ignore-installed", "--no-deps", "--report", str(report),
            *(f"{p.name}=={p.version}" for p in batch))
        return {canonicalize_name(item["metadata"]["name"]): item["metadata"].get("requires_dist", [])
                for item in json.loads(report.read_text())["install"]}

    try:
        return ask(pins)
    except CheckError:
        found: dict[str, list[str] | None] = {}
        for package in pins:
            try:
                found |= ask([package])
            except CheckError:
                found[canonicalize_name(package.name)] = None
        return found


def reached(roots: list[str], requires: dict[str, list[str]], env: dict[str, str]) -> set[str]:
    """Every package the install reaches from `roots`, following `requires` (extras and markers
    evaluated for the target Python); a package whose requirements are unknown is a leaf."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in roots]
    done_extras: set[tuple[str, str]] = set()
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate(env | {"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        seen.add(name)
        for wanted in [""] + sorted(requirement.extras):
            if (name, wanted) in done_extras:
                continue
            done_extras.add((name, wanted))
            todo += [(Requirement(r), wanted) for r in requires.get(name) or []]
    return seen


def freeze(python: Path) -> dict[str, str]:
    listed = pip(python, "list", "--format", "json", quiet=False)
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}


def check(project: Path, freeze_file: Path, python: Path | None = None, log=print) -> Diff:
    """Install `project` into a venv seeded with `freeze_file`; what changed, what was added."""
    colab, version = read_freeze(freeze_file)
    python = python or find_python(version)
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(project, work / "wheel")
        probe, _ = make_venv(python, work / "probe")  # empty: where Colab's versions are read from PyPI
        env = json.loads(subprocess.run([str(probe), "-c", MARKER_ENV_SCRIPT], capture_output=True, text=True, check=True).stdout)
        target, site = make_venv(python, work / "colab")
        seed(site, list(colab.values()))
        roots = wheel_requires(wheel)
        # pip keeps an installed version that fits, and then follows *its* requirements: so every
        # Colab package the install reaches needs its own. Read them, level by level, then ask pip
        # what it would install (whose requirements may reach more), until nothing new is reached.
        installing: dict[str, list[str]] | None = None
        unread: set[str] = set()
        for _ in range(100):
            known = {name: p.requires for name, p in colab.items() if p.requires is not None} | (installing or {})
            missing = [colab[n] for n in sorted(reached(roots, known, env)) if n in colab and n not in (installing or {})
                       and colab[n].requires is None and colab[n].on_pypi and n not in unread]
            if missing:
                log(f"{freeze_file.name}: reading the requirements of {len(missing)} Colab packages")
                for name, requires in read_requirements(probe, work, missing).items():
                    if requires is None:
                        unread.add(name)
                    else:
                        colab[name].requires = requires
                seed(site, missing)
                continue
            report = work / "report.json"
            pip(target, "install", "--dry-run", "--report", str(report), str(wheel))
            now = {canonicalize_name(i["metadata"]["name"]): i["metadata"].get("requires_dist", [])
                   for i in json.loads(report.read_text())["install"]}
            if now == installing:
                break
            installing = now
        else:
            raise CheckError("the requirements did not settle in 100 rounds")
        before = freeze(target)
        pip(target, "install", str(wheel))
        after = freeze(target)
    reach = reached(roots, known, env)
    diff = Diff(unread=sorted(n for n in reach if n in colab and n not in installing and colab[n].requires is None))
    for name, was in before.items():
        if name not in after:
            diff.removed[name] = was
        elif after[name] != was:
            diff.changed[name] = (was, after[name])
    diff.added = {name: now for name, now in after.items() if name not in before}
    return diff


def describe(diff: Diff, freeze_file: Path) -> str:
    lines = [f"Colab runtime {freeze_file.name}:"]
    lines.append("  added (Colab lacks them): " + (", ".join(f"{n} {v}" for n, v in sorted(diff.added.items())) or "none"))
    lines.append("  changed: " + (", ".join(f"{n} {a} -> {b}" for n, (a, b) in sorted(diff.changed.items())) or "none"))
    lines.append("  removed: " + (", ".join(f"{n} {v}" for n, v in sorted(diff.removed.items())) or "none"))
    if diff.unread:
        lines.append("  seeded by name and version only (not on PyPI at Colab's version): " + ", ".join(diff.unread))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("freeze", type=Path, nargs="+", help="Colab's pip freeze (tests/data/colab/*.txt)")
    parser.add_argument("--project", type=Path, default=ROOT, help="the project to install (default: this checkout)")
    parser.add_argument("--python", type=Path, help="the runtime's Python (default: found by version)")
    args = parser.parse_args(argv)
    failed = False
    for freeze_file in args.freeze:
        try:
            diff = check(args.project, freeze_file, args.python, log=lambda m: print(m, file=sys.stderr))
        except CheckError as error:
            print(f"{freeze_file}: {error}", file=sys.stderr)
            return 2
        print(describe(diff, freeze_file))
        failed |= not diff.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
