"""Cursor `state.vscdb`: the real 2024 workspace database's hand counts and a 2025 cursorDiskKV fixture."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs


def kv_database(path: Path, text: str = "why does the build fail") -> Path:
    """A 2025+ global state.vscdb: two composers (headers + bubbles), one orphan bubble, one other key."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    connection.execute("CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    rows = {}
    for c in ("c1", "c2"):
        rows[f"composerData:{c}"] = {"_v": 10, "composerId": c, "name": f"chat {c}", "createdAt": 1766691308486,
                                     "lastUpdatedAt": 1766692125731, "modelConfig": {"modelName": "claude-4.5-sonnet"},
                                     "subComposerIds": ["c2"] if c == "c1" else [],
                                     "fullConversationHeadersOnly": [{"bubbleId": "b1", "type": 1},
                                                                     {"bubbleId": "b2", "type": 2},
                                                                     {"bubbleId": "b3", "type": 2}]}
        rows[f"bubbleId:{c}:b1"] = {"_v": 3, "type": 1, "bubbleId": "b1", "text": text}
        rows[f"bubbleId:{c}:b2"] = {"_v": 3, "type": 2, "bubbleId": "b2", "text": "", "thinking": {"text": "read it"},
                                    "toolFormerData": {"name": "run_terminal_cmd", "toolCallId": "tc1",
                                                       "rawArgs": json.dumps({"command": f"make # {text}"}),
                                                       "result": json.dumps({"output": "error: missing x"}),
                                                       "status": "completed"}}
        rows[f"bubbleId:{c}:b3"] = {"_v": 3, "type": 2, "bubbleId": "b3", "text": "Add x to the Makefile."}
    rows["bubbleId:gone:b9"] = {"type": 1, "text": "orphan"}
    rows["checkpointId:c1:k"] = {"files": []}
    for key, value in rows.items():
        connection.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", (key, json.dumps(value).encode()))
    connection.execute("INSERT INTO ItemTable VALUES ('workbench.sideBar.position', '1')")
    connection.commit()
    connection.close()
    return path


def test_real_2024_workspace_database_matches_hand_counts():
    db = require_real_logs() / "cursor-state-vscdb" / "cursor-history_workspaceStorage_state.vscdb"
    result = read(db)
    assert result.formats == {"cursor"} and not result.rejected
    assert len(result.sessions) == 31 and result.records == 131  # 26 composers / 82 bubbles + 5 tabs / 49 bubbles
    by_size = sorted(s.records for s in result.sessions)
    assert sum(by_size) == 131 and by_size[-1] == 33
    assert result.roles["user"] == 41 + 22  # 27 chat-tab user bubbles, 5 of them empty (an unsent input box)
    assert result.roles["assistant"] == 41 + 22
    assert result.tool_calls == 0


def test_2025_key_value_layout(tmp_path):
    result = read(kv_database(tmp_path / "state.vscdb"))
    assert not result.rejected and len(result.sessions) == 2
    session = result.sessions[0]
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    call = session.turns[1].tool_calls[0]
    assert call.name == "run_terminal_cmd" and call.id == "tc1" and session.turns[1].reasoning == "read it"
    assert session.turns[2].tool_call_id == "tc1" and "missing x" in session.turns[2].text
    assert session.model == "claude-4.5-sonnet" and session.metadata["title"] == "chat c1"
    assert result.records == 7  # 6 bubbles of the composers + 1 orphan bubble
    assert result.sessions[1].parent_session_id == "c1"  # c2 is c1's subagent
    assert "cursor bubbles of no stored composer" in result.reasons()


def test_modern_workspace_database_is_an_index(tmp_path):
    db = tmp_path / "state.vscdb"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
    index = {"allComposers": [{"composerId": "c1", "name": "chat", "createdAt": 1766691308486}]}
    connection.execute("INSERT INTO ItemTable VALUES ('composer.composerData', ?)", (json.dumps(index),))
    connection.commit()
    connection.close()
    result = read(db)
    assert not result.sessions and result.records == 0
    assert result.reasons() == {"cursor workspace composer index (the messages are in globalStorage/state.vscdb)"}


def test_backup_copy_is_acknowledged_not_read_twice(tmp_path):
    db = kv_database(tmp_path / "state.vscdb")
    (tmp_path / "state.vscdb.backup").write_bytes(db.read_bytes())
    result = read(tmp_path)
    assert len(result.sessions) == 2
    assert "cursor backup copy of state.vscdb (read from the original)" in result.reasons()


def test_planted_secret_never_reaches_output(tmp_path):
    (tmp_path / "in").mkdir()
    kv_database(tmp_path / "in" / "state.vscdb", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "in", tmp_path / "out")
