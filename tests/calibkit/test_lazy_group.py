"""The lazy click group: a subcommand's module is imported only when that command runs or help lists it."""

from __future__ import annotations

import sys

import click
from click.testing import CliRunner

from calibkit.lazy_group import LazyGroup


def test_commands_import_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe_commands.py").write_text(
        "import click\n\n@click.command()\n@click.option('--n', type=int, default=1)\n"
        "def hello(n):\n    click.echo('hello ' * n)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lazy_probe_commands", None)

    @click.group(cls=LazyGroup, lazy_commands={"hello": "lazy_probe_commands:hello"})
    def group():
        pass

    @group.command()
    def eager():
        click.echo("eager")

    assert CliRunner().invoke(group, ["eager"]).output == "eager\n"
    assert CliRunner().invoke(group, ["nope"]).exit_code == 2
    assert "lazy_probe_commands" not in sys.modules
    result = CliRunner().invoke(group, ["hello", "--n", "2"])
    assert result.output == "hello hello \n" and "lazy_probe_commands" in sys.modules
    listing = CliRunner().invoke(group, ["--help"])
    assert listing.exit_code == 0 and "hello" in listing.output and "eager" in listing.output
    assert group.list_commands(click.Context(group)) == ["eager", "hello"]
