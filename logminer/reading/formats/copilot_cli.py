"""GitHub Copilot CLI sessions: `~/.copilot/session-state/<uuid>/events.jsonl` and the 2025 single-JSON session.

events.jsonl (Copilot CLI 0.0.3xx-1.0.x; the real composite sample at 1.0.77): every line is an envelope
`{type, data, id, timestamp, parentId}`:
- `user.message{content, transformedContent}` → user turn (transformedContent is what the model was sent);
  `system.message{content}` → system turn; `assistant.message{content, toolRequests[{toolCallId, name,
  arguments}], reasoningText}` → assistant turn; `assistant.reasoning{content}` → reasoning of the next assistant
  turn; `tool.execution_complete{toolCallId, success, result{content}}` → tool turn. Messages of a subagent carry
  `data.parentToolCallId` and stay in the session, after the call that started them.
- bookkeeping, Skipped by type: `session.*`, `assistant.turn_start/_end`, `tool.execution_start` (repeats the
  request), `subagent.*`, `hook.*`, `abort`, `system.notification`, ... Types not listed are Skipped once per type
  as "unknown copilot-cli event type X" (the format drifts monthly).
A session folder `session-state/<uuid>/` is read whole: its events.jsonl as above, and the other files Copilot keeps
there (workspace.yaml, plan.md, checkpoints/, files/) acknowledged instead of read as documents.
The 2025 JSON session `{sessionId, startTime, chatMessages[], timeline[]}`: `chatMessages` are OpenAI chat messages
(the model's view) and win when present; otherwise the `timeline` display copy is read: `user`/`copilot` text items
and `tool_call_completed{callId, name, arguments, result{type, log}}`; `info`/`warning`/`error` items are UI notes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, openai_message_turn, session_flags
from logminer.reading.formats.jsondoc import DocumentError, as_list, head_objects, iter_json_lines, load_document
from logminer.reading.formats.jsondoc import rejected_document, stable_id
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "copilot-cli"
RECORD_UNIT = "line"  # events.jsonl: one event per line; the JSON session: one record per message / timeline item
ENVELOPE = {"type", "data", "id", "timestamp"}
BOOKKEEPING_PREFIXES = ("session.", "subagent.", "hook.", "assistant.turn_", "skill.", "permission.")
BOOKKEEPING = {"tool.execution_start": "copilot-cli tool.execution_start (repeats the tool request)",
               "tool.execution_partial_result": "copilot-cli streamed partial tool output",
               "abort": "copilot-cli abort marker", "system.notification": "copilot-cli UI notification",
               "assistant.message_delta": "copilot-cli streamed message delta",
               "assistant.usage": "copilot-cli token usage"}
TIMELINE_NOTES = ("info", "warning", "error")
LEGACY_START = re.compile(r'\s*\{\s*"sessionId"\s*:\s*"[^"]*"\s*,\s*"startTime"\s*:')  # its first two keys
Event = Session | Skipped | Rejected


def _is_event(value: Any) -> bool:
    kind = value.get("type") if isinstance(value, dict) else None
    return isinstance(kind, str) and ENVELOPE <= value.keys() and ("." in kind or kind == "abort")


def sniff(source: SourceFile) -> bool:
    objects = head_objects(source, limit=4)
    if objects and sum(_is_event(o) for o in objects) >= max(1, len(objects) - 1):
        return True
    head = source.head  # the JSON session is often longer than the head: look at its first keys
    return bool(LEGACY_START.match(head)) and '"chatMessages"' in head[:4096] and not source.is_binary


def sniff_dir(path: str) -> bool:
    events = os.path.join(path, "events.jsonl")
    if not os.path.isfile(events):
        return False
    try:
        return sniff(SourceFile.open(events))
    except SourceError:
        return False


def parse_dir(path: str) -> Iterator[Event]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file_path = os.path.join(root, name)
            if root == path and name == "events.jsonl":
                try:
                    yield from parse(SourceFile.open(file_path))
                except SourceError as error:
                    yield Rejected(file_path, 0, error.reason)
            else:
                yield Skipped(file_path, 0, "copilot-cli session workspace file (state, plan, checkpoint), "
                                            "not conversation")


def parse(source: SourceFile) -> Iterator[Event]:
    objects = head_objects(source, limit=1)
    if not (objects and _is_event(objects[0])) and LEGACY_START.match(source.head):
        yield from _legacy(source)
    else:
        yield from _events(source)


class _Builder:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.flags: set[str] = set()
        self.names: dict[str, str] = {}
        self.reasoning: list[str] = []

    def assistant(self, text: str, stamp: Any, calls: list[Any]) -> None:
        turn = Turn(role="assistant", text=text, timestamp=_stamp(stamp), reasoning="\n\n".join(self.reasoning))
        self.reasoning = []
        for request in calls:
            if isinstance(request, dict):
                call = make_tool_call(request.get("name"), request.get("arguments"), request.get("toolCallId"))
                turn.tool_calls.append(call)
                self.names[call.id or ""] = call.name
        self.turns.append(turn)

    def result(self, call_id: Any, text: str, failed: bool, stamp: Any) -> None:
        call_id = str(call_id) if call_id else None
        self.turns.append(Turn(role="tool", text=text, tool_call_id=call_id, name=self.names.get(call_id or ""),
                               is_error=failed, timestamp=_stamp(stamp)))


def _stamp(value: Any) -> str | None:
    return value if isinstance(value, str) and value[:2].isdigit() else None


def _events(source: SourceFile) -> Iterator[Event]:
    builder = _Builder()
    skipped: dict[str, list[int]] = {}
    used: list[tuple[int, int, int]] = []
    meta: dict[str, Any] = {}
    model = None
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        if not _is_event(value) or not isinstance(value.get("data"), dict):
            yield Rejected(source.path, number, "not a copilot-cli event (expected {type, data, id, timestamp})")
            continue
        kind, data, stamp = value["type"], value["data"], value.get("timestamp")
        if kind == "user.message":
            text = data.get("transformedContent")
            text = text if isinstance(text, str) else data.get("content")
            builder.turns.append(Turn(role="user", text=content_text(text), timestamp=_stamp(stamp)))
        elif kind == "system.message":
            builder.turns.append(Turn(role="system", text=content_text(data.get("content")), timestamp=_stamp(stamp)))
        elif kind == "assistant.message":
            if isinstance(data.get("reasoningText"), str) and data["reasoningText"]:
                builder.reasoning.append(data["reasoningText"])
            builder.assistant(content_text(data.get("content")), stamp, as_list(data.get("toolRequests")))
            model = data.get("model") if isinstance(data.get("model"), str) else model
        elif kind == "assistant.reasoning":
            builder.reasoning.append(content_text(data.get("content")))
        elif kind == "tool.execution_complete":
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            text = content_text(result.get("content")) or content_text(data.get("error"))
            builder.result(data.get("toolCallId"), text, data.get("success") is False, stamp)
        else:
            if kind == "session.start":
                meta = data
            reason = _skip_reason(kind)
            skipped.setdefault(reason, []).append(number)
            continue
        used.append((number, start, end))
    if used:
        context = meta.get("context") if isinstance(meta.get("context"), dict) else {}
        folder = os.path.basename(os.path.dirname(source.path))
        session_id = meta.get("sessionId") or (folder if source.path.endswith("events.jsonl") else None)
        stamps = [t.timestamp for t in builder.turns if t.timestamp]
        metadata = {"cwd": context.get("cwd"), "branch": context.get("branch"),
                    "cli_version": meta.get("copilotVersion")}
        yield Session(
            session_id=str(session_id or stable_id(NAME, source.path)), agent=NAME, source_file=source.path,
            turns=builder.turns, line_start=used[0][0], line_end=used[-1][0], byte_start=used[0][1],
            byte_end=used[-1][2], records=len(used), model=model or meta.get("selectedModel"),
            started_at=stamps[0] if stamps else None, ended_at=stamps[-1] if stamps else None,
            flags=session_flags(builder.turns, builder.flags),
            metadata={k: v for k, v in metadata.items() if isinstance(v, str)},
        )
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))


def _skip_reason(kind: str) -> str:
    if kind in BOOKKEEPING:
        return BOOKKEEPING[kind]
    if kind.startswith(BOOKKEEPING_PREFIXES):
        return f"copilot-cli {kind.split('.')[0]}.* event (bookkeeping, not conversation)"
    return f"unknown copilot-cli event type {kind}"


def _legacy(source: SourceFile) -> Iterator[Event]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    if not isinstance(document, dict):
        yield Rejected(source.path, 0, "copilot-cli session: not a JSON object")
        return
    messages = document.get("chatMessages") if isinstance(document.get("chatMessages"), list) else []
    timeline = document.get("timeline") if isinstance(document.get("timeline"), list) else []
    builder = _Builder()
    kept = 0
    if messages:
        for message in messages:
            turn = openai_message_turn(message, builder.flags) if isinstance(message, dict) else None
            if turn is None:
                yield Rejected(source.path, 0, "copilot-cli chatMessages item: not a chat message")
                continue
            kept += 1
            builder.turns.append(turn)
        if timeline:
            yield Skipped(source.path, 0, "copilot-cli timeline (a display copy of chatMessages)",
                          records=len(timeline))
    else:
        notes = 0
        current: Turn | None = None  # the assistant turn that later tool calls (with no text between) belong to
        for item in timeline:
            kind = item.get("type") if isinstance(item, dict) else None
            stamp = item.get("timestamp") if isinstance(item, dict) else None
            kept += kind in ("user", "copilot", "tool_call_completed")
            if kind == "user":
                builder.turns.append(Turn(role="user", text=str(item.get("text") or ""), timestamp=_stamp(stamp)))
                current = None
            elif kind == "copilot":
                builder.assistant(str(item.get("text") or ""), stamp, [])
                current = builder.turns[-1]
            elif kind == "tool_call_completed":
                if current is None:
                    builder.assistant("", stamp, [])
                    current = builder.turns[-1]
                call = make_tool_call(item.get("name"), item.get("arguments"), item.get("callId"))
                current.tool_calls.append(call)
                builder.names[call.id or ""] = call.name
                result = item.get("result") if isinstance(item.get("result"), dict) else {}
                failed = result.get("type") not in (None, "success")
                builder.result(call.id, str(result.get("log") or ""), failed, stamp)
            elif kind in TIMELINE_NOTES:
                notes += 1
            else:
                yield Rejected(source.path, 0, f"copilot-cli timeline item of unknown type {kind!r}")
        if notes:
            yield Skipped(source.path, 0, "copilot-cli timeline notes (info / warning / error shown in the UI)",
                          records=notes)
    if kept:
        stamps = [t.timestamp for t in builder.turns if t.timestamp]
        yield Session(session_id=str(document.get("sessionId") or stable_id(NAME, source.path)), agent=NAME,
                      source_file=source.path, turns=builder.turns, records=kept,
                      started_at=document.get("startTime") if isinstance(document.get("startTime"), str) else None,
                      ended_at=stamps[-1] if stamps else None, flags=session_flags(builder.turns, builder.flags),
                      metadata={"layout": "legacy-json"})


def _copilot_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source copilot: $COPILOT_HOME or ~/.copilot: session-state/ (events.jsonl per session) and
    history-session-state/ (2025 JSON sessions), on every system."""
    root = Path(env["COPILOT_HOME"]) if env.get("COPILOT_HOME") else home / ".copilot"
    return [root / "session-state", root / "history-session-state"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sniff_dir=sniff_dir, parse_dir=parse_dir,
                sources=(AgentSource("copilot", _copilot_folders),))
