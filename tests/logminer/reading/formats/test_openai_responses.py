"""OpenAI Responses reader: logged exchanges, item streams, reasoning kept, encrypted content dropped."""

from __future__ import annotations

import dataclasses
import json

from logminer.reading.formats import openai_responses
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(openai_responses.parse(SourceFile.open(path)))


def test_logged_exchanges(example_logs):
    path = example_logs / "openai-responses" / "exchanges.jsonl"
    assert openai_responses.sniff(SourceFile.open(path))
    first, second = parse(path)
    assert first.session_id == "resp_68a1f3c9e2d04b7a" and first.model == "gpt-5-mini"
    assert [t.role for t in first.turns] == ["system", "user", "assistant"]
    assert first.turns[2].reasoning == "I need the commit log first."
    assert first.turns[2].tool_calls[0].id == "call_Gt4mX8pQ" and first.tools[0]["function"]["name"] == "git_log"
    assert "".join(t.role[0] for t in second.turns) == "uata"
    assert second.turns[2].tool_call_id == "call_Gt4mX8pQ" and second.turns[2].name == "git_log"
    assert second.turns[2].text.startswith("e4b2c1d fix: handle empty config")
    assert second.turns[3].text.startswith("1. Empty configs no longer crash.")
    assert "gAAAAAB" not in json.dumps([dataclasses.asdict(s) for s in (first, second)])
    assert sum(s.records for s in (first, second)) == 2


def test_item_stream_with_a_broken_line(tmp_path):
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ping"}]},
        {"type": "function_call", "call_id": "c1", "name": "probe", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "pong"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It answered pong."}]},
    ]
    lines = [json.dumps(i) for i in items]
    lines.insert(2, '{"type": "function_call_output", "call_id": ')
    lines.insert(3, '{"type": "teleport", "call_id": "c1"}')
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert openai_responses.sniff(SourceFile.open(path))
    events = parse(path)
    rejected = [(e.line, e.reason) for e in events if isinstance(e, Rejected)]
    assert rejected[0][0] == 3 and rejected[1] == (4, "unknown Responses item type 'teleport'")
    (session,) = [e for e in events if isinstance(e, Session)]
    assert "".join(t.role[0] for t in session.turns) == "uata" and session.records == 4
    assert sum(e.records for e in events) == 6


def test_a_rejected_line_of_several_items_adds_none_of_them(tmp_path):
    ask = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ping"}]}
    answer = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]}
    stray = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "half a line"}]}
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in [ask, [stray, {"type": "teleport"}], answer]) + "\n")
    events = parse(path)
    assert [(e.line, e.reason) for e in events if isinstance(e, Rejected)] == [
        (2, "unknown Responses item type 'teleport'")]
    (session,) = [e for e in events if isinstance(e, Session)]
    assert [t.text for t in session.turns] == ["ping", "pong"] and session.records == 2


def test_other_formats_with_a_type_field_are_not_items(example_logs):
    part = {"id": "prt_1", "sessionID": "ses_1", "messageID": "msg_1", "type": "reasoning", "text": "thinking"}
    assert not openai_responses.sniff(SourceFile("part.json", json.dumps(part).encode()))
    codex_line = {"timestamp": "t", "type": "response_item", "payload": {"type": "message", "role": "user",
                                                                        "content": "hi"}}
    assert not openai_responses.sniff(SourceFile("rollout.jsonl", json.dumps(codex_line).encode()))
