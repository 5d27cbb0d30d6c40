"""Cleaning: tool calls paired with results, orphans and empty turns dropped, truncation at paired boundaries."""

from __future__ import annotations

import json
from collections import Counter

from logminer.ingest.clean import boundaries, clean_session, truncate_to_tokens
from logminer.rendering.chat import count_tokens, render_plain
from logminer.schema import Session, ToolCall, Turn


def call(name: str, call_id: str | None, valid: bool = True) -> ToolCall:
    return ToolCall(name, json.dumps({"x": 1}) if valid else "{broken", id=call_id, arguments_valid=valid)


def session(*turns: Turn) -> Session:
    return Session("s", "test", "f", turns=list(turns))


def test_pairs_by_id_drops_orphans_and_unanswered_calls():
    s = session(
        Turn("user", "go"),
        Turn("assistant", "", tool_calls=[call("a", "1"), call("b", "2")]),
        Turn("tool", "ra", tool_call_id="1"),
        Turn("tool", "stray", tool_call_id="99"),
        Turn("tool", "again", tool_call_id="1"),
        Turn("assistant", "done"),
    )
    counts: Counter[str] = Counter()
    clean_session(s, counts)
    assert [(t.role, t.text) for t in s.turns] == [("user", "go"), ("assistant", ""), ("tool", "ra"), ("assistant", "done")]
    assert [c.name for c in s.turns[1].tool_calls] == ["a"]
    assert s.turns[2].name == "a"
    assert counts == Counter({"orphan_tool_result_dropped": 2, "unanswered_tool_call_dropped": 1})


def test_pairs_by_order_when_ids_are_missing():
    s = session(
        Turn("user", "go"),
        Turn("assistant", "", tool_calls=[call("a", None), call("b", None)]),
        Turn("tool", "ra"),
        Turn("tool", "rb"),
    )
    counts: Counter[str] = Counter()
    clean_session(s, counts)
    calls = s.turns[1].tool_calls
    assert [t.tool_call_id for t in s.turns[2:]] == [calls[0].id, calls[1].id] == ["call_2_0", "call_3_1"]
    assert [t.name for t in s.turns[2:]] == ["a", "b"]
    assert counts == Counter({"tool_result_paired_by_order": 2})


def test_uncalled_output_becomes_user_turn_and_empty_turns_go():
    s = session(Turn("user", "hi"), Turn("assistant", "  "), Turn("tool", "$ ls\nx", name="aider"), Turn("system", ""))
    counts: Counter[str] = Counter()
    clean_session(s, counts)
    assert [(t.role, t.text) for t in s.turns] == [("user", "hi"), ("user", "[tool output: aider]\n$ ls\nx")]
    assert counts == Counter({"empty_turn_dropped": 2, "uncalled_tool_output_as_user": 1})


def test_assistant_left_empty_by_dropped_calls_is_removed_and_broken_json_flagged():
    s = session(
        Turn("user", "go"),
        Turn("assistant", "", tool_calls=[call("a", "1")]),
        Turn("assistant", "", tool_calls=[call("b", "2", valid=False)]),
        Turn("tool", "rb", tool_call_id="2"),
    )
    counts: Counter[str] = Counter()
    clean_session(s, counts)
    assert [t.role for t in s.turns] == ["user", "assistant", "tool"]
    assert s.turns[1].tool_calls[0].arguments == "{broken"
    assert s.flags == ["broken_tool_json"]
    assert counts == Counter({"unanswered_tool_call_dropped": 1, "empty_turn_dropped": 1, "broken_tool_json_kept": 1})


def long_session() -> Session:
    turns = [Turn("user", "start")]
    for i in range(6):
        turns.append(Turn("assistant", f"step {i}", tool_calls=[call("run", f"c{i}")]))
        turns.append(Turn("tool", "output " * 20, tool_call_id=f"c{i}"))
    return session(*turns)


def test_boundaries_never_split_a_call_from_its_result():
    assert boundaries(long_session().turns) == [1, 3, 5, 7, 9, 11, 13]


def test_truncate_keeps_longest_paired_prefix_under_budget():
    def count(s: Session) -> int:
        return count_tokens([render_plain(s)])[0]

    full = long_session()
    budget = count(session(*full.turns[:7])) + 5  # room for 3 call/result pairs, not 4
    counts: Counter[str] = Counter()
    out = truncate_to_tokens(long_session(), budget, count, counts)
    assert len(out.turns) == 7 and count(out) <= budget
    assert out.turns[-1].role == "tool" and out.flags == ["truncated"]
    assert counts == Counter({"session_truncated": 1, "turns_truncated": 6})
    short = long_session()
    assert truncate_to_tokens(short, 10**6, count).turns == short.turns and short.flags == []
    assert truncate_to_tokens(long_session(), 1, count).turns == []
