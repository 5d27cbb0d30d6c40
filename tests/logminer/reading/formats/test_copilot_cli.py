"""Copilot CLI: events.jsonl (real 1.0.77 composite + own fixture) and the 2025 single-JSON session (real)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs


def envelope(index: int, kind: str, data: dict) -> dict:
    return {"type": kind, "data": data, "id": f"e{index}", "timestamp": f"2026-03-01T10:00:{index:02d}.000Z",
            "parentId": f"e{index - 1}" if index else None}


def write_events(folder: Path, text: str = "list the files") -> Path:
    events = [
        ("session.start", {"sessionId": "0b2a81da-aaaa", "copilotVersion": "1.0.80", "selectedModel": "gpt-5.2",
                           "context": {"cwd": "/work/app", "branch": "main"}}),
        ("user.message", {"content": text, "transformedContent": f"{text} (expanded)", "attachments": []}),
        ("assistant.reasoning", {"reasoningId": "r1", "content": "use the shell"}),
        ("assistant.message", {"content": "Listing.", "model": "gpt-5.2", "toolRequests": [
            {"toolCallId": "call-1", "name": "shell", "arguments": json.dumps({"command": f"ls {text}"}),
             "type": "function"}]}),
        ("tool.execution_start", {"toolCallId": "call-1", "toolName": "shell", "arguments": {"command": "ls"}}),
        ("tool.execution_complete", {"toolCallId": "call-1", "success": True, "result": {"content": "a.txt"}}),
        ("assistant.message", {"content": "One file: a.txt", "toolRequests": []}),
        ("sandbox.brand_new_event_2027", {"x": 1}),
        ("sandbox.brand_new_event_2027", {"x": 2}),
        ("session.shutdown", {"shutdownType": "routine"}),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.jsonl"
    path.write_text("\n".join(json.dumps(envelope(i, k, d)) for i, (k, d) in enumerate(events)) + "\n")
    return path


def test_real_events_composite_matches_hand_counts():
    result = read(require_real_logs() / "copilot-cli-events" / "agentsessions_small_composite_1.0.77.jsonl")
    assert result.formats == {"copilot-cli"} and not result.rejected
    assert len(result.sessions) == 1
    assert result.roles["user"] == 2 and result.roles["assistant"] == 5 and result.tool_calls == 4
    lines = sum(1 for line in (require_real_logs() / "copilot-cli-events" /
                               "agentsessions_small_composite_1.0.77.jsonl").read_text().splitlines() if line.strip())
    assert result.records == lines
    assert not any(r.startswith("unknown") for r in result.reasons())


def test_real_legacy_json_session_matches_hand_counts():
    result = read(require_real_logs() / "copilot-cli-legacy-json" / "vct_copilot_2025-10-11.json")
    assert result.formats == {"copilot-cli"} and not result.rejected
    session, = result.sessions
    assert result.roles["user"] == 1 and result.roles["assistant"] == 5
    assert result.tool_calls == 15 and result.roles["tool"] == 15
    assert session.session_id == "0b2a81da-02cf-4cbb-ae14-07c597b84f4e" and result.records == 23


def test_events_fixture_maps_turns_and_counts_unknown_types(tmp_path):
    result = read(write_events(tmp_path / "session-state" / "0b2a81da-aaaa"))
    session, = result.sessions
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.turns[0].text == "list the files (expanded)" and session.turns[1].reasoning == "use the shell"
    assert session.turns[2].tool_call_id == "call-1" and session.turns[2].name == "shell"
    assert session.model == "gpt-5.2" and session.metadata["cwd"] == "/work/app"
    unknown = [s for s in result.skipped if s.reason == "unknown copilot-cli event type sandbox.brand_new_event_2027"]
    assert len(unknown) == 1 and unknown[0].records == 2
    assert result.records == 10


def test_session_folder_acknowledges_its_workspace_files(tmp_path):
    folder = tmp_path / "session-state" / "0b2a81da-aaaa"
    write_events(folder)
    (folder / "workspace.yaml").write_text("cwd: /work/app\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "index.md").write_text("# checkpoints\n")
    result = read(tmp_path / "session-state")
    assert len(result.sessions) == 1 and result.formats == {"copilot-cli"} and result.records == 12
    assert "copilot-cli session workspace file (state, plan, checkpoint), not conversation" in result.reasons()


def test_planted_secret_never_reaches_output(tmp_path):
    write_events(tmp_path / "logs" / "s1", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "logs", tmp_path / "out")


def test_legacy_session_with_chat_messages_prefers_them_and_hides_secrets(tmp_path):
    session = {"sessionId": "s-1", "startTime": "2025-10-11T12:54:52.206Z",
               "chatMessages": [{"role": "user", "content": SECRET_TEXT},
                                {"role": "assistant", "content": "ok", "tool_calls": [
                                    {"id": "t1", "type": "function",
                                     "function": {"name": "bash", "arguments": json.dumps({"c": SECRET_TEXT})}}]},
                                {"role": "tool", "tool_call_id": "t1", "content": SECRET_TEXT}],
               "timeline": [{"id": "1", "timestamp": "2025-10-11T12:54:53Z", "type": "user", "text": SECRET_TEXT}]}
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "session_s-1.json").write_text(json.dumps(session, indent=2))
    result = read(tmp_path / "in")
    assert [t.role for t in result.sessions[0].turns] == ["user", "assistant", "tool"] and result.records == 4
    assert "copilot-cli timeline (a display copy of chatMessages)" in result.reasons()
    assert_secret_never_output(tmp_path / "in", tmp_path / "out")
