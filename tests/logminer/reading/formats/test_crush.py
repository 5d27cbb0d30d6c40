"""Crush SQLite store: the real sample's hand counts, a fixture from the schema, secrets, accounting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs

SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, parent_session_id TEXT, title TEXT NOT NULL, message_count INTEGER
  NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
  cost REAL NOT NULL DEFAULT 0.0, updated_at INTEGER NOT NULL, created_at INTEGER NOT NULL, summary_message_id TEXT);
CREATE TABLE messages (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL, parts TEXT NOT NULL
  DEFAULT '[]', model TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER,
  provider TEXT);
CREATE TABLE files (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, path TEXT NOT NULL, content TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
"""


def part(kind: str, **data) -> dict:
    return {"type": kind, "data": data}


def conversation(index: int, text: str) -> list[tuple[str, list[dict]]]:
    return [
        ("user", [part("text", text=f"task {index}: {text}"), part("finish", reason="stop", time=0)]),
        ("assistant", [part("reasoning", thinking="look first"), part("text", text="I will list files."),
                       part("tool_call", id=f"call-{index}", name="bash", input=json.dumps({"command": f"ls {text}"}),
                            type="function", finished=True), part("finish", reason="tool_use", time=1)]),
        ("tool", [part("tool_result", tool_call_id=f"call-{index}", name="bash", content=f"a.txt {text}",
                       metadata="", is_error=False)]),
        ("assistant", [part("text", text="Done."), part("finish", reason="stop", time=2)]),
    ]


def write_crush_db(path: Path, sessions: int = 2, text: str = "in src") -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    for s in range(sessions):
        connection.execute("INSERT INTO sessions (id, title, cost, updated_at, created_at) VALUES (?, ?, 0.5, ?, ?)",
                           (f"s{s}", f"session {s}", 1754709100 + s, 1754709000 + s))
        for m, (role, parts) in enumerate(conversation(s, text)):
            connection.execute("INSERT INTO messages (id, session_id, role, parts, model, created_at, updated_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", (f"m{s}-{m}", f"s{s}", role, json.dumps(parts),
                                                                "gpt-5" if role == "assistant" else None,
                                                                1754709000 + s, 1754709000 + s))
    connection.commit()
    connection.close()
    return path


def test_real_crush_database_matches_hand_counts():
    db = require_real_logs() / "crush-sqlite" / "dbos-transact-golang" / ".crush" / "crush.db"
    result = read(db)
    assert result.formats == {"crush"} and not result.rejected
    assert len(result.sessions) == 2  # 78 + 4 messages
    assert sorted(s.records for s in result.sessions) == [4, 78] and result.records == 82
    assert result.tool_calls == 41
    assert result.roles["user"] == 13 and result.roles["tool"] == 41  # 30 tool rows hold the 41 results
    assert result.roles["assistant"] == 36  # 39 assistant rows, 3 of them API errors with no content
    calls = {c.id for s in result.sessions for t in s.turns for c in t.tool_calls}
    answered = {t.tool_call_id for s in result.sessions for t in s.turns if t.role == "tool"}
    assert answered == calls


def test_fixture_maps_text_reasoning_calls_and_results(tmp_path):
    result = read(write_crush_db(tmp_path / "crush.db"))
    assert len(result.sessions) == 2 and result.records == 8 and not result.rejected
    session = result.sessions[0]
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.turns[1].reasoning == "look first" and session.turns[1].tool_calls[0].name == "bash"
    assert json.loads(session.turns[1].tool_calls[0].arguments) == {"command": "ls in src"}
    assert session.turns[2].tool_call_id == "call-0" and session.turns[2].name == "bash"
    assert session.model == "gpt-5" and session.started_at == "2025-08-09T03:10:00.000Z"
    assert session.metadata["title"] == "session 0"


def test_broken_parts_are_rejected_and_orphans_counted(tmp_path):
    db = write_crush_db(tmp_path / "crush.db", sessions=1)
    connection = sqlite3.connect(db)
    connection.execute("UPDATE messages SET parts = '[{\"type\": \"text\"' WHERE id = 'm0-3'")
    connection.execute("INSERT INTO messages (id, session_id, role, parts, created_at, updated_at) "
                       "VALUES ('x', 'gone', 'user', '[]', 1, 1)")
    connection.commit()
    connection.close()
    result = read(db)
    assert result.records == 5 and len(result.sessions) == 1 and result.sessions[0].records == 3
    assert any("m0-3: parts are not JSON" in r.reason for r in result.rejected)
    assert "crush messages of no stored session" in result.reasons()


def test_planted_secret_never_reaches_output(tmp_path):
    folder = tmp_path / "project" / ".crush"
    folder.mkdir(parents=True)
    write_crush_db(folder / "crush.db", text=SECRET_TEXT)
    assert_secret_never_output(folder, tmp_path / "out")
