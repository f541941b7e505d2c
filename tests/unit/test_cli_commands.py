"""Every `hotline` command, the lazily loaded ones included, answers --help with what it does;
and a command starts without loading what only other commands need (cli/main.py LazyGroup)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from hotline.cli.main import cli

pytestmark = pytest.mark.unit


def _every_command(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"hotline {' '.join(path)} lists {name} but has no such command"
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _every_command(command, (*path, name))


def test_every_command_says_what_it_does() -> None:
    commands = list(_every_command(cli, ()))
    for expected in [("admin", "retention", "set"), ("bench", "seal"), ("audit", "verify")]:
        assert expected in commands
    for path in commands:
        ran = CliRunner().invoke(cli, [*path, "--help"])
        assert ran.exit_code == 0, (path, ran.output)
        usage, _, described = ran.output.partition("\n\n")
        assert usage.startswith("Usage: "), (path, ran.output)
        assert described.strip(), f"hotline {' '.join(path)} --help says nothing"


def test_a_command_starts_without_the_benchmarks_the_verifier_or_the_database_driver() -> None:
    heavy = ["fastapi", "pymongo", "hotline.cli.bench", "hotline.cli.audit", "hotline.cli.admin"]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, hotline.cli.main; print([m for m in {heavy!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"


def test_a_setting_the_environment_gets_wrong_is_a_clear_error_naming_the_variable() -> None:
    ran = CliRunner().invoke(
        cli,
        ["dev-token", "--user", "admin"],  # reads the settings before anything else
        env={"HOTLINE_POW_DIFFICULTY": "99", "HOTLINE_MONGO_DB": "hotline-x"},
    )
    assert ran.exit_code == 1, ran.output
    assert "HOTLINE_POW_DIFFICULTY: Input should be less than or equal to 28" in ran.output
    assert "HOTLINE_MONGO_DB: String should match pattern" in ran.output
    assert isinstance(ran.exception, SystemExit), ran.exception  # click's exit, no traceback
