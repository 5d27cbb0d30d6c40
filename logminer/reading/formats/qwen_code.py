"""Qwen Code chat recordings: the JSONL session log, and the older single-JSON chat file of its Gemini CLI heritage.

Read from QwenLM/qwen-code (packages/core/src/services/chatRecordingService.ts at 015346f):
- `~/.qwen/projects/<cwd with / as ->/chats/<sessionId>.jsonl`: one ChatRecord per line, `{uuid, parentUuid,
  sessionId, timestamp, type: user|assistant|tool_result|system, subtype, cwd, version, message{role: user|model,
  parts[]}, model, toolCallResult}`. Parts are Gemini parts: `{text}`, `{text, thought: true}` (reasoning),
  `{functionCall{id, name, args}}`, `{functionResponse{id, name, response{output | error}}}`. The conversation is the
  `parentUuid` chain that ends at the last record (a rewind leaves abandoned branches, which are not turns);
  `system` records (compression checkpoints, titles, telemetry, ...) are not turns.
- older `~/.qwen/tmp/<projectHash>/chats/session-*.json`: `{sessionId, projectHash, startTime, lastUpdated,
  messages[{id, timestamp, type: user|qwen|gemini|info|error, content, thoughts, toolCalls[{id, name, args, result,
  status}], model}]}`; info / error messages are UI notices, not turns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    head_objects,
    iter_json_lines,
    load_document,
    rejected_document,
    stable_id,
    starts_with_json,
)
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "qwen-code"
RECORD_UNIT = "line"  # JSONL: one ChatRecord per line; the older JSON chat file: one message per item

_RECORD_TYPES = ("user", "assistant", "tool_result", "system")
_CHAT_FILE = re.compile(r'\s*\{\s*"sessionId"\s*:\s*"[^"]*"\s*,\s*"projectHash"\s*:')
Event = Session | Skipped | Rejected


def sniff(source: SourceFile) -> bool:
    if source.is_binary:
        return False
    if _CHAT_FILE.match(source.head):
        return True
    objects = head_objects(source)
    return bool(objects) and all(_is_record(obj) for obj in objects) and any(_qwen_only(obj) for obj in objects)


def _is_record(obj: dict[str, Any]) -> bool:
    return obj.get("type") in _RECORD_TYPES and "sessionId" in obj and "uuid" in obj and "parentUuid" in obj


def _qwen_only(obj: dict[str, Any]) -> bool:
    """Fields Claude Code's look-alike records never have: Gemini `parts`, tool_result records, systemPayload."""
    message = obj.get("message")
    return (
        obj.get("type") == "tool_result"
        or "systemPayload" in obj
        or (isinstance(message, dict) and isinstance(message.get("parts"), list))
    )


def parse(source: SourceFile) -> Iterator[Event]:
    if starts_with_json(source.head, "{") and _CHAT_FILE.match(source.head):
        yield from _parse_chat_file(source)
        return
    records: list[tuple[int, dict[str, Any]]] = []
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict) or not _is_record(value):
            yield Rejected(source.path, number, "not a qwen-code chat record (uuid, parentUuid, sessionId, type)")
        else:
            records.append((number, value))
    if not records:
        return
    chain = _conversation_chain([record for _, record in records])
    session = Session(
        session_id=str(records[0][1]["sessionId"]),
        agent=NAME,
        source_file=source.path,
        line_start=records[0][0],
        line_end=records[-1][0],
        byte_start=0,
        byte_end=len(source.data),
        records=len(records),
        started_at=records[0][1].get("timestamp"),
        ended_at=records[-1][1].get("timestamp"),
    )
    for record in chain:
        session.turns += _record_turns(record)
        if record["type"] == "assistant" and isinstance(record.get("model"), str):
            session.model = record["model"]
    first = records[0][1]
    session.metadata = {key: first[key] for key in ("cwd", "version", "gitBranch") if isinstance(first.get(key), str)}
    session.flags = session_flags(session.turns, set(session.flags))
    yield session


