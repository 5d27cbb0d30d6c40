"""Hidden old spellings: an aliased option parses like its new name and stays out of --help; a legacy positional
argument parses but stays out of the usage line."""

from __future__ import annotations

import click
from click.testing import CliRunner

from calibkit.cli_options import AliasedOption, LegacyArgument


@click.command()
@click.argument("old_model", required=False, cls=LegacyArgument)
@click.option("-m", "--model", default=None, help="The model.")
@click.option("-f", "--text", "text", cls=AliasedOption, aliases=("--data",), default="none", help="The text.")
@click.option("--level", type=int, default=3, show_default=True)
def command(old_model, model, text, level):
    click.echo(f"model={model or old_model} text={text} level={level}")


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def test_alias_parses_as_the_new_name():
    assert run("--data", "a.txt").output == run("--text", "a.txt").output == run("-f", "a.txt").output
    assert "text=a.txt" in run("--data", "a.txt").output
    assert command.make_context("c", ["--data", "x"]).params == command.make_context("c", ["-f", "x"]).params


def test_help_shows_only_the_new_spellings():
    help_text = run("--help").output
    assert "-f, --text TEXT" in help_text and "--data" not in help_text
    assert "Usage: command [OPTIONS]\n" in help_text and "OLD_MODEL" not in help_text


def test_legacy_positional_still_parses():
    assert "model=x.gguf" in run("x.gguf").output
    assert "model=y.gguf" in run("-m", "y.gguf").output


def test_unknown_spelling_is_still_an_error():
    result = CliRunner().invoke(command, ["--dataset", "x"])
    assert result.exit_code == 2 and "No such option '--dataset'" in result.output
