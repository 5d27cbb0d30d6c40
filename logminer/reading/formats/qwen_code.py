"""Qwen Code chat recordings (`~/.qwen/projects/<cwd with / as ->/chats/<sessionId>.jsonl`).

Read from QwenLM/qwen-code (packages/core/src/services/chatRecordingService.ts at 015346f): one ChatRecord per line,
`{uuid, parentUuid, sessionId, timestamp, type: user|assistant|tool_result|system, subtype, cwd, version,
message{role: user|model, parts[]}, model, toolCallResult}`. Parts are Gemini parts: `{text}`, `{text, thought: true}`
(reasoning), `{functionCall{id, name, args}}`, `{functionResponse{id, name, response{output | error}}}`. The
conversation is the `parentUuid` chain that ends at the last record (a rewind leaves abandoned branches, which are not
turns); `system` records (compression checkpoints, titles, telemetry, ...) are not turns. A record of a type not known
here is counted once per type as "unknown qwen-code line type ..." (format drift). The single-JSON chat file of Qwen
Code's Gemini CLI heritage (`{sessionId, projectHash, messages[]}`) and Gemini CLI's JSONL recording are read by the
gemini_cli reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, session_flags
from logminer.reading.formats.drift import UnknownTypes
from logminer.reading.formats.jsondoc import head_objects, iter_json_lines
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "qwen-code"
RECORD_UNIT = "line"

_RECORD_TYPES = ("user", "assistant", "tool_result", "system")
Event = Session | Skipped | Rejected


def sniff(source: SourceFile) -> bool:
    """Most of the first lines are ChatRecords (uuid, parentUuid, sessionId) and one holds something Qwen-only."""
    objects = head_objects(source, limit=16)
    records = [obj for obj in objects if _is_record(obj)]
    return 2 * len(records) > len(objects) and any(_qwen_only(obj) for obj in records)


def _is_record(obj: dict[str, Any]) -> bool:
    return "type" in obj and "sessionId" in obj and "uuid" in obj and "parentUuid" in obj


def _qwen_only(obj: dict[str, Any]) -> bool:
    """Fields Claude Code's look-alike records never have: Gemini `parts`, tool_result records, systemPayload."""
    message = obj.get("message")
    return (
        obj.get("type") == "tool_result"
        or "systemPayload" in obj
        or (isinstance(message, dict) and isinstance(message.get("parts"), list))
    )


def parse(source: SourceFile) -> Iterator[Event]:
    records: list[tuple[int, dict[str, Any]]] = []
    unknown = UnknownTypes(NAME)
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict) or not _is_record(value):
            yield Rejected(source.path, number, "not a qwen-code chat record (uuid, parentUuid, sessionId, type)")
        elif value["type"] not in _RECORD_TYPES:
            unknown.add(value["type"], number)
        else:
            records.append((number, value))
    yield from unknown.skipped(source.path)
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


def _qwen_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source qwen: ~/.qwen/projects (JSONL chat recordings) and ~/.qwen/tmp (older per-project chat files, read
    by the gemini_cli reader)."""
    return [home / ".qwen" / "projects", home / ".qwen" / "tmp"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("qwen", _qwen_folders),))
