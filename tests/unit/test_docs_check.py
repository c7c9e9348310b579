"""Docs check: every `tricenter …` command shown in README.md and docs/ parses against the
real CLI (so a renamed option or command fails here), the ones that need neither the lab
nor a cloud are run, and every repository path the docs name exists.

Commands that need the lab (`lab up`, `drill run` …) or a cloud (`deploy`, `runtime`) are
checked for their options only: Click builds their context from the documented arguments,
which rejects unknown commands, options and choices, without running them."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scripts.cli import main

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# run for real: offline, read-only, quick
RUNNABLE = {("validate",), ("capacity",), ("ipam",), ("drill", "list"), ("drill", "history"),
            ("version",)}
SPAN = re.compile(r"`(tricenter [^`]+)`")
SHELL_LINE = re.compile(r"^(?:\.venv/bin/)?(tricenter [^#\n]+)", re.M)
PLACEHOLDERS = {"DIR": str(REPO / "inventory" / "guangdong"), "N": "10", "M": "40",
                "S": "guangdong-main", "FILE": "runtime-inventory.yaml"}
PLACEHOLDER = re.compile(r"…|\||\[|\]|<|>")


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        blocks = "\n".join(re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S))
        for command in {*SPAN.findall(text), *SHELL_LINE.findall(blocks)}:
            command = command.strip()
            if not PLACEHOLDER.search(command):
                found.append((page.name, command))
    return sorted(set(found))


def leaf(args: list[str]) -> tuple[click.Command, list[str], tuple[str, ...]]:
    command, path = main, []
    ctx = click.Context(main)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"no command {' '.join([*path, args[0]])}"
        command, path, args = sub, [*path, args[0]], args[1:]
    return command, args, tuple(path)


@pytest.mark.parametrize(("page", "command"), documented_commands())
def test_documented_command_is_valid(page: str, command: str, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRICENTER_REPORTS_DIR", str(tmp_path))
    args = [PLACEHOLDERS.get(a, a) for a in shlex.split(command)[1:]]
    sub, rest, path = leaf(args)
    if not rest:
        return  # `tricenter plan` named in a sentence: the command exists
    sub.make_context(" ".join(path), list(rest))  # unknown options or choices raise here
    if path in RUNNABLE and "--write" not in rest:
        result = CliRunner().invoke(main, args)
        assert result.exit_code in (0, 1), f"{page}: {command}\n{result.output}"


def test_docs_show_commands() -> None:
    assert len(documented_commands()) > 25


PATH_SPAN = re.compile(r"`([\w./-]+/[\w.-]+|[\w-]+\.(?:py|sh|md|yaml))`|\]\(((?!http)[^)#]+)\)")


TRACKED_TOP = {"inventory", "dr", "lab", "scripts", "docs", "tests", "benchmarks", "stacks",
               "monitoring", "README.md", "pyproject.toml"}


def test_every_repository_path_in_the_docs_exists() -> None:
    missing = []
    for page in PAGES:
        for span, link in PATH_SPAN.findall(page.read_text()):
            name = span or link
            if span and name.split("/")[0] not in TRACKED_TOP:
                continue  # not a repository path: lab state (.lab/…), options, URLs, examples
            if any(c in name for c in "{}<>*"):
                continue
            base = page.parent if link else REPO
            if not ((base / name).exists() or (REPO / name).exists()):
                missing.append(f"{page.name}: {name}")
    assert not missing, missing
