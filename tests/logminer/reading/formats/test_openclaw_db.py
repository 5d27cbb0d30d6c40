"""OpenClaw's SQLite agent store: transcript_events rows joined back into the session JSONL they replaced."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "logs"
ROLLOUT = next((EXAMPLES / "codex").rglob("*.jsonl.gz"))


def write_store(path: Path, sessions: dict[str, list[str]]) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE transcript_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT NOT NULL,"
        " created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) STRICT;"
        "CREATE TABLE session_windows (session_id TEXT PRIMARY KEY, session_key TEXT, reason TEXT) STRICT;")
    for session_id, lines in sessions.items():
        for seq, line in reversed(list(enumerate(lines))):  # stored out of order: seq decides
            connection.execute("INSERT INTO transcript_events VALUES (?, ?, ?, 0)", (session_id, seq, line))
    connection.commit()
    connection.close()
    return path


def test_events_are_read_by_the_reader_of_their_lines(tmp_path):
    """The mechanism, shown with lines of a registered reader (a Codex rollout stored as events)."""
    lines = [line for line in gzip.decompress(ROLLOUT.read_bytes()).decode().splitlines() if line.strip()]
    result = read(write_store(tmp_path / "openclaw-agent.sqlite", {"s1": lines, "s2": ['{"weird": 1}']}))
    direct = read(ROLLOUT)  # the same lines read from the file they came from
    assert [(s.session_id, [(t.role, t.text) for t in s.turns]) for s in result.sessions] == \
        [(s.session_id, [(t.role, t.text) for t in s.turns]) for s in direct.sessions]
    assert {s.source_file for s in result.sessions} == {str(tmp_path / "openclaw-agent.sqlite")}
    assert {s.metadata["store_session"] for s in result.sessions} == {"s1"}
    assert result.records == len(lines) + 1
    assert [r.reason for r in result.rejected] == ["openclaw session s2: events of an unknown shape (first event "
                                                   "keys: weird)"]


def test_rejection_reasons_never_quote_event_values(tmp_path):
    result = read(write_store(tmp_path / "openclaw-agent.sqlite", {"s": [json.dumps({"note": SECRET_TEXT})]}))
    assert result.rejected and all(SECRET_TEXT not in r.reason for r in result.rejected)


def test_planted_secret_never_reaches_output(tmp_path):
    lines = [line for line in gzip.decompress(ROLLOUT.read_bytes()).decode().splitlines() if line.strip()]
    record = json.loads(lines[-1])
    lines.append(json.dumps({"timestamp": record["timestamp"], "type": "response_item", "payload": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": SECRET_TEXT}]}}))
    (tmp_path / "agent").mkdir()
    write_store(tmp_path / "agent" / "openclaw-agent.sqlite", {"s1": lines})
    assert_secret_never_output(tmp_path / "agent", tmp_path / "out")
