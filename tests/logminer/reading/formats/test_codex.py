"""Codex rollout reader: response items only, duplicates skipped, compaction segments, opaque blobs dropped."""

from __future__ import annotations

import dataclasses
import gzip
import json

import pytest

from logminer.reading.formats import codex
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

SESSION_ID = "019a4f2e-8c1d-7b3a-9e5f-2d6c8a0b1e47"


def fixture_path(example_logs):
    return example_logs / "codex" / "2025" / "11" / "04" / f"rollout-2025-11-04T14-20-00-{SESSION_ID}.jsonl.gz"


def parse(path) -> list:
    return list(codex.parse(SourceFile.open(path)))


def nonblank_lines(path) -> int:
    return sum(1 for line in SourceFile.open(path).data.split(b"\n") if line.strip())


def test_fixture_session_and_compaction(example_logs):
    path = fixture_path(example_logs)
    assert codex.sniff(SourceFile.open(path))
    events = parse(path)
    before, after = [e for e in events if isinstance(e, Session)]
    assert before.session_id == SESSION_ID and before.model == "gpt-5-codex"
    assert "".join(t.role[0] for t in before.turns) == "suuatatatataua"
    assert before.turns[0].text.startswith("<permissions instructions>")  # developer → system
    first_answer = before.turns[3]
    assert first_answer.reasoning.startswith("**Inspecting header parsing**")
    assert first_answer.text == "I'll look at how the header row is read."
    names = [c.name for t in before.turns for c in t.tool_calls]
    assert names == ["shell", "apply_patch", "shell", "shell", "web_search"]
    patch = before.turns[5].tool_calls[0]
    assert json.loads(patch.arguments)["input"].startswith("*** Begin Patch")  # free-form input kept whole
    broken = before.turns[7].tool_calls[0]
    assert not broken.arguments_valid and before.flags == ["broken_tool_json"]
    assert before.turns[8].tool_call_id == broken.id
    assert before.metadata["git_commit"] == "9c4e2b7a1f3d5e6c8b0a2d4f6e8c0a1b3d5f7e9c"  # SHAs survive
    assert after.session_id == f"{SESSION_ID}/compact-1" and after.parent_session_id == SESSION_ID
    assert "".join(t.role[0] for t in after.turns) == "suuua"  # the replacement history, then the new answer
    assert after.turns[-1].text.startswith("CPython documents this")
    skipped = {e.reason: e.records for e in events if isinstance(e, Skipped)}
    assert skipped == {codex.SKIP_EVENT: 5, codex.SKIP_GHOST: 1}
    assert sum(e.records for e in events) == nonblank_lines(path) == 27
    assert (before.line_start, before.line_end, after.line_start, after.line_end) == (1, 23, 24, 26)


def test_encrypted_content_never_reaches_a_session(example_logs):
    text = json.dumps([dataclasses.asdict(e) for e in parse(fixture_path(example_logs))])
    assert "gAAAAAB" not in text


def test_malformed_and_foreign_lines_are_rejected_with_line_numbers(example_logs, tmp_path):
    lines = gzip.decompress(fixture_path(example_logs).read_bytes()).decode().splitlines()
    lines.insert(4, '{"timestamp": "2025-11-04T14:20:09.112Z", "type": "response_item", "payload": {"type": ')
    lines.insert(6, '{"hello": "world"}')
    lines.insert(8, '{"timestamp": "t", "type": "response_item", "payload": {"type": "hologram"}}')
    path = tmp_path / "rollout.jsonl"
    path.write_text("\n".join(lines) + "\n")
    events = parse(path)
    rejected = [(e.line, e.reason.split(":")[0]) for e in events if isinstance(e, Rejected)]
    assert rejected == [(5, "invalid JSON"), (7, "not a codex rollout line (expected {timestamp, type, payload})")]
    unknown = [(e.line, e.reason) for e in events if isinstance(e, Skipped) and "unknown" in e.reason]
    assert unknown == [(9, "unknown codex line type 'response_item:hologram'")]  # drift: counted, not rejected
    assert [len(s.turns) for s in events if isinstance(s, Session)] == [14, 5]
    assert sum(e.records for e in events) == 30


# Real rollouts (text sanitised by their author, structure real). Counted with jq over response_item payloads:
#   jq -r 'select(.type=="response_item")|.payload|[.type,.role]|@tsv' F | sort | uniq -c
# 12-40-23: 10 developer + 10 user messages, 104 outputs (82 function_call_output + 22 custom_tool_call_output),
#   105 calls (82 function_call + 22 custom_tool_call + 1 web_search_call); assistant turns = 82: a turn starts at an
#   assistant message or call whose previous non-reasoning item is not assistant-side, or at a message after a call
#   (computed from `jq -r` of the item kinds piped to a 6-line counter). 10+10+104+82 = 206 turns.
#   279 event_msg lines (jq -c 'select(.type=="event_msg")' F | wc -l) are skipped.
# 13-19-38: 4 developer + 4 user messages, 1 assistant message + 1 function_call (one turn): 9 turns, 1 call.
# Every function_call's arguments is "[REDACTED_ARGUMENTS ...]", not JSON → broken_tool_json.
@pytest.mark.parametrize("name, turns, calls, events_skipped", [
    ("localpush_redacted_rollout-2026-02-23T12-40-23-019c8a4c-ed82-79a1-aa28-7738fc5ab61a.jsonl", 206, 105, 279),
    ("localpush_redacted_rollout-2026-02-23T13-19-38-019c8a70-dda7-7f33-98ea-f30553347322.jsonl", 9, 1, 6),
])
def test_real_rollouts(real_logs, name, turns, calls, events_skipped):
    path = real_logs / "codex-rollout" / name
    events = parse(path)
    (session,) = [e for e in events if isinstance(e, Session)]
    assert session.session_id == name.removesuffix(".jsonl")[-36:]  # the session_meta id, a UUID, unchanged
    assert len(session.turns) == turns and sum(len(t.tool_calls) for t in session.turns) == calls
    assert session.model == "gpt-5.3-codex" and "broken_tool_json" in session.flags
    assert [e.records for e in events if isinstance(e, Skipped)] == [events_skipped]
    assert sum(e.records for e in events) == nonblank_lines(path)
    assert not [e for e in events if isinstance(e, Rejected)]
    assert "REDACTED_ENCRYPTED_CONTENT" not in json.dumps(dataclasses.asdict(session))
