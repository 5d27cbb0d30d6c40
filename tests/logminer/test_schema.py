"""Record types: a Session survives the parquet round trip field for field (tool calls, flags, metadata, unicode),
and tool-call arguments become canonical JSON or stay verbatim, flagged."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from logminer.schema import (
    SESSION_SCHEMA,
    Session,
    ToolCall,
    Turn,
    canonical_arguments,
    frame_to_sessions,
    row_to_session,
    session_to_row,
    sessions_to_frame,
)


def full_session() -> Session:
    return Session(
        session_id="s-1", agent="claude-code", source_file="logs/a.jsonl", line_start=3, line_end=9, byte_start=10,
        byte_end=900, records=7, model="m", started_at="2026-01-01T00:00:00Z", ended_at="2026-01-01T00:05:00Z",
        parent_session_id="s-0", tools=[{"type": "function", "function": {"name": "bash"}}],
        flags=["broken_tool_json"], metadata={"repo": "o/r", "ünï": [1, 2]},
        turns=[Turn("system", "be brief"), Turn("user", "fix ✓ the bug", timestamp="2026-01-01T00:00:01Z"),
               Turn("assistant", "", reasoning="think", tool_calls=[
                   ToolCall("bash", '{"cmd": "ls"}', id="c1"), ToolCall("edit", "{not json", id="c2",
                                                                         arguments_valid=False)]),
               Turn("tool", "out", tool_call_id="c1", name="bash", is_error=True)],
    )


def test_parquet_round_trip_keeps_every_field(tmp_path):
    sessions = [full_session(), Session("s-2", "codex", "b.jsonl")]
    sessions_to_frame(sessions).write_parquet(tmp_path / "s.parquet")
    import polars as pl

    frame = pl.read_parquet(tmp_path / "s.parquet")
    assert list(frame.columns) == list(SESSION_SCHEMA)
    assert frame_to_sessions(frame) == sessions


def test_row_holds_json_text_for_open_fields():
    row = session_to_row(full_session())
    assert json.loads(row["metadata"]) == {"repo": "o/r", "ünï": [1, 2]} and "ünï" in row["metadata"]
    assert json.loads(row["tools"])[0]["function"]["name"] == "bash"
    assert row_to_session(row) == full_session()


def test_arguments_become_canonical_json_or_stay_verbatim():
    assert canonical_arguments({"b": 1, "a": "é"}) == ('{"a": "é", "b": 1}', True)
    assert canonical_arguments('{"b": 1,   "a": 2}') == ('{"a": 2, "b": 1}', True)
    assert canonical_arguments("rm -rf build") == ("rm -rf build", False)
    deep = "[" * 100_000 + "]" * 100_000
    assert canonical_arguments(deep) == (deep, False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "tool"]), st.text(max_size=40)), max_size=6),
       st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3))
def test_any_session_round_trips(turns, metadata):
    session = Session("id", "agent", "f", turns=[Turn(role, text) for role, text in turns], metadata=metadata)
    assert frame_to_sessions(sessions_to_frame([session])) == [session]
