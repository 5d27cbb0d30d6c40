"""LLM call logs: LiteLLM completion logs and request/response JSONL, one session per call."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import llm_logs
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(llm_logs.parse(SourceFile.open(path)))


def test_litellm_completion_log(example_logs):
    path = example_logs / "llm-log" / "litellm_completion_1757015040.416.json"
    assert llm_logs.sniff(SourceFile.open(path))
    (session,) = parse(path)
    assert session.session_id == "chatcmpl-3b9e7a41-2c5d-4f8e-9a1b-6d0c2e4f8a13"
    assert "".join(t.role[0] for t in session.turns) == "suata"  # 4 request messages + the response
    assert [c.name for t in session.turns for c in t.tool_calls] == ["str_replace_editor", "execute_bash"]
    assert session.turns[3].tool_call_id == "toolu_01Hq2Wn4Ek6R"
    assert session.model == "litellm_proxy/claude-sonnet-4-20250514" and session.tools


def test_request_response_lines(example_logs, tmp_path):
    path = example_logs / "llm-log" / "interactions_20251107_092915.jsonl"
    first, second = parse(path)
    assert (first.session_id, second.session_id) == ("chatcmpl-A1b2C3d4E5f6G7h8", "chatcmpl-I9j0K1l2M3n4O5p6")
    assert (first.line_start, first.line_end, first.records) == (1, 2, 2)
    assert "".join(t.role[0] for t in second.turns) == "suata" and second.turns[-1].text == "There are 42 Python files."
    lines = path.read_text().splitlines()
    odd = tmp_path / "odd.jsonl"  # a response with no request, a request with no response, a broken line
    odd.write_text("\n".join([lines[1], lines[0], "{not json", lines[2], lines[3]]) + "\n")
    events = parse(odd)
    assert [type(e).__name__ for e in events] == ["Rejected", "Rejected", "Session", "Session"]
    assert events[0].line == 1 and "without a preceding request" in events[0].reason
    assert events[1].line == 3 and events[2].flags == ["no_response"] and events[2].line_start == 2
    assert sum(e.records for e in events) == 5


# Real logs, counted with jq:
#   completion logs: turns = (.messages|length)+1 → 11 and 13;
#     calls = ([.messages[]|(.tool_calls//[])|length]|add) + (.response.choices[0].message.tool_calls//[]|length) → 5, 6
#   request log: 14 request lines (jq -c 'select(.type=="request")' F | wc -l) → 14 sessions;
#     turns = sum over requests of (.request_params.messages|length)+1 → 206;
#     calls = request tool_calls + response tool_calls → 91
@pytest.mark.parametrize("folder, name, sessions, turns, calls", [
    ("llm-completion-log", "openhands_sdk_claude-sonnet-4_1757015040.416.json", 1, 11, 5),
    ("llm-completion-log", "openhands_sdk_claude-sonnet-4_1757015046.707.json", 1, 13, 6),
    ("llm-request-log", "sweagent-pr1318_interactions_20251107_092915.jsonl", 14, 206, 91),
])
def test_real_logs(real_logs, folder, name, sessions, turns, calls):
    path = real_logs / folder / name
    events = parse(path)
    found = [e for e in events if isinstance(e, Session)]
    assert not [e for e in events if isinstance(e, Rejected)]
    assert (len(found), sum(len(s.turns) for s in found),
            sum(len(t.tool_calls) for s in found for t in s.turns)) == (sessions, turns, calls)
    assert sum(e.records for e in events) == sum(1 for line in path.read_text().splitlines() if line.strip())


def test_real_consecutive_completion_logs_share_a_prefix(real_logs):
    """The second call repeats the first call's conversation: dedup's job, the reader keeps both whole."""
    folder = real_logs / "llm-completion-log"
    (first,) = parse(folder / "openhands_sdk_claude-sonnet-4_1757015040.416.json")
    (second,) = parse(folder / "openhands_sdk_claude-sonnet-4_1757015046.707.json")
    assert [(t.role, t.text) for t in first.turns] == [(t.role, t.text) for t in second.turns[:11]]
    assert json.loads(first.turns[2].tool_calls[0].arguments)["command"] == "create"


def test_epoch_timestamps_become_iso(example_logs):
    (session,) = parse(example_logs / "llm-log" / "litellm_completion_1757015040.416.json")
    assert session.started_at == session.ended_at == "2025-09-04T19:44:00.416+00:00"  # date -u -d @1757015040.416
