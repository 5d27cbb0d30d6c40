"""The `imatrix` entry point: every listed command loads and has help; the version is the package's."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from imatrix import __version__
from imatrix.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_resolves_to_a_click_command(name):
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command) and command.help


def test_group_lists_the_commands_and_its_version():
    runner = CliRunner()
    listing = runner.invoke(main, ["-h"]).output
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert runner.invoke(main, ["--version"]).output == f"imatrix, version {__version__}\n"
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2
