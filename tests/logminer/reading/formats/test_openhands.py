"""OpenHands V0 reader: event-stream lists, eval-output JSONL (event and flat histories), real trajectories."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import openhands
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(openhands.parse(SourceFile.open(path)))


def calls(session: Session) -> int:
    return sum(len(turn.tool_calls) for turn in session.turns)


def test_event_stream_merges_parallel_calls_and_links_results(example_logs):
    [session] = parse(example_logs / "openhands" / "slugify_events.json")
    # 8 events: user message, 2 state changes (not turns), 2 actions of one model response (one assistant turn),
    # their 2 observations, the finish tool call
    assert "".join(t.role[0] for t in session.turns) == "uatta"
    assert calls(session) == 3 and session.records == 8
    assistant = session.turns[1]
    assert assistant.text == "I'll check the failing test and the helper it calls."
    assert [c.id for c in assistant.tool_calls] == ["toolu_01", "toolu_02"]
    assert json.loads(assistant.tool_calls[0].arguments) == {"command": "pytest -q tests/test_slug.py"}
    assert [(t.tool_call_id, t.is_error) for t in session.turns[2:4]] == [("toolu_01", True), ("toolu_02", False)]
    assert session.model == "claude-3-5-sonnet-20241022"
    assert (session.started_at, session.ended_at) == ("2025-03-02T10:00:00.000000", "2025-03-02T10:00:09.100000")


def test_eval_output_lines_are_sessions_with_instance_ids(example_logs):
    first, second = parse(example_logs / "openhands" / "eval_output.jsonl")
    assert (first.line_start, second.line_start) == (1, 2) and first.records == second.records == 1
    assert "".join(t.role[0] for t in first.turns) == "uata" and calls(first) == 1
    assert first.turns[2].tool_call_id == first.turns[1].tool_calls[0].id  # linked by `cause`
    assert first.metadata == {"instance_id": "acme__widgets-42", "repo": "acme/widgets"}
    # flat history without ids: observations answer the open calls in order; finish is the closing message
    assert "".join(t.role[0] for t in second.turns) == "uatata" and calls(second) == 2
    assert second.turns[-1].text == "Added --version."
    assert second.metadata == {"instance_id": "acme__gizmo-7", "repo": "acme/gizmo"}
    assert first.session_id != second.session_id


# Counted with jq. Event lists: turns = message actions + non-message actions + observations with a `cause` or
# tool_call_metadata (agent_state_changed excluded); calls = actions with tool_call_metadata.
# Resolver lines: `{msg: [.history[]|select(.action=="message")]|length, act: ... action not message/finish,
# obs: [.history[]|select(.observation)]|length, finish: 1}` → turns = msg + act + obs + finish, calls = act.
REAL = [
    ("openhands-events/trajs_basic.json", [(1 + 2 + 1, 2, 4)]),
    ("openhands-events/trajs_basic_interactions.json", [(5 + 1, 1, 6)]),
    ("openhands-eval-output/resolver_mock_output.jsonl", [(1 + 3 + 3 + 1, 3, 1), (1 + 21 + 21 + 1, 21, 1)]),
]


@pytest.mark.parametrize(("name", "expected"), REAL)
def test_real_files(real_logs, name, expected):
    source = SourceFile.open(real_logs / name)
    assert openhands.sniff(source)
    sessions = list(openhands.parse(source))
    assert [(len(s.turns), calls(s), s.records) for s in sessions] == expected


def test_real_resolver_repo(real_logs):
    sessions = parse(real_logs / "openhands-eval-output" / "resolver_mock_output.jsonl")
    assert [s.metadata.get("repo") for s in sessions] == ["neubig/pr-viewer"] * 2
    assert [s.metadata.get("issue_number") for s in sessions] == [5, 1]


def test_bad_lines_are_rejected_and_the_rest_read(tmp_path, example_logs):
    good = (example_logs / "openhands" / "eval_output.jsonl").read_text().splitlines()
    path = tmp_path / "output.jsonl"
    path.write_text("\n".join([good[0], "{not json", json.dumps({"instance_id": "x"}), good[1]]) + "\n")
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Session", "Rejected", "Rejected", "Session"]
    assert [e.line for e in events if isinstance(e, Rejected)] == [2, 3]
    assert "history" in events[2].reason
    assert sum(e.records for e in events) == 4


def test_sniff_refuses_plain_chat_lists(tmp_path):
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "run the action: ls"}]))
    assert not openhands.sniff(SourceFile.open(chat))


def test_eval_lines_longer_than_the_sniff_window(tmp_path):
    line = {"instance_id": "acme__widgets-42", "instruction": "x" * 100_000,
            "history": [{"id": 0, "source": "user", "action": "message", "args": {"content": "fix it"}}]}
    path = tmp_path / "output.jsonl"
    path.write_text(json.dumps(line) + "\n")
    source = SourceFile.open(path)
    assert openhands.sniff(source)
    [session] = list(openhands.parse(source))
    assert [t.text for t in session.turns] == ["fix it"]
