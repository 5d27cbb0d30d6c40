"""Goose's legacy one-JSONL-file-per-session layout."""

from __future__ import annotations

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.logminer.reading.formats.test_goose import write_legacy


def test_legacy_session_file(tmp_path):
    result = read(write_legacy(tmp_path / "hello.jsonl"))
    assert result.formats == {"goose-jsonl"} and not result.rejected
    assert [t.role for t in result.sessions[0].turns] == ["user", "assistant", "tool", "assistant"]
    assert result.sessions[0].session_id == "hello" and result.records == 5



def test_broken_line_is_rejected_and_the_rest_kept(tmp_path):
    path = write_legacy(tmp_path / "hello.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], '{"role": "user", "created": 1, "content": [', *lines[2:]]) + "\n")
    result = read(path)
    assert result.records == 6 and len(result.rejected) == 1 and result.rejected[0].line == 3
    assert len(result.sessions[0].turns) == 4


def test_planted_secret_never_reaches_output(tmp_path):
    (tmp_path / "in").mkdir()
    write_legacy(tmp_path / "in" / "old.jsonl", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "in", tmp_path / "out")
