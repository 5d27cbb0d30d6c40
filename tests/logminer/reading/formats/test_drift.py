"""Format drift: unknown line types of a known format are counted once per type, and `logminer inspect` lists them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from logminer.cli import main
from logminer.reading.detect import read_inputs
from logminer.reading.formats.drift import UnknownTypes, unknown_reason, unknown_type
from logminer.schema import Rejected, Session


def test_reason_round_trips_and_groups_by_type():
    unknown = UnknownTypes("codex")
    for line, kind in [(3, "a"), (5, "b"), (9, "a")]:
        unknown.add(kind, line)
    events = list(unknown.skipped("f.jsonl"))
    assert [(e.line, e.reason, e.records) for e in events] == [(3, "unknown codex line type 'a'", 2),
                                                              (5, "unknown codex line type 'b'", 1)]
    assert unknown_type(unknown_reason("pi", "message:x")) == ("pi", "message:x")
    assert unknown_type("skipped: " + unknown_reason("gemini-cli", "y")) == ("gemini-cli", "y")  # as in report.json
    assert unknown_type("claude-code summary line: a session title, not a message") is None


def test_inspect_lists_unknown_line_types_in_text_and_json(tmp_path):
    rows = [{"timestamp": "t", "type": "world_state", "payload": {"full": True}},
            {"timestamp": "t", "type": "session_meta", "payload": {"id": "s"}},
            {"timestamp": "t", "type": "teleport", "payload": {}},
            {"timestamp": "t", "type": "response_item", "payload": {"type": "message", "role": "user",
                                                                   "content": "hi"}},
            {"timestamp": "t", "type": "response_item", "payload": {"type": "hologram"}},
            {"timestamp": "t", "type": "teleport", "payload": {}}]
    path = tmp_path / "rollout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{path}\tcodex\tsessions=1\tturns=1\ttool_calls=0\trecords=6"
    assert "  2 records skipped: unknown codex line type 'teleport'" in lines
    assert lines[-1] == "  unknown line types (format drift): response_item:hologram, teleport"
    result = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["unknown_types"] == ["response_item:hologram", "teleport"] and row["rejected"] == {}
    assert row["records"] == sum(row["skipped"].values()) + 2  # session_meta + the user message were read


JSONL_EXAMPLES = {
    "claude-code": "claude-code/-home-dev-projects-inventory/5b0e6f1c-2d7a-4c3e-9a41-7f2d8c1e0b93.jsonl",
    "openai-chat": "openai-chat/conversations.jsonl",
    "openai-responses": "openai-responses/exchanges.jsonl",
    "llm-log": "llm-log/interactions_20251107_092915.jsonl",
    "openhands-v1": "openhands-v1/count_lines.jsonl",
    "qwen-code": "qwen-code/projects/-home-dev-weather-cli/chats/0f3a9c1e-7b2d-4e8f-9a6b-5c4d3e2f1a0b.jsonl",
    "pi": "pi/--home-dev-weather-cli--/2026-03-01T10-00-00-000Z_5b8c2e1a-3d4f-4a6b-9c7d-2e1f0a9b8c7d.jsonl",
    "gemini-cli": "gemini-cli/tmp/c3f9c3f9/chats/session-2026-03-01T10-30-8e2f4a6c.jsonl",
}


@pytest.mark.parametrize("name", sorted(JSONL_EXAMPLES))
def test_a_junk_first_line_does_not_hide_the_format(example_logs, tmp_path, name):
    """Detection reads several lines: a cut-off first record or a stray note is one rejected line, not a lost file."""
    original = example_logs / JSONL_EXAMPLES[name]
    lines = original.read_text().splitlines()
    clean = [event for _, _, event in read_inputs([str(original)])]
    for junk in ('{"cut off in the middle": "of a rec', "# exported 2026-03-01"):
        path = tmp_path / original.name
        path.write_text("\n".join([junk, *lines]) + "\n")
        events = list(read_inputs([str(path)]))
        assert {fmt for _, fmt, _ in events} == {name}, junk
        rejected = [e for _, _, e in events if isinstance(e, Rejected)]
        assert [(e.line, e.records) for e in rejected] == [(1, 1)]
        assert sum(isinstance(e, Session) for _, _, e in events) == sum(isinstance(e, Session) for e in clean)
