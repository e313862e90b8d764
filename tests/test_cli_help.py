"""The front door of the command line: `placer --version` and help texts without hard line
breaks, for every command whichever branch added it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import typer
from typer.testing import CliRunner

import placer
from placer.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _commands(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def _first_paragraph(text: str) -> str:
    return text.split("\n\n")[0].strip()


def test_version_is_one_string_read_by_the_package_the_cli_and_the_build():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in meta["dynamic"] and "version" not in meta
    assert re.fullmatch(r"\d+\.\d+\.\d+", placer.__version__)
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"placer {placer.__version__}\n"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{placer.__version__}]" in changelog and "## [Unreleased]" in changelog


def test_no_help_text_keeps_a_docstring_line_break():
    group = typer.main.get_command(app)
    seen = 0
    for path, cmd in _commands(group):
        for text in (cmd.help, cmd.short_help, *(getattr(p, "help", None) for p in cmd.params)):
            if text:
                seen += 1
                for para in text.split("\n\n"):
                    assert para.startswith("\b") or "\n" not in para, (path, text)
    assert seen > 50


def test_placer_help_prints_each_command_summary_on_one_line():
    # the real entry point in a terminal wide enough that rich never wraps: a summary broken
    # over two lines could only come from the docstring
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}
    group = typer.main.get_command(app)
    for path, cmd in _commands(group):
        if not getattr(cmd, "commands", None):
            continue
        out = subprocess.run(
            [sys.executable, "-m", "placer", *path, "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        ).stdout
        lines = out.splitlines()
        for name, sub in cmd.commands.items():
            summary = _first_paragraph(sub.short_help or sub.help or "")
            row = [ln for ln in lines if re.search(rf"│ {re.escape(name)}\s", ln)]
            assert row, (path, name, out)
            assert summary in row[0], (path, name, row[0])


def test_a_command_help_prints_its_description_on_one_line():
    runner = CliRunner()
    group = typer.main.get_command(app)
    for path, cmd in _commands(group):
        if not path or getattr(cmd, "commands", None):
            continue
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
        assert res.exit_code == 0, (path, res.output)
        head = _first_paragraph(cmd.help or "")
        assert head and any(head in ln for ln in res.output.splitlines()), (path, res.output)
