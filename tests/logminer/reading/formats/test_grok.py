"""Grok Build session folders (real lab capture + own fixture)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs


def test_real_session_folder_matches_hand_counts():
    result = read(require_real_logs() / "grok-cli" / "session")
    assert result.formats == {"grok"} and not result.rejected
    session, = result.sessions
    assert result.roles == {"system": 1, "user": 3, "assistant": 2, "tool": 2} and result.tool_calls == 2
    assert session.session_id == "019f6851-7ec4-7ef0-97d3-03f3eee38755" and session.model == "grok-4.5"
    assert session.turns[3].reasoning.startswith("The user wants a summary")
    assert result.records == 11 + 1  # 11 chat_history lines + summary.json


def test_companion_files_and_secrets(tmp_path):
    folder = tmp_path / "sessions" / "%2Fwork" / "019f"
    folder.mkdir(parents=True)
    lines = [{"type": "user", "content": [{"type": "text", "text": SECRET_TEXT}]},
             {"type": "assistant", "content": f"ok {SECRET_TEXT}", "tool_calls": [], "model_id": "grok-4.5"}]
    (folder / "chat_history.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (folder / "summary.json").write_text(json.dumps({"info": {"id": "019f", "cwd": "/work"}}))
    (folder / "events.jsonl").write_text('{"a": 1}\n{"b": 2}\n')
    result = read(tmp_path / "sessions")
    assert len(result.sessions) == 1 and result.records == 2 + 1 + 2
    assert "grok UI event stream (repeats chat_history)" in result.reasons()
    assert_secret_never_output(tmp_path / "sessions", tmp_path / "out")
