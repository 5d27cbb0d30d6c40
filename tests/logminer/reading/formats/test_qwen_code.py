"""Qwen Code reader: JSONL chat records (parentUuid chain, Gemini parts); Gemini CLI files are not its own."""

from __future__ import annotations

import json

from logminer.reading.detect import detect_format
from logminer.reading.formats import claude_code, qwen_code
from logminer.reading.registry import load_formats
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped

JSONL = ("qwen-code", "projects", "-home-dev-weather-cli", "chats", "0f3a9c1e-7b2d-4e8f-9a6b-5c4d3e2f1a0b.jsonl")
CHAT = ("gemini-cli", "qwen-tmp", "9f86d081884c7d65", "chats", "session-2025-08-20T07-30-c81e728d.json")


def test_jsonl_records(example_logs):
    source = SourceFile.open(example_logs.joinpath(*JSONL))
    assert qwen_code.sniff(source)
    [session] = list(qwen_code.parse(source))
    # 8 records: 2 system (not turns), user, assistant + call, tool_result, assistant + call, failed tool_result,
    # assistant
    assert "".join(t.role[0] for t in session.turns) == "uatata" and session.records == 8
    assert session.turns[1].reasoning == "The user wants Celsius by default."
    assert session.turns[1].text == "Let me look at how units are handled."
    assert json.loads(session.turns[1].tool_calls[0].arguments) == {"path": "src", "pattern": "units"}
    assert [(t.tool_call_id, t.is_error, t.text) for t in session.turns if t.role == "tool"][1] == (
        "call_q2", True, "File changed on disk since it was read.")
    assert session.session_id == "0f3a9c1e-7b2d-4e8f-9a6b-5c4d3e2f1a0b" and session.model == "qwen3-coder-plus"
    assert session.metadata["cwd"] == "/home/dev/weather-cli"


def test_rewound_branch_is_not_a_turn(example_logs, tmp_path):
    records = [json.loads(line) for line in example_logs.joinpath(*JSONL).read_text().splitlines()]
    abandoned = dict(records[7], uuid="u-07b", parentUuid="u-06", message={"role": "model", "parts": [{"text": "old"}]})
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records[:7] + [abandoned] + records[7:]))
    [session] = list(qwen_code.parse(SourceFile.open(path)))
    assert "old" not in [t.text for t in session.turns] and session.records == 9


def test_gemini_cli_files_are_not_claimed(example_logs):
    """The single-JSON chat file (Gemini CLI heritage) and Gemini CLI's JSONL recording belong to gemini_cli."""
    recording = next((example_logs / "gemini-cli" / "tmp").rglob("session-*.jsonl"))
    for path in (example_logs.joinpath(*CHAT), recording):
        source = SourceFile.open(path)
        assert not qwen_code.sniff(source)
        assert detect_format(source, load_formats()).name == "gemini-cli"


def test_unknown_record_type_is_counted_not_rejected(example_logs, tmp_path):
    lines = example_logs.joinpath(*JSONL).read_text().splitlines()
    record = dict(json.loads(lines[2]), type="hologram", uuid="u-x")
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([*lines, json.dumps(record), json.dumps(record)]) + "\n")
    events = list(qwen_code.parse(SourceFile.open(path)))
    assert not [e for e in events if isinstance(e, Rejected)]
    assert [(e.reason, e.records) for e in events if isinstance(e, Skipped)] == [
        ("unknown qwen-code line type 'hologram'", 2)]
    assert sum(e.records for e in events) == len(lines) + 2


def test_claude_code_and_qwen_are_told_apart(example_logs):
    """Qwen records look like Claude Code's (sessionId, uuid, parentUuid): qwen_code sniffs first in the registry."""
    claude = next((example_logs / "claude-code").rglob("*.jsonl"))
    assert not qwen_code.sniff(SourceFile.open(claude))
    formats = load_formats()
    assert detect_format(SourceFile.open(example_logs.joinpath(*JSONL)), formats) is qwen_code.FORMAT
    assert detect_format(SourceFile.open(claude), formats) is claude_code.FORMAT


def test_bad_lines(tmp_path, example_logs):
    lines = example_logs.joinpath(*JSONL).read_text().splitlines()
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines[:3] + ["{bad", json.dumps({"type": "user"})] + lines[3:]) + "\n")
    events = list(qwen_code.parse(SourceFile.open(path)))
    assert [e.line for e in events if isinstance(e, Rejected)] == [4, 5]
    assert sum(e.records for e in events) == len(lines) + 2
