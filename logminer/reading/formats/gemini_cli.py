"""Gemini CLI chat recordings (`~/.gemini/tmp/<project>/chats/session-*.jsonl`, older `session-*.json`).

Read from google-gemini/gemini-cli (packages/core/src/services/chatRecordingService.ts, chatRecordingTypes.ts):
- JSONL recording: a metadata line `{sessionId, projectHash, startTime, lastUpdated, kind: main|subagent}`, then
  message records `{id, timestamp, type, content, ...}` and control lines. A message is re-appended whole on every
  update (same `id`): the last copy wins and keeps the place of the first. `{"$set": {...}}` updates metadata (with
  `messages` it is a checkpoint that replaces the history); `{"$rewindTo": id}` drops that message and every later one.
- message types: `user` (content: a string or Gemini parts), `gemini` (content, `thoughts[{subject, description}]`,
  `toolCalls[{id, name, args, result: parts with functionResponse, status}]`, model), and `info` / `error` /
  `warning` (UI notices the model never sees: Skipped).
- subagent recordings (`kind: subagent`) live in `chats/<parent session id>/<id>.jsonl`: the folder names the parent.
- the older single-JSON session `{sessionId, projectHash, startTime, lastUpdated, messages[]}` holds the same
  messages (early Qwen Code, a Gemini CLI fork, wrote it too with type `qwen`: labelled "qwen-code").
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import (
    NON_TEXT_DROPPED,
    content_text,
    make_tool_call,
    session_flags,
)
from logminer.reading.formats.drift import UnknownTypes, unknown_reason
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

NAME = "gemini-cli"
RECORD_UNIT = "line"  # JSONL: every line; the single-JSON session: every message

REPLY_TYPES = ("gemini", "qwen")
NOTICE_TYPES = ("info", "error", "warning")
SKIP_SET = "gemini-cli $set line: session metadata update"
SKIP_REWIND = "gemini-cli $rewindTo line: rewind marker"
SKIP_OLD_COPY = "gemini-cli earlier copy of a re-appended message (the last copy wins)"
SKIP_REWOUND = "gemini-cli message removed by a later $rewindTo or $set checkpoint"
SKIP_EMPTY = "gemini-cli session without user or model messages"
UNKNOWN, BAD = "unknown", "bad"  # Conversation.add verdicts that are not skip reasons
_DOC_KEY = re.compile(r'"projectHash"\s*:')
_DOC_MESSAGES = re.compile(r'"messages"\s*:\s*\[')
Event = Session | Skipped | Rejected


def notice_reason(kind: str) -> str:
    return f"gemini-cli {kind} message: UI notice, not sent to the model"


def sniff(source: SourceFile) -> bool:
    """A metadata line, a `$set`/`$rewindTo` line or `gemini` messages among the first lines; or the JSON session."""
    objects = head_objects(source, limit=16)
    if any(_is_metadata(obj) for obj in objects) or any("$set" in obj or "$rewindTo" in obj for obj in objects):
        return True
    if sum(_is_message(obj) and obj.get("type") in REPLY_TYPES for obj in objects) >= 1 and all(
            _is_message(obj) for obj in objects):
        return True
    head = source.head  # a pretty-printed session document: no line of it is JSON alone
    return (not objects and starts_with_json(head, "{") and bool(_DOC_KEY.search(head[:4096]))
            and bool(_DOC_MESSAGES.search(head)))


def _is_metadata(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("sessionId"), str) and isinstance(obj.get("projectHash"), str) and "id" not in obj


def _is_message(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("id"), str) and "type" in obj and "uuid" not in obj


def parse(source: SourceFile) -> Iterator[Event]:
    lines = [line.strip() for line in source.data.split(b"\n") if line.strip()]
    if not lines:
        return
    objects = head_objects(source, limit=1)
    one_document = len(lines) == 1 and bool(objects) and isinstance(objects[0].get("messages"), list)
    if lines[0] in (b"{", b"\xef\xbb\xbf{") or one_document:  # pretty-printed, or the whole session on one line
        yield from _parse_document(source)
    else:
        yield from _parse_recording(source)


class Conversation:
    """Turns of the messages in order; `add` says why a message gave none (a notice, an unknown type)."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.flags: set[str] = set()
        self.models: list[str] = []
        self.stamps: list[str] = []
        self.kinds: set[str] = set()

    def add(self, message: dict[str, Any]) -> str | None:
        kind = message.get("type")
        if kind in NOTICE_TYPES:
            return notice_reason(kind)
        if kind == "user":
            self.turns.append(Turn(role="user", text=_parts_text(message.get("content"), self.flags),
                                   timestamp=_stamp(message)))
        elif kind in REPLY_TYPES:
            self.turns += _reply(message, self.flags)
            self.kinds.add(kind)
            if isinstance(message.get("model"), str):
                self.models.append(message["model"])
        else:
            return UNKNOWN
        if _stamp(message):
            self.stamps.append(message["timestamp"])
        return None


