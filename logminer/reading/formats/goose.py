"""Goose (block/goose) sessions: the SQLite store `sessions.db` and the older one-JSONL-file-per-session layout.

Read from block/goose (crates/goose/src/session/session_manager.rs: schema and migrations;
crates/goose/src/conversation/message.rs: content blocks):
- `sessions(id, name | description, working_dir, created_at, updated_at, session_type, parent_session_id,
  model_config_json, ...)` and `messages(id | message_id, session_id, role: user|assistant, content_json,
  created_timestamp (epoch seconds), metadata_json)`; columns vary across schema versions, so only those present
  are read, and messages are ordered by insertion (rowid).
  Newer rows carry `metadata_json.agentVisible`; a row the model never saw (false) is Skipped.
- `content_json`: a list of blocks tagged by `type`: `text{text}`, `toolRequest{id, toolCall{status, value{name,
  arguments}} | {status: error, error}}`, `toolResponse{id, toolResult{status, value: {content: [..]} | [..]} |
  {status: error, error}}` (on user rows: they become tool turns), `thinking{thinking}`, `redactedThinking`
  (opaque, dropped), `image` (dropped, flagged), and UI blocks (`toolConfirmationRequest`, `actionRequired`,
  `systemNotification`, `frontendToolRequest`) that the model did not see as text.
- Legacy `<sessions dir>/<name>.jsonl`: a first line of session metadata (`working_dir`, `description`, ...), then
  one message per line (`{role, created, content: [blocks]}`).
One record is one message (row or line; the legacy metadata line is one record, Skipped when the file has messages).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import NON_TEXT_DROPPED, content_text, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import iso_from_epoch, loads
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sqlite_store import Database
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "goose"
RECORD_UNIT = "row"  # one message (a messages row, or a line of a legacy session file)
UI_BLOCKS = ("toolConfirmationRequest", "actionRequired", "systemNotification", "conversationCompacted")
HIDDEN = "goose message hidden from the model (agentVisible: false)"
Event = Session | Skipped | Rejected


def sniff(database: Database) -> bool:
    return {"sessions", "messages"} <= database.tables and {"content_json", "role"} <= database.columns("messages")


def parse(database: Database) -> Iterator[Event]:
    columns = ("id", "name", "description", "working_dir", "created_at", "updated_at", "session_type",
               "parent_session_id", "model_config_json")
    for info in database.select("sessions", columns, order=("created_at", "id")):
        rows = database.select("messages", ("id", "message_id", "role", "content_json", "created_timestamp",
                                            "metadata_json"), "session_id = ?", (info["id"],))
        builder = GooseTurns()
        hidden = 0
        for row in rows:
            try:
                content = loads(row["content_json"] or "[]")
                metadata = loads(row["metadata_json"]) if row["metadata_json"] else {}
            except (json.JSONDecodeError, TypeError) as error:
                yield Rejected(database.path, 0, f"goose message {row['id'] or row['message_id']}: not JSON ({error})")
                continue
            if isinstance(metadata, dict) and metadata.get("agentVisible") is False:
                hidden += 1
                continue
            problem = builder.add(row["role"], content, iso_from_epoch(row["created_timestamp"]))
            if problem:
                yield Rejected(database.path, 0, f"goose message {row['id'] or row['message_id']}: {problem}")
        if hidden:
            yield Skipped(database.path, 0, HIDDEN, records=hidden)
        if builder.records:
            title = info["name"] or info["description"]
            metadata = {"title": title, "cwd": info["working_dir"], "session_type": info["session_type"]}
            session = builder.session(str(info["id"]), database.path, {k: v for k, v in metadata.items() if v},
                                      _stamp(info["created_at"]), _stamp(info["updated_at"]))
            session.parent_session_id = info["parent_session_id"] or None
            session.model = _model(info["model_config_json"])
            yield session


def _model(config: Any) -> str | None:
    """sessions.model_config_json (newer schemas): {model_name, ...}."""
    try:
        value = loads(config) if isinstance(config, str) else None
    except json.JSONDecodeError:
        return None
    name = value.get("model_name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


def _stamp(value: Any) -> str | None:
    """sessions.created_at is SQLite's 'YYYY-MM-DD HH:MM:SS' (UTC) text."""
    if isinstance(value, str) and len(value) >= 19:
        return value[:10] + "T" + value[11:19] + "Z"
    return iso_from_epoch(value)


