"""OpenCode `opencode.db` (1.x message/part and 2.x session_message), built from the published drizzle schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read

SCHEMA = """
CREATE TABLE project (id TEXT PRIMARY KEY, worktree TEXT NOT NULL, time_created INTEGER, time_updated INTEGER);
CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, parent_id TEXT, slug TEXT NOT NULL,
  directory TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL, time_created INTEGER NOT NULL,
  time_updated INTEGER NOT NULL);
CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, time_created INTEGER NOT NULL,
  time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT NOT NULL,
  time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE session_message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, type TEXT NOT NULL,
  seq INTEGER NOT NULL, time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE todo (session_id TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL, priority TEXT NOT NULL,
  position INTEGER NOT NULL, time_created INTEGER, time_updated INTEGER);
"""
T0 = 1770000000000


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    connection.execute("INSERT INTO project VALUES ('p1', '/work/app', ?, ?)", (T0, T0))
    return connection


def add_session(connection: sqlite3.Connection, session_id: str, parent: str | None = None) -> None:
    connection.execute("INSERT INTO session VALUES (?, 'p1', ?, 'slug', '/work/app', 'Fix the build', '1.2.3', ?, ?)",
                       (session_id, parent, T0, T0 + 9000))


def add_v1(connection: sqlite3.Connection, session_id: str, text: str = "fix it") -> None:
    """A user message and an assistant message of two model calls (step-start), one tool call."""
    messages = [
        (f"msg_{session_id}_1", {"role": "user", "time": {"created": T0}}, [{"type": "text", "text": text}]),
        (f"msg_{session_id}_2", {"role": "assistant", "time": {"created": T0 + 1}, "modelID": "claude-sonnet-5",
                                 "providerID": "anthropic"},
         [{"type": "step-start"}, {"type": "reasoning", "text": "check the log"},
          {"type": "tool", "callID": "toolu_1", "tool": "bash",
           "state": {"status": "completed", "input": {"command": f"make {text}"}, "output": "ok"}},
          {"type": "step-finish"}, {"type": "step-start"}, {"type": "text", "text": "Fixed."},
          {"type": "step-finish"}]),
    ]
    for message_id, data, parts in messages:
        connection.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)",
                           (message_id, session_id, data["time"]["created"], T0, json.dumps(data)))
        for index, part_data in enumerate(parts):
            connection.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                               (f"prt_{message_id}_{index:02d}", message_id, session_id, T0, T0, json.dumps(part_data)))


def add_v2(connection: sqlite3.Connection, session_id: str, text: str = "add a test") -> None:
    rows = [
        ("user", {"text": text, "time": {"created": T0}}),
        ("model-switched", {"model": {"id": "gpt-6", "providerID": "openai"}, "time": {"created": T0}}),
        ("assistant", {"agent": "build", "model": {"id": "gpt-6", "providerID": "openai"}, "time": {"created": T0 + 1},
                       "content": [{"type": "reasoning", "id": "r1", "text": "where are tests"},
                                   {"type": "text", "id": "t1", "text": "Adding it."},
                                   {"type": "tool", "id": "call_9", "name": "write", "time": {"created": T0 + 1},
                                    "state": {"status": "completed", "input": {"path": "t.py"},
                                              "content": [{"type": "text", "text": "wrote t.py"}],
                                              "structured": {}, "result": None}}]}),
        ("shell", {"callID": "sh1", "command": "pytest -q", "output": "1 passed", "time": {"created": T0 + 2}}),
        ("compaction", {"reason": "auto", "summary": "We added a test.", "recent": "", "time": {"created": T0 + 3}}),
    ]
    for seq, (kind, data) in enumerate(rows):
        connection.execute("INSERT INTO session_message VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (f"sm_{session_id}_{seq}", session_id, kind, seq, T0 + seq, T0 + seq, json.dumps(data)))


def test_v1_messages_and_parts(tmp_path):
    db = tmp_path / "opencode.db"
    connection = connect(db)
    add_session(connection, "ses_a")
    add_v1(connection, "ses_a")
    add_session(connection, "ses_child", parent="ses_a")
    add_v1(connection, "ses_child", text="sub task")
    connection.commit()
    result = read(db)
    assert result.formats == {"opencode-db"} and not result.rejected
    assert len(result.sessions) == 2 and result.records == 2 * (2 + 1 + 7)
    session = result.sessions[0]
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.turns[1].reasoning == "check the log" and session.turns[1].tool_calls[0].id == "toolu_1"
    assert session.turns[2].text == "ok" and session.turns[3].text == "Fixed."
    assert session.model == "claude-sonnet-5" and session.agent == "opencode"
    assert result.sessions[1].parent_session_id == "ses_a"


def test_v2_session_messages(tmp_path):
    db = tmp_path / "opencode.db"
    connection = connect(db)
    add_session(connection, "ses_b")
    add_v2(connection, "ses_b")
    connection.commit()
    result = read(db)
    assert len(result.sessions) == 1 and result.records == 5
    session = result.sessions[0]
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "user", "user"]
    assert session.turns[1].tool_calls[0].name == "write" and session.turns[2].text == "wrote t.py"
    assert session.turns[3].text == "pytest -q\n\n1 passed" and session.turns[4].text == "We added a test."
    assert session.model == "gpt-6"
    assert "opencode model switch (bookkeeping)" in result.reasons()


def test_v2_rows_repeating_v1_history_are_skipped_and_kilo_is_labelled(tmp_path):
    db = tmp_path / "kilo.db"
    connection = connect(db)
    add_session(connection, "ses_c")
    add_v1(connection, "ses_c")
    add_v2(connection, "ses_c")
    connection.commit()
    result = read(db)
    assert len(result.sessions) == 1 and result.sessions[0].agent == "kilo"
    assert result.sessions[0].records == 10 and result.records == 15
    assert "opencode session_message rows repeating the message/part history" in result.reasons()


def test_broken_rows_are_rejected_with_their_ids(tmp_path):
    db = tmp_path / "opencode.db"
    connection = connect(db)
    add_session(connection, "ses_d")
    add_v1(connection, "ses_d")
    connection.execute("UPDATE part SET data = '{\"type\": ' WHERE id = 'prt_msg_ses_d_2_01'")
    connection.commit()
    result = read(db)
    assert [r.reason.split(":")[0] for r in result.rejected] == ["opencode part prt_msg_ses_d_2_01"]
    assert result.records == 10


def test_planted_secret_never_reaches_output(tmp_path):
    db = tmp_path / "data" / "opencode.db"
    db.parent.mkdir()
    connection = connect(db)
    add_session(connection, "ses_e")
    add_v1(connection, "ses_e", text=SECRET_TEXT)
    add_session(connection, "ses_f")
    add_v2(connection, "ses_f", text=SECRET_TEXT)
    connection.commit()
    assert_secret_never_output(db.parent, tmp_path / "out")
