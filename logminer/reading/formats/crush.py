"""Crush (charmbracelet/crush) per-project SQLite store `<project>/.crush/crush.db`, read through sqlite_store.

Tables (goose migrations in internal/db/migrations, as in the real sample): `sessions(id, parent_session_id, title,
message_count, prompt_tokens, completion_tokens, cost, updated_at, created_at, summary_message_id)`, `messages(id,
session_id, role, parts, model, provider, created_at, updated_at, finished_at)`, `files` (edited file versions, not
conversation). `parts` is a JSON list of `{type, data}`: `text{text}`, `reasoning{thinking}`, `tool_call{id, name,
input (JSON text)}`, `tool_result{tool_call_id, name, content, is_error}`, `finish{reason, message}`, `image_url`,
`binary`. Roles: user, assistant, tool (a tool row carries the results of the previous assistant row's calls).
One record is one message row; messages are ordered by created_at, then insertion (rowid). Timestamps are epoch
seconds in the files seen (the schema comment says milliseconds): jsondoc.iso_from_epoch reads both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import NON_TEXT_DROPPED, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import iso_from_epoch, loads
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sqlite_store import Database
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "crush"
RECORD_UNIT = "row"  # one row of the messages table
SESSION_COLUMNS = ("id", "parent_session_id", "title", "cost", "created_at", "updated_at")
MESSAGE_COLUMNS = ("id", "role", "parts", "model", "created_at")
Event = Session | Skipped | Rejected


def sniff(database: Database) -> bool:
    tables = database.tables
    return {"sessions", "messages"} <= tables and {"parts", "role", "session_id"} <= database.columns("messages")


def parse(database: Database) -> Iterator[Event]:
    for info in database.select("sessions", SESSION_COLUMNS, order=("created_at",)):
        yield from _session(database, info)
    orphans = next(database.rows("SELECT count(*) FROM messages WHERE session_id NOT IN (SELECT id FROM sessions)"))
    if orphans[0]:
        yield Skipped(database.path, 0, "crush messages of no stored session", records=orphans[0])


def _session(database: Database, info: dict[str, Any]) -> Iterator[Event]:
    flags: set[str] = set()
    tool_names: dict[str, str] = {}
    turns: list[Turn] = []
    records = 0
    model = None
    rows = database.select("messages", MESSAGE_COLUMNS, "session_id = ?", (info["id"],), order=("created_at",))
    for row in rows:
        try:
            parts = loads(row["parts"] or "[]")
        except (json.JSONDecodeError, TypeError) as error:
            yield Rejected(database.path, 0, f"crush message {row['id']}: parts are not JSON ({error})")
            continue
        if not isinstance(parts, list):
            yield Rejected(database.path, 0, f"crush message {row['id']}: parts are not a list")
            continue
        records += 1
        turns += _message_turns(row["role"], parts, iso_from_epoch(row["created_at"]), flags, tool_names)
        model = row["model"] if row["role"] == "assistant" and isinstance(row["model"], str) and row["model"] else model
    if not records:
        return
    metadata = {"title": info["title"], "cost": info["cost"]}
    yield Session(
        session_id=str(info["id"]), agent=NAME, source_file=database.path, turns=turns, records=records,
        model=model, started_at=iso_from_epoch(info["created_at"]), ended_at=iso_from_epoch(info["updated_at"]),
        parent_session_id=info["parent_session_id"] or None, flags=session_flags(turns, flags),
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def _message_turns(role: Any, parts: list[Any], stamp: str | None, flags: set[str],
                   tool_names: dict[str, str]) -> list[Turn]:
    """One message row as turns: tool rows give one tool turn per result; others one turn (none if empty)."""
    turns: list[Turn] = []
    turn = Turn(role="assistant" if role == "assistant" else "system" if role == "system" else "user", timestamp=stamp)
    texts: list[str] = []
    thoughts: list[str] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        data = part.get("data") if isinstance(part, dict) and isinstance(part.get("data"), dict) else {}
        if kind == "text" and isinstance(data.get("text"), str):
            texts.append(data["text"])
        elif kind == "reasoning" and isinstance(data.get("thinking"), str):
            thoughts.append(data["thinking"])
        elif kind == "tool_call":
            call = make_tool_call(data.get("name"), data.get("input") or {}, data.get("id"))
            turn.tool_calls.append(call)
            if call.id:
                tool_names[call.id] = call.name
        elif kind == "tool_result":
            call_id = str(data.get("tool_call_id") or "") or None
            turns.append(Turn(role="tool", text=str(data.get("content") or ""), tool_call_id=call_id,
                              name=data.get("name") or tool_names.get(call_id or ""),
                              is_error=bool(data.get("is_error")), timestamp=stamp))
        elif kind in ("image_url", "binary"):
            flags.add(NON_TEXT_DROPPED)
    turn.text = "\n\n".join(t for t in texts if t)
    turn.reasoning = "\n\n".join(t for t in thoughts if t)
    if role != "tool" and (turn.text or turn.reasoning or turn.tool_calls):
        turns.insert(0, turn)
    return turns


def _crush_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source crush: the `crush.db` of every project listed in Crush's projects.json ($XDG_DATA_HOME/crush or
    ~/.local/share/crush; %LOCALAPPDATA%\\crush on Windows), and ./.crush/crush.db of the current folder."""
    if platform.startswith("win"):
        data = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "crush"
    else:
        data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "crush"
    found = [Path.cwd() / ".crush" / "crush.db"]
    try:
        projects = json.loads((data / "projects.json").read_text(encoding="utf-8")).get("projects") or []
    except (OSError, ValueError, AttributeError):
        projects = []
    for project in projects if isinstance(projects, list) else []:
        if isinstance(project, dict) and isinstance(project.get("data_dir"), str):
            found.append(Path(project["data_dir"]) / "crush.db")
    return list(dict.fromkeys(found))


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse,
                sources=(AgentSource("crush", _crush_folders),))
