"""OpenHands V1 reader: JSONL events, persisted conversation folders, the real SDK fixture."""

from __future__ import annotations

import json
import shutil

from logminer.reading.formats import openhands_v1
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped


def calls(session: Session) -> int:
    return sum(len(turn.tool_calls) for turn in session.turns)


def test_jsonl_events(example_logs):
    source = SourceFile.open(example_logs / "openhands-v1" / "count_lines.jsonl")
    assert openhands_v1.sniff(source)
    [session] = list(openhands_v1.parse(source))
    # 10 events: system, user, 2 parallel actions (one turn), 2 observations, state update (no turn),
    # action, agent error (a failed tool turn), agent message
    assert "".join(t.role[0] for t in session.turns) == "suattata"
    assert calls(session) == 3 and session.records == 10
    assert [c.id for c in session.turns[2].tool_calls] == ["call_v1a", "call_v1b"]
    assert session.turns[2].reasoning == "Two independent commands."
    assert [(t.tool_call_id, t.is_error) for t in session.turns if t.role == "tool"] == [
        ("call_v1a", False), ("call_v1b", False), ("call_v1c", True)]
    assert session.tools == [{"name": "terminal", "description": "Execute a bash command in the terminal."}]
    assert session.model == "litellm_proxy/claude-sonnet-4-5"


def test_conversation_folder(example_logs):
    folder = example_logs / "openhands-v1" / "conversations" / "5b2e9c0d41f34a6c8e7d2a1b3c4d5e6f"
    assert openhands_v1.sniff_dir(str(folder)) and not openhands_v1.sniff_dir(str(folder / "events"))
    events = list(openhands_v1.parse_dir(str(folder)))
    skipped = [e for e in events if isinstance(e, Skipped)]
    [session] = [e for e in events if isinstance(e, Session)]
    assert [e.source_file.rsplit("/", 1)[1] for e in skipped] == ["base_state.json"]
    assert "".join(t.role[0] for t in session.turns) == "suatta" and calls(session) == 2
    assert session.records == 7  # 7 event files
    assert session.session_id == "5b2e9c0d-41f3-4a6c-8e7d-2a1b3c4d5e6f"
    assert session.model == "litellm_proxy/claude-sonnet-4-5"  # from base_state.json


def test_folder_with_bad_and_stray_files(example_logs, tmp_path):
    folder = tmp_path / "conv"
    shutil.copytree(example_logs / "openhands-v1" / "conversations" / "5b2e9c0d41f34a6c8e7d2a1b3c4d5e6f", folder)
    (folder / "events" / "event-00007-8c1d7a52-1111-4a0b-9c1e-00000000000b.json").write_text("{oops")
    (folder / "events" / "notes.txt").write_text("scratch")
    events = list(openhands_v1.parse_dir(str(folder)))
    rejected = sorted((e.source_file.rsplit("/", 1)[1], e.reason[:12]) for e in events if isinstance(e, Rejected))
    assert rejected == [("event-00007-8c1d7a52-1111-4a0b-9c1e-00000000000b.json", "invalid JSON"),
                        ("notes.txt", "not an openh")]
    assert sum(e.records for e in events) == 1 + 7 + 2  # base state + events + the two bad files


def test_real_sdk_fixture(real_logs):
    # jq -s: 10 events = 5 ConversationStateUpdateEvent + 2 ActionEvent + 3 ObservationEvent, no MessageEvent
    source = SourceFile.open(real_logs / "openhands-v1-events" / "sdk_goal_fixture_events.jsonl")
    assert openhands_v1.sniff(source)
    [session] = list(openhands_v1.parse(source))
    assert (len(session.turns), calls(session), session.records) == (2 + 3, 2, 10)
    assert session.model == "litellm_proxy/minimax-m2.7"


def test_bad_lines_rejected(tmp_path):
    path = tmp_path / "events.jsonl"
    event = {"kind": "MessageEvent", "id": "1", "timestamp": "2026-01-01T00:00:00", "source": "user",
             "llm_message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}}
    path.write_text(json.dumps(event) + "\n[1, 2]\n{broken\n")
    events = list(openhands_v1.parse(SourceFile.open(path)))
    assert [(type(e).__name__, getattr(e, "line", None)) for e in events] == [("Rejected", 2), ("Rejected", 3),
                                                                              ("Session", None)]


def test_first_event_longer_than_the_sniff_window(tmp_path):
    event = {"id": "8c1d7a52-1111-4a0b-9c1e-000000000001", "timestamp": "2026-01-05T08:00:00.000001",
             "source": "agent", "system_prompt": {"type": "text", "text": "p" * 100_000}, "tools": [],
             "kind": "SystemPromptEvent"}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event) + "\n")
    source = SourceFile.open(path)
    assert openhands_v1.sniff(source)
    [session] = list(openhands_v1.parse(source))
    assert [t.role for t in session.turns] == ["system"] and len(session.turns[0].text) == 100_000
