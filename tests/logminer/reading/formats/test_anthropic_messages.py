"""Anthropic Messages reader: system prompt, thinking, tool_use / tool_result (is_error), request/response pairs."""

from __future__ import annotations

import json

from logminer.reading.formats import anthropic_messages
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(anthropic_messages.parse(SourceFile.open(path)))


def test_requests_document(example_logs):
    path = example_logs / "anthropic-messages" / "requests.json"
    assert anthropic_messages.sniff(SourceFile.open(path))
    paired, plain = parse(path)
    assert paired.session_id == "msg_01Wq8Xy3Zr5Tn7Vb" and paired.model == "claude-sonnet-4-5-20250929"
    assert "".join(t.role[0] for t in paired.turns) == "suata"
    assert paired.turns[0].text == "You are a shell assistant."
    assert paired.turns[2].reasoning == "df -h / answers this." and paired.turns[2].text == ""
    assert paired.turns[3].name == "bash" and paired.turns[4].text == "22 GB are free on / (77% used)."
    assert paired.tools[0]["function"]["parameters"]["required"] == ["command"]  # input_schema → parameters
    # tool_result with is_error, followed by user text in the same message: tool turn, then user turn
    assert "".join(t.role[0] for t in plain.turns) == "uatuata"
    error_result, follow_up = plain.turns[2], plain.turns[3]
    assert error_result.is_error and error_result.text == "ENOENT: no such file"
    assert error_result.tool_call_id == "toolu_01Rf5Gh7Jk9L" and follow_up.text == "Maybe it is config.yml?"
    assert not plain.turns[5].is_error
    text = path.read_text()
    assert (paired.line_start, plain.line_end) == (2, len(text.splitlines()) - 1)
    assert text.encode()[plain.byte_start:plain.byte_end].decode().startswith('{\n    "model": "claude-haiku-4-5"')


def test_truncated_array_keeps_the_complete_elements(example_logs, tmp_path):
    text = (example_logs / "anthropic-messages" / "requests.json").read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: int(len(text) * 0.8)])
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Session", "Rejected"]
    assert events[1].reason.startswith("invalid JSON in array element") and events[1].line > 72


def test_unknown_role_is_rejected(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"system": "s", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    bad = {"system": "s", "messages": [{"role": "narrator", "content": "once upon a time"}]}
    path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    events = parse(path)
    assert isinstance(events[0], Session) and isinstance(events[1], Rejected) and events[1].line == 2


def test_truncated_single_document_is_one_rejection(tmp_path):
    document = {"system": "s", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                             {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]}
    text = json.dumps(document, indent=2)
    path = tmp_path / "cut.json"
    path.write_text(text[:-40])
    (rejected,) = parse(path)
    assert isinstance(rejected, Rejected) and rejected.reason.startswith("invalid JSON document")
    assert rejected.line == len(text[:-40].splitlines()) and rejected.records == 1
