"""CI runs the README's test command, on pull requests and on main, and publishes only main."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def readme_test_command() -> str:
    block = re.search(r"## The two commands.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no 'The two commands' block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.startswith("make")]
    assert len(commands) == 2, commands
    return commands[1]


def test_ci_runs_the_readme_test_command():
    command = readme_test_command()
    assert command == "make test"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert command in ci, f".ci/run must run the README's test command, {command!r}: {ci}"
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]["steps"]
    assert any(step.get("run") == command for step in steps), "the workflow must run the README's test command"


def test_the_workflow_tests_pull_requests_and_publishes_main_only():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers, "pull requests must be tested before they are merged"
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["deploy"]["if"] == "github.event_name != 'pull_request'", "a pull request must never publish the book"
    publishing = [s for s in jobs["build"]["steps"] if "pages" in s.get("uses", "")]
    assert publishing and all(s.get("if") == "github.event_name != 'pull_request'" for s in publishing)
