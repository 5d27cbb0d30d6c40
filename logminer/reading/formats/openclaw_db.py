"""OpenClaw's SQLite agent store (`~/.openclaw/agents/<agent>/agent/openclaw-agent*.sqlite`, since July 2026).

As documented by public readers (OpenClaw src/state/openclaw-agent-schema.sql): `transcript_events(session_id, seq,
event_json, created_at)` holds, per session and in `seq` order, exactly the objects that used to be the lines of a
session JSONL file (the Pi session format: a `session` header, then `message`, `compaction`, `model_change`, ...
entries); `session_windows`, `session_nodes` and the archive tables are bookkeeping. Each session's events are
joined back into that JSONL and handed to whichever registered file reader recognises it (the Pi/OpenClaw reader),
so the mapping lives in one place; one record is one event row. Sessions whose events no reader recognises are
rejected with the keys of their first event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from logminer.reading.registry import Format, load_formats
from logminer.reading.sources import SourceError, SourceFile
from logminer.reading.sqlite_store import Database
from logminer.schema import Rejected, Session, Skipped

NAME = "openclaw-db"
RECORD_UNIT = "row"  # one transcript_events row
Event = Session | Skipped | Rejected


def sniff(database: Database) -> bool:
    return "transcript_events" in database.tables and \
        {"session_id", "seq", "event_json"} <= database.columns("transcript_events")


def parse(database: Database) -> Iterator[Event]:
    session_ids = [row[0] for row in database.rows("SELECT DISTINCT session_id FROM transcript_events ORDER BY 1")]
    readers = [f for f in load_formats() if f.unit == "file" and f.name != "plain-text"]
    for session_id in session_ids:
        lines = [event for (event,) in database.rows(
            "SELECT event_json FROM transcript_events WHERE session_id = ? ORDER BY seq, rowid", (session_id,))]
        text = "\n".join(line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line or "")
                         for line in lines)
        source = SourceFile(f"{database.path}#{session_id}", text.encode("utf-8") + b"\n")
        reader = next((f for f in readers if f.sniff(source)), None)
        if reader is None:
            yield Rejected(database.path, 0, f"openclaw session {session_id}: events of an unknown shape "
                                             f"(first event keys: {_keys(text)})", records=len(lines))
            continue
        try:
            for event in reader.parse(source):
                yield _relocated(event, database.path, session_id)
        except SourceError as error:
            yield Rejected(database.path, 0, f"openclaw session {session_id}: {error.reason}", records=len(lines))


def _keys(text: str) -> str:
    """The keys of the first event (never its values: they may hold secrets)."""
    try:
        first = json.loads(text.split("\n", 1)[0])
    except ValueError:
        return "not JSON"
    return ", ".join(sorted(first)[:8]) if isinstance(first, dict) else type(first).__name__


def _relocated(event: Event, path: str, session_id: str) -> Event:
    """An event of the joined JSONL, pointed back at the database (its line numbers are event positions)."""
    event.source_file = path
    if isinstance(event, Session):
        event.metadata = {**event.metadata, "store_session": session_id}
        event.line_start = event.line_end = event.byte_start = event.byte_end = 0
    else:
        event.reason = f"openclaw session {session_id}, event {event.line}: {event.reason}" if event.line \
            else f"openclaw session {session_id}: {event.reason}"
        event.line = 0
    return event


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse)
