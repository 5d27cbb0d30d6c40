"""Continue sessions (~/.continue/sessions/<id>.json + sessions.json), built from core/index.d.ts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read


def write_sessions(folder: Path, text: str = "rename the function") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    call = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"filepath": "a.py"})}}
    call2 = {"id": "call_2", "type": "function", "function": {"name": "edit", "arguments": json.dumps({"text": text})}}
    history = [
        {"message": {"role": "user", "content": [{"type": "text", "text": text}]}, "contextItems": []},
        {"message": {"role": "thinking", "content": "need the file"}, "contextItems": []},
        {"message": {"role": "assistant", "content": "Reading.", "toolCalls": [call]}, "contextItems": [],
         "toolCallStates": [{"toolCallId": "call_1", "toolCall": call, "status": "done", "parsedArgs": {},
                             "output": [{"name": "a.py", "description": "", "content": "def f(): pass"}]}]},
        {"message": {"role": "tool", "content": "def f(): pass", "toolCallId": "call_1"}, "contextItems": []},
        {"message": {"role": "assistant", "content": "", "toolCalls": [call2]}, "contextItems": [],
         "toolCallStates": [{"toolCallId": "call_2", "toolCall": call2, "status": "errored", "parsedArgs": {},
                             "output": [{"name": "error", "description": "", "content": "permission denied"}]}]},
        {"message": {"role": "assistant", "content": "I could not edit it."}, "contextItems": []},
    ]
    session = {"sessionId": "5f0c", "title": "Rename", "workspaceDirectory": "file:///work", "history": history,
               "chatModelTitle": "Claude 4.5 Sonnet"}
    (folder / "5f0c.json").write_text(json.dumps(session, indent=2))
    (folder / "sessions.json").write_text(json.dumps([{"sessionId": "5f0c", "title": "Rename",
                                                       "dateCreated": "1767261600000", "workspaceDirectory": "/work"}]))
    return folder


def test_session_and_index(tmp_path):
    result = read(write_sessions(tmp_path / "sessions"))
    assert result.formats == {"continue"} and not result.rejected
    session, = result.sessions
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert session.turns[1].reasoning == "need the file" and session.turns[2].tool_call_id == "call_1"
    assert session.turns[4].is_error and session.turns[4].text == "permission denied"  # only in toolCallStates
    assert session.model == "Claude 4.5 Sonnet" and result.records == 6 + 1
    assert "continue session index (titles of the session files)" in result.reasons()


def test_planted_secret_never_reaches_output(tmp_path):
    write_sessions(tmp_path / "sessions", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "sessions", tmp_path / "out")


def test_other_json_mentioning_its_keys_is_not_claimed(tmp_path):
    text = 'Continue stores {"sessionId": ..., "history": [{"message": ..., "contextItems": []}]}'
    lines = [json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]})] * 2
    (tmp_path / "chats.jsonl").write_text("\n".join(lines) + "\n")
    assert read(tmp_path / "chats.jsonl").formats == {"openai-chat"}