class GooseTurns:
    """Turns from Goose messages, one message at a time."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.flags: set[str] = set()
        self.tool_names: dict[str, str] = {}
        self.records = 0

    def add(self, role: Any, content: Any, stamp: str | None) -> str | None:
        """Map one message; returns why it cannot be read, or None."""
        if role not in ("user", "assistant") or not isinstance(content, list):
            return f"not a user/assistant message with a content list (role {role!r})"
        self.records += 1
        turn = Turn(role=role, timestamp=stamp)
        texts: list[str] = []
        results: list[Turn] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "thinking":
                turn.reasoning = "\n\n".join(t for t in (turn.reasoning, str(block.get("thinking") or "")) if t)
            elif kind in ("toolRequest", "frontendToolRequest"):
                call = _call(block)
                turn.tool_calls.append(call)
                self.tool_names[call.id or ""] = call.name
            elif kind == "toolResponse":
                results.append(self._result(block, stamp))
            elif kind == "image":
                self.flags.add(NON_TEXT_DROPPED)
            elif kind not in (*UI_BLOCKS, "redactedThinking"):
                self.flags.add(NON_TEXT_DROPPED)
        turn.text = "\n\n".join(t for t in texts if t)
        if turn.text or turn.reasoning or turn.tool_calls:
            self.turns.append(turn)
        self.turns += results
        return None

    def _result(self, block: dict[str, Any], stamp: str | None) -> Turn:
        result = block.get("toolResult") if isinstance(block.get("toolResult"), dict) else {}
        call_id = str(block.get("id") or "") or None
        failed = result.get("status") == "error"
        value = result.get("value")
        items = value.get("content") if isinstance(value, dict) else value
        text = str(result.get("error") or "") if failed else content_text(items)
        if isinstance(value, dict) and value.get("isError"):
            failed = True
        return Turn(role="tool", text=text, tool_call_id=call_id, name=self.tool_names.get(call_id or ""),
                    is_error=failed, timestamp=stamp)

    def session(self, session_id: str, path: str, metadata: dict[str, Any], started: str | None,
                ended: str | None) -> Session:
        stamps = [t.timestamp for t in self.turns if t.timestamp]
        return Session(session_id=session_id, agent=NAME, source_file=path, turns=self.turns, records=self.records,
                       started_at=started or (stamps[0] if stamps else None),
                       ended_at=ended or (stamps[-1] if stamps else None),
                       flags=session_flags(self.turns, self.flags), metadata=metadata)


def _call(block: dict[str, Any]):
    request = block.get("toolCall") if isinstance(block.get("toolCall"), dict) else {}
    value = request.get("value") if isinstance(request.get("value"), dict) else {}
    if request.get("status") == "error":  # the model's call could not be parsed: keep its error text as arguments
        return make_tool_call("", str(request.get("error") or ""), block.get("id"))
    return make_tool_call(value.get("name"), value.get("arguments") or {}, block.get("id"))


def _goose_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source goose: the sessions folder (sessions.db and legacy *.jsonl): $GOOSE_PATH_ROOT/data/sessions if set;
    else ~/Library/Application Support/Block.block.goose/sessions (macOS), %APPDATA%\\Block\\goose\\data\\sessions
    (Windows), $XDG_DATA_HOME or ~/.local/share/goose/sessions (Linux; macOS installs that use XDG too)."""
    if env.get("GOOSE_PATH_ROOT"):
        return [Path(env["GOOSE_PATH_ROOT"]) / "data" / "sessions"]
    xdg = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "goose" / "sessions"
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "Block.block.goose" / "sessions", xdg]
    if platform.startswith("win"):
        return [Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "Block" / "goose" / "data" / "sessions"]
    return [xdg]


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse,
                sources=(AgentSource("goose", _goose_folders),))
