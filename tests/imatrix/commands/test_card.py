"""`imatrix card`'s command line: help, a card from a record (and its PNG beside it), a foreign record as one clear
error, and a usage error for a missing record (the card's contents: tests/imatrix/test_card.py)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from imatrix.cli import main
from imatrix.llamacpp.agent_report import write_report
from tests.imatrix.llamacpp.test_agent_report import small_record


def test_help_names_the_inputs():
    result = CliRunner().invoke(main, ["card", "--help"])
    assert result.exit_code == 0
    for option in ("EVAL_RECORD", "--imatrix", "--split-manifest", "--base-model", "--quantized-by", "--output"):
        assert option in result.output


def test_card_from_a_report_copies_its_png(tmp_path):
    write_report(small_record(), tmp_path / "run")
    result = CliRunner().invoke(main, ["card", str(tmp_path / "run.json"), "--base-model", "org/m", "-o",
                                       str(tmp_path / "card")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'card' / 'README.md'}" in result.output
    assert (tmp_path / "card" / "eval.png").read_bytes() == (tmp_path / "run.png").read_bytes()
    assert (tmp_path / "card" / "README.md").read_text().startswith("---\nbase_model: org/m\n")


def test_foreign_record_is_one_clear_error_and_missing_one_a_usage_error(tmp_path):
    other = tmp_path / "notes.json"
    other.write_text(json.dumps({"format": "other/1"}))
    result = CliRunner().invoke(main, ["card", str(other), "-o", str(tmp_path / "card")])
    assert result.exit_code == 1 and "notes.json: not an `imatrix eval` record" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "card" / "README.md").exists()
    result = CliRunner().invoke(main, ["card", str(tmp_path / "absent.json")])
    assert result.exit_code == 2 and "absent.json" in result.output
