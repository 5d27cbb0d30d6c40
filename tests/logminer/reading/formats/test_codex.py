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


def envelope(kind, payload, timestamp="2026-08-03T10:48:56.000Z"):
    return json.dumps({"timestamp": timestamp, "type": kind, "payload": payload})


def test_0144_line_types_and_drift(tmp_path):
    """world_state first, new response items, inter-agent lines, and line types nobody knows yet: still a rollout."""
    lines = [envelope("world_state", {"full": True, "state": {"agents_md": {"text": "AGENTS"}}}),
             envelope("brand_new_kind", {"x": 1}),
             envelope("brand_new_kind", {"x": 2}),
             envelope("session_meta", {"id": "s-1", "cwd": "/w", "cli_version": "0.146.0"}),
             envelope("turn_context", {"model": "gpt-5.6-luna"}),
             envelope("response_item", {"type": "message", "role": "user", "content": [
                 {"type": "input_text", "text": "draw a cat"}]}),
             envelope("response_item", {"type": "image_generation_call", "id": "ig-1", "status": "completed",
                                        "revised_prompt": "a cat", "result": "iVBORw0KGgo="}),
             envelope("response_item", {"type": "tool_search_call", "call_id": "ts-1",
                                        "arguments": {"query": "svg"}}),
             envelope("response_item", {"type": "tool_search_output", "call_id": "ts-1", "tools": []}),
             envelope("inter_agent_communication_metadata", {"trigger_turn": True}),
             envelope("response_item", {"type": "agent_message", "author": "/root/worker", "recipient": "/root",
                                        "content": [{"type": "input_text", "text": "worker: done"}]}),
             envelope("inter_agent_communication", {"author": "/root/b", "recipient": "/root", "content": "b: ok",
                                                    "trigger_turn": False}),
             envelope("event_msg", {"type": "item_completed", "item": {"type": "AgentMessage"}}),
             envelope("response_item", {"type": "hologram_call", "id": "h"}),
             envelope("response_item", {"type": "message", "role": "assistant", "content": [
                 {"type": "output_text", "text": "Here is the cat."}]})]
    path = tmp_path / "rollout-2026-08-03T10-48-56-s-1.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert codex.sniff(SourceFile.open(path))
    events = parse(path)
    (session,) = [e for e in events if isinstance(e, Session)]
    assert session.session_id == "s-1" and session.model == "gpt-5.6-luna"
    assert [c.name for t in session.turns for c in t.tool_calls] == ["image_generation", "tool_search"]
    assert json.loads(session.turns[1].tool_calls[0].arguments) == {"prompt": "a cat"}  # the image itself is dropped
    assert [t.text for t in session.turns if t.role == "user"] == ["draw a cat", "worker: done", "b: ok"]
    assert session.turns[-1].text == "Here is the cat."
    reasons = {e.reason: e.records for e in events if isinstance(e, Skipped)}
    assert reasons == {codex.SKIP_REASONS["world_state"]: 1, codex.SKIP_REASONS["event_msg"]: 1,
                       codex.SKIP_REASONS["inter_agent_communication_metadata"]: 1,
                       "unknown codex line type 'brand_new_kind'": 2,
                       "unknown codex line type 'response_item:hologram_call'": 1}
    assert not [e for e in events if isinstance(e, Rejected)]
    assert sum(e.records for e in events) == len(lines)


def test_sniff_wants_mostly_envelopes_and_a_core_type(tmp_path):
    only_new = tmp_path / "new.jsonl"
    only_new.write_text("\n".join(envelope("world_state", {"full": True}) for _ in range(3)) + "\n")
    assert not codex.sniff(SourceFile.open(only_new))  # no core rollout line: not enough to call it codex
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([json.dumps({"a": 1}), json.dumps({"b": 2}), json.dumps({"c": 3}),
                                envelope("session_meta", {"id": "x"})]) + "\n")
    assert not codex.sniff(SourceFile.open(mixed))


# Composite 0.146 fixture (MANIFEST.tsv): 3 response_item messages (user/assistant/developer) and 8 tool calls
# (2 custom_tool_call + 2 function_call + 2 tool_search_call + web_search_call + image_generation_call), 2
# agent_message items, 6 `compacted` lines: one session per compaction window (7, as for every rollout), the later
# ones starting with their replacement history. Every line is read or skipped with a named reason.
def test_real_2026_composite(real_logs):
    path = real_logs / "codex-rollout-2026" / "agentsessions_small_composite.jsonl"
    events = parse(path)
    found = [e for e in events if isinstance(e, Session)]
    assert len(found) == 7 and all(s.session_id.startswith("019fc8be-3658-7ca3-9e29-000000000000") for s in found)
    assert sum(len(t.tool_calls) for s in found for t in s.turns) == 8
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    in_file = [r["payload"] for r in rows if r["type"] == "response_item"]
    assert sum(p["type"] == "message" for p in in_file) == 3 and sum(p["type"] == "agent_message" for p in in_file) == 2
    reasons = {e.reason for e in events if isinstance(e, Skipped)}
    assert not [r for r in reasons if "unknown" in r] and not [e for e in events if isinstance(e, Rejected)]
    assert sum(e.records for e in events) == nonblank_lines(path) == len(rows)