def _conversation_chain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records on the parentUuid chain ending at the last record, in order; file order when the chain is broken."""
    by_uuid = {str(record["uuid"]): record for record in records}
    chain = []
    current: dict[str, Any] | None = records[-1]
    seen: set[str] = set()
    while current is not None and str(current["uuid"]) not in seen:
        seen.add(str(current["uuid"]))
        chain.append(current)
        current = by_uuid.get(str(current.get("parentUuid")))
    if current is not None or (chain and chain[-1].get("parentUuid") not in (None, "")):
        return records  # a cycle or a parent missing from the file: keep everything in file order
    return list(reversed(chain))


def _record_turns(record: dict[str, Any]) -> list[Turn]:
    message = record.get("message") if isinstance(record.get("message"), dict) else {}
    parts = [p for p in message.get("parts") or [] if isinstance(p, dict)]
    stamp = record.get("timestamp")
    kind = record["type"]
    if kind == "user":
        return [Turn(role="user", text=_texts(parts, thought=False), timestamp=stamp)]
    if kind == "assistant":
        calls = [_call(p["functionCall"]) for p in parts if isinstance(p.get("functionCall"), dict)]
        return [Turn(role="assistant", text=_texts(parts, thought=False), reasoning=_texts(parts, thought=True),
                     tool_calls=calls, timestamp=stamp)]
    if kind == "tool_result":
        result = record.get("toolCallResult") if isinstance(record.get("toolCallResult"), dict) else {}
        status = result.get("status")
        return [_response_turn(p["functionResponse"], stamp, status == "error")
                for p in parts if isinstance(p.get("functionResponse"), dict)]
    return []


def _call(function_call: dict[str, Any]):
    return make_tool_call(function_call.get("name"), function_call.get("args") or {}, function_call.get("id"))


def _texts(parts: list[dict[str, Any]], *, thought: bool) -> str:
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and bool(p.get("thought")) == thought]
    return "\n".join(texts)


def _response_turn(response: dict[str, Any], stamp: Any, failed: bool) -> Turn:
    body = response.get("response")
    if isinstance(body, dict):
        failed = failed or "error" in body
        text = body.get("error") if "error" in body else body.get("output", body)
        text = text if isinstance(text, str) else content_text(text) if isinstance(text, list) else str(text)
    else:
        text = content_text(body)
    return Turn(role="tool", text=text, tool_call_id=response.get("id"), name=response.get("name"), is_error=failed,
                timestamp=stamp)


def _parse_chat_file(source: SourceFile) -> Iterator[Event]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list):
        yield Rejected(source.path, 0, "qwen-code chat file without a `messages` list")
        return
    session = Session(
        session_id=str(document.get("sessionId") or stable_id(NAME, source.path)),
        agent=NAME,
        source_file=source.path,
        records=len(messages),
        started_at=document.get("startTime"),
        ended_at=document.get("lastUpdated"),
    )
    for message in messages:
        if not isinstance(message, dict):
            continue
        kind, stamp = message.get("type"), message.get("timestamp")
        if kind == "user":
            session.turns.append(Turn(role="user", text=content_text(message.get("content")), timestamp=stamp))
        elif kind in ("qwen", "gemini", "assistant"):
            session.turns += _chat_file_reply(message, stamp)
            session.model = message.get("model") if isinstance(message.get("model"), str) else session.model
    session.flags = session_flags(session.turns, set(session.flags))
    yield session


def _chat_file_reply(message: dict[str, Any], stamp: Any) -> list[Turn]:
    thoughts = [
        f"{t.get('subject', '')}: {t.get('description', '')}".strip(": ") if isinstance(t, dict) else str(t)
        for t in message.get("thoughts") or []
    ]
    turn = Turn(role="assistant", text=content_text(message.get("content")), reasoning="\n".join(thoughts),
                timestamp=stamp)
    results = []
    for raw in message.get("toolCalls") or []:
        if not isinstance(raw, dict):
            continue
        call = make_tool_call(raw.get("name"), raw.get("args") or {}, raw.get("id"))
        turn.tool_calls.append(call)
        for part in raw.get("result") or []:
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                results.append(_response_turn(part["functionResponse"], stamp, raw.get("status") == "error"))
    return [turn, *results]


def _qwen_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source qwen: ~/.qwen/projects (JSONL chat recordings) and ~/.qwen/tmp (older per-project chat files)."""
    return [home / ".qwen" / "projects", home / ".qwen" / "tmp"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("qwen", _qwen_folders),))
