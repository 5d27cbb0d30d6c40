"""One vocabulary across both tools' commands: the same concept has the same spelling everywhere (llama.cpp's where
it has one: -m model, -f text, -c ctx-size, -t threads, -o output), no visible spelling means two things, and every
old spelling still parses (hidden) to the same values as the new one."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from imatrix.cli import COMMANDS as IMATRIX_COMMANDS
from imatrix.cli import main as imatrix_main
from logminer.cli import COMMANDS as LOGMINER_COMMANDS
from logminer.cli import main as logminer_main


def _commands() -> dict[str, click.Command]:
    found = {}
    for prefix, group, names in (("imatrix", imatrix_main, IMATRIX_COMMANDS), ("logminer", logminer_main,
                                                                              LOGMINER_COMMANDS)):
        context = click.Context(group)
        found.update({f"{prefix} {name}": group.get_command(context, name) for name in names})
    return found


def visible_spellings(command: click.Command) -> dict[str, set[str]]:
    """Parameter name → the option strings --help shows for it (hidden aliases left out)."""
    spellings = {}
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            shown = set(param.opts) - set(getattr(param, "aliases", ())) | set(param.secondary_opts)
            spellings[param.name] = shown
    return spellings


CONCEPTS = {  # spelling → the commands that must have it
    frozenset({"-m", "--model"}): {"imatrix collect", "imatrix gate", "imatrix eval"},
    frozenset({"-f", "--text"}): {"imatrix collect", "imatrix eval"},
    frozenset({"-c", "--ctx-size"}): {"imatrix collect", "imatrix eval", "imatrix inspect", "imatrix merge",
                                      "imatrix convert", "imatrix compare"},
    frozenset({"-t", "--threads"}): {"imatrix gate", "imatrix eval"},
    frozenset({"-o", "--output"}): {"imatrix collect", "imatrix gate", "imatrix eval", "imatrix merge",
                                    "imatrix convert", "imatrix mix", "logminer ingest", "logminer split",
                                    "logminer corpus"},
}


@pytest.mark.parametrize("spelling", sorted(CONCEPTS, key=sorted), ids=lambda s: "/".join(sorted(s)))
def test_shared_concepts_are_spelled_alike(spelling):
    commands = _commands()
    having = {name for name, command in commands.items() if set(spelling) in visible_spellings(command).values()}
    assert having >= CONCEPTS[spelling]
    # and no command uses one of these names for something else
    for name, command in commands.items():
        for shown in visible_spellings(command).values():
            assert not (shown & spelling) or shown == set(spelling), (name, shown)


# spellings that meant two things (or differed from llama.cpp's); each survives only as a hidden alias
RETIRED = {"--data": "-f/--text", "--reference": "-m/--model", "--batch-size": "--chunks-per-batch (collect), "
           "--sessions-per-part (ingest)", "--threshold": "--dedup-threshold and --holdout-threshold",
           "--chunk-size": "-c/--ctx-size"}


def test_retired_spellings_are_hidden_and_source_means_one_thing():
    shown_by = {}
    for name, command in _commands().items():
        for shown in visible_spellings(command).values():
            for option in shown:
                shown_by.setdefault(option, set()).add(name)
    assert {option: shown_by[option] for option in RETIRED if option in shown_by} == {}
    assert shown_by["--source"] == {"logminer ingest"}  # an agent name; corpus overrides paths with --source-path
    assert shown_by["--chunks-per-batch"] == {"imatrix collect"}


def test_old_collect_command_line_means_the_new_one(tmp_path, monkeypatch):
    from imatrix.collect import pipeline

    text = tmp_path / "calib.txt"
    text.write_text("some text\n")
    settings = []
    monkeypatch.setattr(pipeline, "run_collect", lambda s, log: settings.append(s) or [])
    old = ["collect", "my-model", "--data", str(text), "--batch-size", "3", "-o", str(tmp_path / "x.gguf")]
    new = ["collect", "-m", "my-model", "-f", str(text), "--chunks-per-batch", "3", "-o", str(tmp_path / "x.gguf")]
    for args in (old, new):
        result = CliRunner().invoke(imatrix_main, args)
        assert result.exit_code == 0, result.output
    assert settings[0] == settings[1]
    assert (settings[0].model, settings[0].data, settings[0].batch_size) == ("my-model", Path(text), 3)
    CliRunner().invoke(imatrix_main, ["collect", "-f", str(text), "-o", str(tmp_path / "x.gguf")])
    assert settings[-1].model == "gemma3-270m"
    both = CliRunner().invoke(imatrix_main, ["collect", "a", "-m", "b", "-f", str(text), "-o", str(tmp_path / "x")])
    assert both.exit_code == 2 and "two models given: a and --model b" in both.output


@pytest.mark.parametrize("old, new", [
    (["inspect", "{a}", "--chunk-size", "64", "--json"], ["inspect", "{a}", "-c", "64", "--json"]),
    (["merge", "{a}", "-o", "{out}", "--chunk-size", "64"], ["merge", "{a}", "-o", "{out}", "--ctx-size", "64"]),
])
def test_old_file_command_spellings_parse_alike(tmp_path, old, new):
    (tmp_path / "a.gguf").write_bytes(b"")
    fill = {"a": str(tmp_path / "a.gguf"), "out": str(tmp_path / "o.gguf")}
    command = _commands()[f"imatrix {old[0]}"]
    parse = [command.make_context(old[0], [part.format(**fill) for part in args[1:]]).params for args in (old, new)]
    assert parse[0] == parse[1] and parse[0]["chunk_size"] == 64