def _parse_recording(source: SourceFile) -> Iterator[Event]:
    meta: dict[str, Any] = {}
    messages: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (line, last copy), in first-seen order
    used: list[int] = []
    skipped: dict[int, str] = {}  # line -> why it gave no turn; a used line wins
    unknown = UnknownTypes(NAME)
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict):
            yield Rejected(source.path, number, "expected a JSON object per line")
        elif isinstance(value.get("$rewindTo"), str):
            _drop_from(messages, value["$rewindTo"], skipped)
            skipped[number] = SKIP_REWIND
        elif isinstance(value.get("$set"), dict):
            meta.update(value["$set"])
            if isinstance(value["$set"].get("messages"), list):  # a checkpoint: the history is replaced
                _drop_from(messages, None, skipped)
                _add_all(messages, value["$set"]["messages"], number)
            skipped[number] = SKIP_SET
        elif _is_message(value):
            if value["id"] in messages:
                skipped[messages[value["id"]][0]] = SKIP_OLD_COPY
            messages[value["id"]] = (number, value)
        elif _is_metadata(value):
            meta.update({k: v for k, v in value.items() if k != "messages"})
            _add_all(messages, _list(value.get("messages")), number)
            used.append(number)
        else:
            unknown.add(value.get("type", "(no type)"), number)
    conversation = Conversation()
    for number, message in messages.values():
        reason = conversation.add(message)
        if reason:
            skipped[number] = unknown_reason(NAME, f"message:{message.get('type')}") if reason == UNKNOWN else reason
        else:
            used.append(number)
    lines = sorted(set(used))  # a checkpoint or metadata line holding several messages counts once
    if conversation.turns:
        yield _session(source, meta, conversation, lines[0], lines[-1], len(lines))
    else:
        skipped.update((line, SKIP_EMPTY) for line in lines)
        lines = []
    by_reason: dict[str, list[int]] = {}
    for line, reason in sorted(skipped.items()):
        if line not in set(lines):
            by_reason.setdefault(reason, []).append(line)
    for reason, numbers in by_reason.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))
    yield from unknown.skipped(source.path)


def _drop_from(messages: dict[str, tuple[int, dict[str, Any]]], message_id: str | None,
               skipped: dict[int, str]) -> None:
    """Drop `message_id` and every later message (all of them when the id is unknown or None)."""
    ids = list(messages)
    start = ids.index(message_id) if message_id in messages else 0
    for dropped in ids[start:]:
        skipped[messages.pop(dropped)[0]] = SKIP_REWOUND


def _add_all(messages: dict[str, tuple[int, dict[str, Any]]], items: list[Any], number: int) -> None:
    for item in items:
        if _is_message(item):
            messages[item["id"]] = (number, item)


def _parse_document(source: SourceFile) -> Iterator[Event]:
    """The single-JSON session: every message is one record (line 0: the whole file)."""
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list):
        yield Rejected(source.path, 0, "gemini-cli session file without a `messages` list")
        return
    conversation = Conversation()
    unknown = UnknownTypes(NAME)
    skipped: dict[str, int] = {}
    bad = used = 0
    for message in messages:
        reason = conversation.add(message) if _is_message(message) else BAD
        if reason == BAD:
            bad += 1
        elif reason == UNKNOWN:
            unknown.add(f"message:{message.get('type')}", 0)
        elif reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            used += 1
    if bad:
        yield Rejected(source.path, 0, "gemini-cli session items that are not messages (id, type)", records=bad)
    if conversation.turns:
        yield _session(source, document, conversation, 0, 0, used)
    elif used or not messages:
        skipped[SKIP_EMPTY] = used or 1  # an empty session still is one record: the file
    for reason, count in skipped.items():
        yield Skipped(source.path, 0, reason, records=count)
    yield from unknown.skipped(source.path)


