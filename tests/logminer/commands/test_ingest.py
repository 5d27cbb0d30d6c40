"""`logminer ingest | inspect | validate` commands: option spellings (old --batch-size still parses as
--sessions-per-part), inputs resolved from RAW / --input / --source, a part size that does not change the table,
and per-file inspect rows that add up."""

from __future__ import annotations

import json

import click
import polars as pl
import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.commands.ingest import _resolve_inputs, _tokenizer_name, _where, ingest


def test_part_size_spellings_parse_alike(tmp_path):
    common = ["raw.jsonl", "-o", str(tmp_path / "s.parquet")]
    new = ingest.make_context("ingest", [*common, "--sessions-per-part", "7"]).params
    assert new == ingest.make_context("ingest", [*common, "--batch-size", "7"]).params and new["batch_size"] == 7
    help_text = CliRunner().invoke(main, ["ingest", "--help"]).output
    assert "--sessions-per-part" in help_text and "--batch-size" not in help_text
    assert "UTF-8 bytes / 4" in help_text  # what the code counts without a tokenizer


def test_part_size_does_not_change_the_sessions_table(example_logs, tmp_path):
    runner = CliRunner()
    tables = {}
    for size in ("1", "2000"):
        out = tmp_path / size / "sessions.parquet"
        result = runner.invoke(main, ["ingest", str(example_logs / "codex"), str(example_logs / "aider"), "-o",
                                      str(out), "--sessions-per-part", size, "-j", "1"])
        assert result.exit_code == 0, result.output
        tables[size] = pl.read_parquet(out)
    assert tables["1"].height >= 2 and tables["1"].equals(tables["2000"])


def test_inputs_come_from_raw_then_input_then_source():
    assert _resolve_inputs(("a",), ("b",), "codex") == ["a", "b"]
    with pytest.raises(click.UsageError, match="--source AGENT"):
        _resolve_inputs((), (), None)
    with pytest.raises(click.ClickException, match="unknown agent"):
        _resolve_inputs((), (), "no-such-agent")


def test_report_names_only_the_tokenizer_file():
    assert _tokenizer_name("/home/someone/models/gemma/") == "gemma"
    assert _tokenizer_name("/home/someone/tok.json") == "tok.json" and _tokenizer_name(None) is None


def test_rejection_line_lists():
    assert _where([]) == "" and _where([0]) == " (whole file)" and _where([4]) == " (line 4)"
    assert _where(list(range(1, 11)), shown=3) == " (lines 1, 2, 3, ...)"


def test_inspect_json_rows_add_up(example_logs):
    result = CliRunner().invoke(main, ["inspect", str(example_logs / "codex"), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows and {row["format"] for row in rows} == {"codex"}
    for row in rows:
        assert row["sessions"] >= 1 and row["records"] >= sum(row["rejected"].values()) + sum(row["skipped"].values())


def test_validate_refuses_a_file_that_is_not_a_sessions_table(tmp_path):
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "notes.parquet").write_text("not parquet")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "notes.parquet"), "--tokenizer",
                                       str(tmp_path / "tokenizer.json")])
    assert result.exit_code == 1 and "notes.parquet: not a sessions table" in result.output
