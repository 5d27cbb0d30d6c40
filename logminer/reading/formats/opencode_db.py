"""OpenCode's SQLite store `opencode.db` (since 1.2.0, Feb 2026; also Kilo CLI's `kilo.db`), read via sqlite_store.

Read from anomalyco/opencode (packages/opencode/src/session/session.sql.ts and packages/core/src/session/sql.ts,
message.ts; drizzle tables, `data` columns hold the JSON of the old storage files minus their ids):
- `session(id, parent_id, title, directory, version, time_created, time_updated, ...)`; later versions name it
  `session_v2` (same columns): both are read.
- 1.x history: `message(id, session_id, time_created, data{role, time, modelID, providerID, ...})` and
  `part(id, message_id, session_id, data{type: text|reasoning|tool|step-start|...})`: mapped exactly like the JSON
  storage (opencode.message_turns). Records: every message and part row.
- 2.x history: `session_message(id, session_id, type, seq, data)`, one row per projected message, ordered by
  `seq`: `user{text}`, `synthetic{text}` (text the agent adds as the user), `system{text}`, `assistant{content:
  [text | reasoning | tool{id, name, state{status, input, content[], result, error}}], model{id}}`, `shell{command,
  output}` (a command the user ran: its output went to the model), `compaction{summary}` (the summary replaces the
  history before it); `agent-switched` / `model-switched` are bookkeeping (Skipped). Records: every row.
A session with 1.x rows is read from them (session_message then only repeats it: Skipped); other sessions from 2.x.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import as_list, iso_from_epoch, loads
from logminer.reading.formats.opencode import message_turns
from logminer.reading.registry import Format
from logminer.reading.sqlite_store import Database
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "opencode-db"
RECORD_UNIT = "row"  # one row of message, part or session_message
SESSION_COLUMNS = ("id", "parent_id", "title", "directory", "version", "time_created", "time_updated")
V2_SKIPPED = {"agent-switched": "opencode agent switch (bookkeeping)",
              "model-switched": "opencode model switch (bookkeeping)"}
V2_REPEATS = "opencode session_message rows repeating the message/part history"
Event = Session | Skipped | Rejected


def sniff(database: Database) -> bool:
    has_sessions = bool({"session", "session_v2"} & database.tables)
    has_history = {"message", "part"} <= database.tables or "session_message" in database.tables
    return has_sessions and has_history  # (forks such as Kilo CLI keep these names; Crush's are plural)


def parse(database: Database) -> Iterator[Event]:
    agent = "kilo" if database.path.endswith("kilo.db") else "opencode"
    seen: set[str] = set()
    for table in ("session", "session_v2"):
        if table not in database.tables:
            continue
        for info in database.select(table, SESSION_COLUMNS, order=("time_created", "id")):
            if info["id"] in seen:
                continue
            seen.add(info["id"])
            yield from _session(database, info, agent)


def _session(database: Database, info: dict[str, Any], agent: str) -> Iterator[Event]:
    session = Session(session_id=str(info["id"]), agent=agent, source_file=database.path, records=0,
                      parent_session_id=info["parent_id"] or None, started_at=iso_from_epoch(info["time_created"]),
                      ended_at=iso_from_epoch(info["time_updated"]))
    session.metadata = {key: info[key] for key in ("title", "directory", "version") if isinstance(info[key], str)}
    if {"message", "part"} <= database.tables:
        yield from _v1_history(database, session)
    v2_rows = _v2_rows(database, session.session_id)
    if session.records and v2_rows:
        yield Skipped(database.path, 0, V2_REPEATS, records=len(v2_rows))
    elif v2_rows:
        yield from _v2_history(database, session, v2_rows)
    if session.records:
        session.flags = session_flags(session.turns, set(session.flags))
        yield session


def _load(database: Database, what: str, row_id: Any, data: Any) -> dict[str, Any] | Rejected:
    try:
        value = loads(data or "")
    except (json.JSONDecodeError, TypeError) as error:
        return Rejected(database.path, 0, f"opencode {what} {row_id}: data is not JSON ({error})")
    return value if isinstance(value, dict) else Rejected(database.path, 0, f"opencode {what} {row_id}: not an object")


def _v1_history(database: Database, session: Session) -> Iterator[Rejected]:
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in database.select("part", ("id", "message_id", "data"), "session_id = ?", (session.session_id,),
                               order=("message_id", "id")):
        part = _load(database, "part", row["id"], row["data"])
        if isinstance(part, Rejected):
            yield part
            continue
        parts.setdefault(row["message_id"], []).append({**part, "id": row["id"]})
        session.records += 1
    for row in database.select("message", ("id", "data"), "session_id = ?", (session.session_id,),
                               order=("time_created", "id")):
        message = _load(database, "message", row["id"], row["data"])
        if isinstance(message, Rejected):
            yield message
            continue
        session.records += 1
        session.turns += message_turns(message, parts.pop(row["id"], []))
        if message.get("role") == "assistant" and isinstance(message.get("modelID"), str):
            session.model = message["modelID"]
    leftover = sum(len(rows) for rows in parts.values())
    if leftover:  # parts whose message row is gone: counted above, not conversation
        session.records -= leftover
        yield Skipped(database.path, 0, "opencode parts of no stored message", records=leftover)


def _v2_rows(database: Database, session_id: str) -> list[dict[str, Any]]:
    if "session_message" not in database.tables:
        return []
    return list(database.select("session_message", ("id", "type", "time_created", "data"), "session_id = ?",
                                (session_id,), order=("seq", "time_created", "id")))  # seq: later 2.x only


def _v2_history(database: Database, session: Session, rows: list[dict[str, Any]]) -> Iterator[Event]:
    skipped: dict[str, int] = {}
    for row in rows:
        data = _load(database, "session_message", row["id"], row["data"])
        if isinstance(data, Rejected):
            yield data
            continue
        kind = row["type"] or data.get("type")
        kind = kind if isinstance(kind, str) else repr(kind)
        stamp = iso_from_epoch(row["time_created"])
        if kind in V2_SKIPPED:
            skipped[V2_SKIPPED[kind]] = skipped.get(V2_SKIPPED[kind], 0) + 1
            continue
        turns = _v2_turns(kind, data, stamp)
        if turns is None:
            reason = f"unknown opencode session_message type {kind!r}"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        session.records += 1
        session.turns += turns
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        if kind == "assistant" and isinstance(model.get("id"), str):
            session.model = model["id"]
    for reason, count in skipped.items():
        yield Skipped(database.path, 0, reason, records=count)


def _v2_turns(kind: Any, data: dict[str, Any], stamp: str | None) -> list[Turn] | None:
    """The turns of one 2.x message, or None when its type is unknown."""
    if kind in ("user", "synthetic"):
        return [Turn(role="user", text=str(data.get("text") or ""), timestamp=stamp)]
    if kind == "system":
        return [Turn(role="system", text=str(data.get("text") or ""), timestamp=stamp)]
    if kind == "compaction":
        return [Turn(role="user", text=str(data.get("summary") or ""), timestamp=stamp)]
    if kind == "shell":
        text = f"{data.get('command') or ''}\n\n{data.get('output') or ''}".strip()
        return [Turn(role="user", text=text, timestamp=stamp)]
    if kind != "assistant":
        return None
    step = Turn(role="assistant", timestamp=stamp)
    results: list[Turn] = []
    for item in as_list(data.get("content")):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text" and isinstance(item.get("text"), str):
            step.text = f"{step.text}\n\n{item['text']}" if step.text else item["text"]
        elif item.get("type") == "reasoning" and isinstance(item.get("text"), str):
            step.reasoning = f"{step.reasoning}\n\n{item['text']}" if step.reasoning else item["text"]
        elif item.get("type") == "tool":
            state = item.get("state") if isinstance(item.get("state"), dict) else {}
            call = make_tool_call(item.get("name"), state.get("input") or {}, item.get("id"))
            step.tool_calls.append(call)
            if state.get("status") in ("completed", "error"):
                failed = state.get("status") == "error"
                output = content_text(state.get("content")) or _result_text(state.get("error" if failed else "result"))
                results.append(Turn(role="tool", text=output, tool_call_id=call.id, name=call.name, is_error=failed,
                                    timestamp=stamp))
    return ([step] if step.text or step.reasoning or step.tool_calls else []) + results


def _result_text(value: Any) -> str:
    if isinstance(value, str) or value is None:
        return value or ""
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value["message"]
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse)
