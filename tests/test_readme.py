"""The README stays true: every setting and CLI command is documented there."""

from __future__ import annotations

from pathlib import Path

import click

from kernel.settings import documented_variables
from webapp.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def all_commands(group: click.Group, prefix: str = "permachat") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += all_commands(command, path)
        else:
            found.append(path)
    return found


def test_every_setting_is_documented():
    missing = [name for name, _ in documented_variables() if f"`{name}`" not in README]
    assert not missing, f"README does not document {missing}"


def test_every_cli_command_is_documented():
    commands = all_commands(main)
    assert "permachat user create" in commands
    missing = [c for c in commands if c not in README]
    assert not missing, f"README does not document {missing}"


def test_the_two_commands_come_first():
    first_code = README.index("```")
    block = README[first_code:README.index("```", first_code + 3)]
    assert "make run" in block and "make test" in block
