"""Cline CLI 3.x session folders (~/.cline/data/sessions/<id>/<id>.messages.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read


def write_session(root: Path, text: str = "fix the test") -> Path:
    folder = root / "1790762400000_abcde"
    folder.mkdir(parents=True)
    messages = [
        {"id": "u1", "role": "user", "content": [{"type": "text", "text": text}], "ts": 1790762400000},
        {"id": "a1", "role": "assistant", "ts": 1790762401000, "modelInfo": {"id": "claude-sonnet-5", "provider": "anthropic"},
         "content": [{"type": "text", "text": "Running tests."},
                     {"type": "tool_use", "id": "toolu_1", "name": "execute_command", "input": {"command": "pytest"}}]},
        {"id": "u2", "role": "user", "ts": 1790762402000,
         "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "1 failed"}]},
        {"id": "a2", "role": "assistant", "ts": 1790762403000, "content": [{"type": "text", "text": "Fixed."}]},
    ]
    (folder / f"{folder.name}.messages.json").write_text(json.dumps(
        {"version": 1, "agent": "lead", "sessionId": folder.name, "messages": messages}))
    (folder / f"{folder.name}.json").write_text(json.dumps(
        {"session_id": folder.name, "cwd": "/work", "metadata": {"title": "fix"}}))
    return root


def test_session_folder(tmp_path):
    result = read(write_session(tmp_path / "sessions"))
    assert result.formats == {"cline-cli"} and not result.rejected
    session, = result.sessions
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.turns[2].tool_call_id == "toolu_1" and session.turns[2].name == "execute_command"
    assert session.model == "claude-sonnet-5" and session.metadata == {"cwd": "/work", "title": "fix"}
    assert session.agent == "cline" and result.records == 5


def test_planted_secret_never_reaches_output(tmp_path):
    write_session(tmp_path / "sessions", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "sessions", tmp_path / "out")
