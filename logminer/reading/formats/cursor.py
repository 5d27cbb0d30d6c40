"""Cursor chat history in its VS Code-style `state.vscdb` SQLite files (key/value tables), read via sqlite_store.

Cursor is closed source; the layouts below are from public readers' descriptions (e.g. chatrxiv
docs/cursor/storage-reference.md) and the real 2024 sample in ../shared/real-logs:
- 2024, per workspace (`workspaceStorage/<hash>/state.vscdb`, table `ItemTable(key, value)`):
  `composer.composerData` = `{allComposers: [{composerId, name, createdAt, lastUpdatedAt, conversation: [bubble]}]}`
  with bubbles `{type: 1 (user) | 2 (assistant), bubbleId, text, ...}`; and the older chat panel
  `workbench.panel.aichat.view.aichat.chatdata` = `{tabs: [{tabId, chatTitle, bubbles: [{type: user | ai, text,
  modelType}]}]}`. One session per composer and per chat tab.
- 2025+, global (`globalStorage/state.vscdb`, table `cursorDiskKV(key, value)`): `composerData:<composerId>` (one
  conversation: `fullConversationHeadersOnly: [{bubbleId, type}]`, or an inline `conversation` / `conversationMap`) and
  `bubbleId:<composerId>:<bubbleId>` (one message: `type`, `text`, `thinking{text}`, `toolFormerData{name, rawArgs,
  params, result, status, toolCallId}`); a composer's `subComposerIds` are its subagents (linked as children). A
  workspace's composer entries that only point there are index entries.
One record is one bubble (message). Other keys are editor state, not records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import make_tool_call, session_flags
from logminer.reading.formats.jsondoc import as_list, iso_from_epoch, loads
from logminer.reading.registry import AgentSource, Format, editor_user_folders
from logminer.reading.sqlite_store import Database
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "cursor"
RECORD_UNIT = "item"  # one chat bubble (message)
COMPOSERS_KEY = "composer.composerData"
CHAT_KEY = "workbench.panel.aichat.view.aichat.chatdata"
ROLES = {1: "user", 2: "assistant", "1": "user", "2": "assistant", "user": "user", "ai": "assistant"}
Event = Session | Skipped | Rejected


def sniff(database: Database) -> bool:
    return bool({"ItemTable", "cursorDiskKV"} & database.tables)


def parse(database: Database) -> Iterator[Event]:
    if database.path.endswith(".vscdb.backup") and os.path.exists(database.path.removesuffix(".backup")):
        yield Skipped(database.path, 0, "cursor backup copy of state.vscdb (read from the original)", records=0)
        return
    found = False
    for event in [*_item_table(database), *_disk_kv(database)]:
        found = True
        yield event
    if not found:
        yield Skipped(database.path, 0, "editor state database without AI chat history", records=0)


def _value(database: Database, raw: Any, key: str) -> Any:
    try:
        return loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw or "")
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
        return Rejected(database.path, 0, f"cursor key {key}: value is not JSON ({error})")


def _not_object(database: Database, key: str) -> Rejected:
    return Rejected(database.path, 0, f"cursor key {key}: not an object")


def _item_table(database: Database) -> Iterator[Event]:
    if "ItemTable" not in database.tables:
        return
    for key, raw in database.rows("SELECT key, value FROM ItemTable WHERE key IN (?, ?) ORDER BY key",
                                  (CHAT_KEY, COMPOSERS_KEY)):
        value = _value(database, raw, key)
        if isinstance(value, Rejected) or not isinstance(value, dict):
            yield value if isinstance(value, Rejected) else _not_object(database, key)
            continue
        if key == COMPOSERS_KEY:
            composers = [c for c in as_list(value.get("allComposers")) if isinstance(c, dict)]
            for composer in composers:
                if isinstance(composer.get("conversation"), list):
                    yield from _conversation(database, composer, composer["conversation"])
            if composers and not any(isinstance(c.get("conversation"), list) for c in composers):
                yield Skipped(database.path, 0, "cursor workspace composer index (the messages are in "
                                                "globalStorage/state.vscdb)", records=0)
        else:
            for tab in as_list(value.get("tabs")):
                if isinstance(tab, dict) and isinstance(tab.get("bubbles"), list):
                    yield from _conversation(database, tab, tab["bubbles"])


def _disk_kv(database: Database) -> Iterator[Event]:
    if "cursorDiskKV" not in database.tables:
        return
    used = 0
    composers = []
    for key, raw in database.rows("SELECT key, value FROM cursorDiskKV WHERE key >= 'composerData:' "
                                  "AND key < 'composerData;' ORDER BY key"):
        composer = _value(database, raw, key)
        if isinstance(composer, dict):
            composers.append((key.split(":", 1)[1], composer))
        else:
            yield composer if isinstance(composer, Rejected) else _not_object(database, key)
    parents = {child: composer_id for composer_id, composer in composers
               for child in as_list(composer.get("subComposerIds")) if isinstance(child, str)}
    for composer_id, composer in composers:
        bubbles = composer.get("conversation") if isinstance(composer.get("conversation"), list) else []
        inline = composer.get("conversationMap") if isinstance(composer.get("conversationMap"), dict) else {}
        for header in as_list(composer.get("fullConversationHeadersOnly")):
            bubble_id = header.get("bubbleId") if isinstance(header, dict) else ""
            bubble_key = f"bubbleId:{composer_id}:{bubble_id}"
            row = next(database.rows("SELECT value FROM cursorDiskKV WHERE key = ?", (bubble_key,)), None)
            used += row is not None
            bubble = _value(database, row[0], bubble_key) if row else inline.get(bubble_id)
            if isinstance(bubble, Rejected):
                yield bubble
            elif isinstance(bubble, dict):
                bubbles.append(bubble)
            elif row is not None:
                yield _not_object(database, bubble_key)
        info = {**composer, "composerId": composer_id, "parent": parents.get(composer_id)}
        yield from _conversation(database, info, bubbles)
    total = next(database.rows("SELECT count(*) FROM cursorDiskKV WHERE key >= 'bubbleId:' AND key < 'bubbleId;'"))[0]
    if total > used:
        yield Skipped(database.path, 0, "cursor bubbles of no stored composer", records=total - used)


def _conversation(database: Database, info: dict[str, Any], bubbles: list[Any]) -> Iterator[Event]:
    """One composer or chat tab as a Session; its bubbles are its records."""
    if not bubbles:
        return
    flags: set[str] = set()
    turns: list[Turn] = []
    model = (info.get("modelConfig") or {}).get("modelName") if isinstance(info.get("modelConfig"), dict) else None
    read = 0
    for bubble in bubbles:
        kind = bubble.get("type") if isinstance(bubble, dict) else None
        role = ROLES.get(kind) if isinstance(kind, (int, str)) else None
        if role is None:
            yield Rejected(database.path, 0, f"cursor bubble of unknown type {kind!r}")
            continue
        read += 1
        turns += _bubble_turns(role, bubble)
        info_model = bubble.get("modelInfo") if isinstance(bubble.get("modelInfo"), dict) else {}
        model = bubble.get("modelType") or info_model.get("modelName") or model
    if not read:
        return
    session_id = str(info.get("composerId") or info.get("tabId") or "")
    title = info.get("name") or info.get("chatTitle")
    yield Session(
        session_id=session_id, agent=NAME, source_file=database.path, turns=turns, records=read,
        model=model if isinstance(model, str) and model != "default" else None,
        started_at=iso_from_epoch(info.get("createdAt")),
        ended_at=iso_from_epoch(info.get("lastUpdatedAt") or info.get("lastSendTime")),
        parent_session_id=info.get("parent"), flags=session_flags(turns, flags),
        metadata={"title": title} if isinstance(title, str) else {},
    )


def _bubble_turns(role: str, bubble: dict[str, Any]) -> list[Turn]:
    text = bubble.get("text") if isinstance(bubble.get("text"), str) else ""
    if role == "assistant" and not text and isinstance(bubble.get("rawText"), str):
        text = bubble["rawText"]
    thinking = bubble.get("thinking") if isinstance(bubble.get("thinking"), dict) else {}
    turn = Turn(role=role, text=text, reasoning=str(thinking.get("text") or ""),
                timestamp=bubble.get("createdAt") if isinstance(bubble.get("createdAt"), str) else None)
    tool = bubble.get("toolFormerData") if isinstance(bubble.get("toolFormerData"), dict) else {}
    if role != "assistant" or not tool.get("name"):
        return [turn] if turn.text or turn.reasoning else []
    call = make_tool_call(tool["name"], tool.get("rawArgs") or tool.get("params") or {}, tool.get("toolCallId"))
    turn.tool_calls.append(call)
    result = tool.get("result")
    output = result if isinstance(result, str) else "" if result is None else json.dumps(result, ensure_ascii=False)
    failed = tool.get("status") == "error" or bool(tool.get("error"))
    return [turn, Turn(role="tool", text=output or str(tool.get("error") or ""), tool_call_id=call.id,
                       name=call.name, is_error=failed, timestamp=turn.timestamp)]


def _cursor_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source cursor: <Cursor user folder>/User/globalStorage/state.vscdb and every
    User/workspaceStorage/<hash>/state.vscdb (~/Library/Application Support/Cursor on macOS, $XDG_CONFIG_HOME or
    ~/.config/Cursor on Linux, %APPDATA%\\Cursor on Windows)."""
    user = editor_user_folders(home, env, platform, ("Cursor",))[0] / "User"
    return [user / "globalStorage" / "state.vscdb", *sorted((user / "workspaceStorage").glob("*/state.vscdb"))]


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse,
                sources=(AgentSource("cursor", _cursor_folders),))
