"""Goose `sessions.db`, built from block/goose's schema and content blocks (legacy JSONL: test_goose_legacy)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read

SCHEMA = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
  user_set_name BOOLEAN DEFAULT FALSE, session_type TEXT NOT NULL DEFAULT 'user', working_dir TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  extension_data TEXT DEFAULT '{}', total_tokens INTEGER);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id),
  role TEXT NOT NULL, content_json TEXT NOT NULL, created_timestamp INTEGER NOT NULL,
  timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP, tokens INTEGER, metadata_json TEXT);
"""


def goose_messages(text: str) -> list[tuple[str, list[dict], dict]]:
    visible = {"userVisible": True, "agentVisible": True}
    return [
        ("user", [{"type": "text", "text": text}], visible),
        ("assistant", [{"type": "thinking", "thinking": "shell first", "signature": "sig"},
                       {"type": "text", "text": "Running it."},
                       {"type": "toolRequest", "id": "tr1", "toolCall": {"status": "success", "value": {
                           "name": "developer__shell", "arguments": {"command": f"echo {text}"}}}}], visible),
        ("user", [{"type": "toolResponse", "id": "tr1", "toolResult": {"status": "success", "value": {
            "content": [{"type": "text", "text": "hello"}], "isError": False}}}], visible),
        ("user", [{"type": "text", "text": "summary for the UI only"}], {"userVisible": True, "agentVisible": False}),
        ("assistant", [{"type": "text", "text": "It printed hello."}], visible),
    ]


def write_goose_db(path: Path, text: str = "say hello") -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    connection.execute("INSERT INTO schema_version (version) VALUES (5)")
    connection.execute("INSERT INTO sessions (id, name, working_dir, created_at, updated_at) VALUES "
                       "('20260101_1', 'hello session', '/work/app', '2026-01-01 10:00:00', '2026-01-01 10:05:00')")
    for role, content, metadata in goose_messages(text):
        connection.execute("INSERT INTO messages (session_id, role, content_json, created_timestamp, metadata_json) "
                           "VALUES ('20260101_1', ?, ?, 1767261600, ?)", (role, json.dumps(content), json.dumps(metadata)))
    connection.commit()
    connection.close()
    return path


def write_legacy(path: Path, text: str = "say hello") -> Path:
    lines = [{"working_dir": "/work/app", "description": "hello session", "schedule_id": None, "message_count": 4}]
    lines += [{"id": f"m{i}", "role": role, "created": 1767261600 + i, "content": content}
              for i, (role, content, metadata) in enumerate(goose_messages(text)) if metadata["agentVisible"]]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_sessions_db(tmp_path):
    result = read(write_goose_db(tmp_path / "sessions.db"))
    assert result.formats == {"goose"} and not result.rejected
    session = result.sessions[0]
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.turns[1].reasoning == "shell first" and session.turns[1].tool_calls[0].name == "developer__shell"
    assert session.turns[2].tool_call_id == "tr1" and session.turns[2].text == "hello"
    assert session.turns[2].name == "developer__shell"
    assert session.started_at == "2026-01-01T10:00:00Z" and session.metadata["title"] == "hello session"
    assert result.records == 5 and "goose message hidden from the model (agentVisible: false)" in result.reasons()


def test_newer_schema_columns(tmp_path):
    """Later schema versions: message_id instead of id, parent_session_id, model_config_json."""
    db = tmp_path / "sessions.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT, working_dir TEXT, created_at TEXT, updated_at TEXT,"
        " session_type TEXT, parent_session_id TEXT, model_config_json TEXT);"
        "CREATE TABLE messages (message_id TEXT, session_id TEXT, role TEXT, content_json TEXT,"
        " created_timestamp INTEGER, metadata_json TEXT);")
    connection.execute("INSERT INTO sessions VALUES ('20260902_3', 'sub', '/w', '2026-09-02 08:00:00',"
                       " '2026-09-02 08:01:00', 'sub_agent', '20260902_1', '{\"model_name\": \"gpt-5.2\"}')")
    for index, (role, content, metadata) in enumerate(goose_messages("hi")):
        connection.execute("INSERT INTO messages VALUES (?, '20260902_3', ?, ?, 1788336000, ?)",
                           (f"msg_{index}", role, json.dumps(content), json.dumps(metadata)))
    connection.commit()
    connection.close()
    result = read(db)
    session, = result.sessions
    assert session.parent_session_id == "20260902_1" and session.model == "gpt-5.2"
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"] and result.records == 5


def test_planted_secret_never_reaches_output(tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    write_goose_db(folder / "sessions.db", text=SECRET_TEXT)
    write_legacy(folder / "old.jsonl", text=SECRET_TEXT)
    assert_secret_never_output(folder, tmp_path / "out")
