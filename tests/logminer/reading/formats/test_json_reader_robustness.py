"""Every JSON reader of this group, called directly (not through detection) on random JSON lines and documents:
no exception escapes parse(), sniff() answers a bool, and the events' records add up to the non-blank lines."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logminer.reading.formats import (
    anthropic_messages,
    claude_code,
    claude_hooks,
    codex,
    llm_logs,
    openai_chat,
    openai_responses,
    sharegpt,
)
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

READERS = [anthropic_messages, claude_code, claude_hooks, codex, llm_logs, openai_chat, openai_responses, sharegpt]
LINE_READERS = {claude_code, claude_hooks, codex}  # JSONL only: one record per non-blank line
KEYS = ["role", "content", "type", "message", "messages", "tool_calls", "function", "arguments", "id", "uuid",
        "parentUuid", "logicalParentUuid", "sessionId", "isSidechain", "agentId", "payload", "timestamp", "text",
        "tool_use_id", "call_id", "output", "input", "name", "conversations", "from", "value", "response",
        "choices", "request_params", "request", "ts", "event", "replacement_history", "summary", "system"]
WORDS = st.sampled_from(["user", "assistant", "tool", "system", "developer", "message", "tool_use", "tool_result",
                         "thinking", "text", "function_call", "function_call_output", "reasoning", "response_item",
                         "event_msg", "session_meta", "compacted", "request", "response", "human", "gpt",
                         "function_call", "observation", "u1", "u2", "m1"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | WORDS | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=6),
    max_leaves=25,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("reader", READERS, ids=lambda m: m.NAME)
@SETTINGS
@given(values=st.lists(VALUES, min_size=1, max_size=6), broken=st.booleans())
def test_random_json_lines(reader, values, broken):
    lines = [json.dumps(v) for v in values]
    if broken:
        lines.insert(len(lines) // 2, lines[0][: max(1, len(lines[0]) // 2)] + "{")
    source = SourceFile("fuzz.jsonl", ("\n".join(lines) + "\n").encode())
    assert reader.sniff(source) in (True, False)
    events = list(reader.parse(source))
    assert all(isinstance(e, (Session, Skipped, Rejected)) and e.records >= 1 for e in events)
    if reader in LINE_READERS:
        assert sum(e.records for e in events) == len(lines)


@pytest.mark.parametrize("reader", READERS, ids=lambda m: m.NAME)
@SETTINGS
@given(value=VALUES)
def test_random_json_documents(reader, value):
    source = SourceFile("fuzz.json", json.dumps(value, indent=1).encode())
    assert reader.sniff(source) in (True, False)
    assert all(isinstance(e, (Session, Skipped, Rejected)) for e in reader.parse(source))
