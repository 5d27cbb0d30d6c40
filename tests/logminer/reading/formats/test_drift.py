"""Format drift: unknown line types of a known format are counted once per type, and `logminer inspect` lists them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from logminer.cli import main
from logminer.reading.formats.drift import UnknownTypes, unknown_reason, unknown_type


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