def _session(source: SourceFile, meta: dict[str, Any], conversation: Conversation, first: int, last: int,
             records: int) -> Session:
    parent = None
    if meta.get("kind") == "subagent":  # chats/<parent session id>/<session id>.jsonl
        folder = os.path.basename(os.path.dirname(source.path))
        parent = folder if folder and folder != "chats" else None
    metadata = {"project_hash": meta.get("projectHash"), "kind": meta.get("kind"), "summary": meta.get("summary"),
                "relation": "subagent" if meta.get("kind") == "subagent" else "main"}
    stamps = conversation.stamps
    return Session(
        session_id=str(meta.get("sessionId") or stable_id(NAME, source.path)),
        agent="qwen-code" if "qwen" in conversation.kinds else NAME, source_file=source.path,
        turns=conversation.turns, line_start=first, line_end=last, records=records,
        model=conversation.models[-1] if conversation.models else None,
        started_at=meta["startTime"] if isinstance(meta.get("startTime"), str) else min(stamps, default=None),
        ended_at=meta["lastUpdated"] if isinstance(meta.get("lastUpdated"), str) else max(stamps, default=None),
        parent_session_id=parent, flags=session_flags(conversation.turns, conversation.flags),
        metadata={key: value for key, value in metadata.items() if isinstance(value, str)},
    )


def _reply(message: dict[str, Any], flags: set[str]) -> list[Turn]:
    stamp = _stamp(message)
    thoughts = [f"{t.get('subject', '')}: {t.get('description', '')}".strip(": ") if isinstance(t, dict) else str(t)
                for t in _list(message.get("thoughts")) if t]
    turn = Turn(role="assistant", text=_parts_text(message.get("content"), flags), reasoning="\n".join(thoughts),
                timestamp=stamp)
    results = []
    for raw in _list(message.get("toolCalls")):
        if not isinstance(raw, dict):
            continue
        turn.tool_calls.append(make_tool_call(raw.get("name"), raw.get("args") or {}, raw.get("id")))
        failed = raw.get("status") in ("error", "cancelled")
        result = raw.get("result")
        for part in result if isinstance(result, list) else [result]:
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                results.append(_response_turn(part["functionResponse"], raw, failed))
    return [turn, *results]


def _response_turn(response: dict[str, Any], call: dict[str, Any], failed: bool) -> Turn:
    body = response.get("response")
    if isinstance(body, dict):
        failed = failed or "error" in body
        value = body.get("error") if "error" in body else body.get("output", body)
        text = value if isinstance(value, str) else content_text(value) if isinstance(value, list) else str(value)
    else:
        text = content_text(body)
    return Turn(role="tool", text=text, tool_call_id=str(response.get("id") or call.get("id") or "") or None,
                name=response.get("name") or call.get("name"), is_error=failed, timestamp=_stamp(call))


def _parts_text(content: Any, flags: set[str]) -> str:
    """Gemini parts: strings, {text}, with {inlineData}/{fileData} (images, files) dropped and flagged."""
    if isinstance(content, list) and any(isinstance(p, dict) and ("inlineData" in p or "fileData" in p) for p in content):
        flags.add(NON_TEXT_DROPPED)
    return content_text(content)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _stamp(obj: dict[str, Any]) -> str | None:
    return obj["timestamp"] if isinstance(obj.get("timestamp"), str) else None


def _gemini_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source gemini: $GEMINI_CLI_HOME/.gemini/tmp, else ~/.gemini/tmp (all systems; chats/ under each project)."""
    return [(Path(env["GEMINI_CLI_HOME"]) if env.get("GEMINI_CLI_HOME") else home) / ".gemini" / "tmp"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("gemini", _gemini_folders),))
