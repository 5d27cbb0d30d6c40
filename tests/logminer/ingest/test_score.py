"""Score components computed by hand; tool schemas inferred from argument values."""

from __future__ import annotations

import json

import pytest

from logminer.ingest.score import infer_tools, score_session, session_metrics
from logminer.schema import Session, ToolCall, Turn


def agent_session(errors: int = 0) -> Session:
    turns = [Turn("user", "fix the bug")]
    for i in range(4):
        turns.append(Turn("assistant", f"try {i}", tool_calls=[ToolCall("bash", json.dumps({"cmd": "ls"}), id=str(i))]))
        turns.append(Turn("tool", "def f():\n    return 1", tool_call_id=str(i), is_error=i < errors))
    return Session("s", "test", "f", turns=turns)


def test_score_components_by_hand():
    score = score_session(agent_session(errors=2), tokens=128)
    # turns 9 → 1; tools 1 - 0.5/2 = 0.75; length 128/256 = 0.5; variety: 1 + 4 + 1 distinct of 9 = 6/9
    assert score.value == pytest.approx((1 + 0.75 + 0.5 + 6 / 9) / 4, abs=1e-6)
    assert score.reasons == ["tool error rate 0.50", "only 128 tokens", "repeated turn texts"]
    assert score.metrics["tool_calls"] == 4 and score.metrics["tool_errors"] == 2
    assert score.metrics["code_share"] == pytest.approx(8 / 13)  # 4 x (def, return) lines of 4x2 + 5 other lines


def test_no_assistant_scores_zero_and_broken_json_costs():
    assert score_session(Session("s", "t", "f", turns=[Turn("user", "hi")]), 10).reasons == ["no assistant turn"]
    plain = Session("s", "t", "f", turns=[Turn("user", "a"), Turn("assistant", "b")])
    assert score_session(plain, 256).value == pytest.approx((0.5 + 0.7 + 1 + 1) / 4)
    plain.flags.append("broken_tool_json")
    assert score_session(plain, 256).value == pytest.approx(0.8 * (0.5 + 0.7 + 1 + 1) / 4)


def test_non_latin_share():
    metrics = session_metrics(Session("s", "t", "f", turns=[Turn("user", "abcd данные")]), 3)
    assert metrics["non_latin_share"] == pytest.approx(6 / 10)


def test_infer_tools_merges_types_and_required_keys():
    session = Session("s", "t", "f", turns=[Turn("assistant", "", tool_calls=[
        ToolCall("edit", json.dumps({"path": "a.py", "line": 3, "opts": {"dry": True}, "tags": ["x"]})),
        ToolCall("edit", json.dumps({"path": "b.py", "line": 2.5})),
        ToolCall("patch", "*** raw patch text", arguments_valid=False),
    ])])
    assert infer_tools(session) == [
        {"type": "function", "function": {"name": "edit", "description": "", "parameters": {
            "type": "object",
            "properties": {
                "line": {"type": "number"},
                "opts": {"type": "object", "properties": {"dry": {"type": "boolean"}}, "required": ["dry"]},
                "path": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["line", "path"],
        }}},
        {"type": "function", "function": {"name": "patch", "description": "",
                                          "parameters": {"type": "object", "properties": {}}}},
    ]
