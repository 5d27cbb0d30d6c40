"""OpenHands V1 (software-agent-sdk) events: `kind`-discriminated, as JSONL or as a persisted conversation folder.

Read from OpenHands/software-agent-sdk (openhands-sdk/openhands/sdk/event/llm_convertible/*.py and
conversation/persistence_const.py at 167ee0a): a conversation folder holds `base_state.json` and
`events/event-<index, 5+ digits>-<event id>.json`, one event per file; events may also come as JSONL.
- SystemPromptEvent{system_prompt{text}, tools} → system turn (+ the session's tool definitions).
- MessageEvent{source, llm_message{role, content[], reasoning_content}} → user / assistant turn.
- ActionEvent{thought[], reasoning_content, tool_call{id, name, arguments}, llm_response_id} → a tool call; actions
  of one `llm_response_id` share one assistant turn (parallel calls).
- ObservationEvent{tool_call_id, tool_name, observation{content[], is_error}}, UserRejectObservation{rejection_reason},
  AgentErrorEvent{error} → tool turns.
- Everything else (ConversationStateUpdateEvent, Condensation, PauseEvent, ...) is state, not a turn. In JSONL, a
  `kind` not known here is counted once per kind as "unknown openhands-v1 line type ..." (format drift).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, session_flags
from logminer.reading.formats.drift import UnknownTypes
from logminer.reading.formats.jsondoc import (
    content_hash,
    head_objects,
    iter_json_lines,
    loads,
    stable_id,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "openhands-v1"
RECORD_UNIT = "line"  # JSONL: one event per line; folders: one event per file (plus base_state.json)

BASE_STATE = "base_state.json"
EVENTS_DIR = "events"
_EVENT_FILE = re.compile(r"^event-(\d{5,})-[0-9a-fA-F-]{8,}\.json$")
_EVENT_START = re.compile(
    r'\s*\{"id":\s*"[0-9a-fA-F-]{32,36}",\s*"timestamp":\s*"[^"]+",\s*"source":\s*"(agent|user|environment|hook)"'
)
_KNOWN_KINDS = {
    "SystemPromptEvent", "MessageEvent", "ActionEvent", "ObservationEvent", "UserRejectObservation",
    "AgentErrorEvent", "ConversationStateUpdateEvent", "Condensation", "CondensationRequest",
    "CondensationSummaryEvent", "PauseEvent", "ConversationErrorEvent", "TokenEvent",
}
Event = Session | Skipped | Rejected


def sniff(source: SourceFile) -> bool:
    if source.is_binary:
        return False
    objects = head_objects(source, limit=16)
    if objects:
        return any(str(obj.get("kind")) in _KNOWN_KINDS and "timestamp" in obj for obj in objects)
    return bool(_EVENT_START.match(source.head))  # a first event longer than the sniff window (system prompt)


def sniff_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, BASE_STATE)) and os.path.isdir(os.path.join(path, EVENTS_DIR))


def parse(source: SourceFile) -> Iterator[Event]:
    events: list[dict[str, Any]] = []
    first = last = 0
    unknown = UnknownTypes(NAME)
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            yield Rejected(source.path, number, "line is not an event object with a `kind`")
        elif value["kind"] not in _KNOWN_KINDS:
            unknown.add(value["kind"], number)
        else:
            events.append(value)
            first, last = first or number, number
    if events:
        session = _session(source.path, events, stable_id(NAME, content_hash(source)))
        session.line_start, session.line_end = first, last
        session.byte_start, session.byte_end = 0, len(source.data)
        yield session
    yield from unknown.skipped(source.path)


def parse_dir(path: str) -> Iterator[Event]:
    """One session per conversation folder; every file under it is counted (events, base state, or rejected)."""
    events: list[tuple[int, dict[str, Any]]] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file_path = os.path.join(root, name)
            match = _EVENT_FILE.match(name) if os.path.basename(root) == EVENTS_DIR else None
            if file_path == os.path.join(path, BASE_STATE):
                yield Skipped(file_path, 0, "conversation state (openhands-v1 base_state.json), not an event")
            elif match is None:
                yield Rejected(file_path, 0, "not an openhands-v1 event file (events/event-NNNNN-<id>.json)")
            else:
                event = _read_event(file_path)
                if isinstance(event, Rejected):
                    yield event
                else:
                    events.append((int(match.group(1)), event))
    if events:
        events.sort(key=lambda item: item[0])
        state = _read_event(os.path.join(path, BASE_STATE), kind_required=False)
        state = state if isinstance(state, dict) else {}
        conversation_id = state.get("id") or os.path.basename(path.rstrip(os.sep))
        session = _session(path, [event for _, event in events], str(conversation_id))
        llm = (state.get("agent") or {}).get("llm") if isinstance(state.get("agent"), dict) else None
        if session.model is None and isinstance(llm, dict) and isinstance(llm.get("model"), str):
            session.model = llm["model"]
        yield session


def _read_event(file_path: str, *, kind_required: bool = True) -> dict[str, Any] | Rejected:
    try:
        source = SourceFile.open(file_path)
        value = loads(source.text)
    except SourceError as error:
        return Rejected(file_path, 0, error.reason)
    except json.JSONDecodeError as error:
        return Rejected(file_path, error.lineno, f"invalid JSON: {error.msg}")
    if not isinstance(value, dict) or (kind_required and not isinstance(value.get("kind"), str)):
        return Rejected(file_path, 0, "event file is not an object with a `kind`")
    return value


def _session(path: str, events: list[dict[str, Any]], session_id: str) -> Session:
    session = Session(session_id=session_id, agent=NAME, source_file=path, records=len(events))
    last_response: str | None = None
    for event in events:
        kind = event["kind"]
        stamp = event.get("timestamp") if isinstance(event.get("timestamp"), str) else None
        if kind == "SystemPromptEvent":
            prompt = event.get("system_prompt")
            text = content_text([prompt, event.get("dynamic_context")] if prompt else event.get("content"))
            session.turns.append(Turn(role="system", text=text, timestamp=stamp))
            session.tools = [t for t in event.get("tools") or [] if isinstance(t, dict)]
            last_response = None
        elif kind == "MessageEvent":
            message = event.get("llm_message") if isinstance(event.get("llm_message"), dict) else {}
            role = message.get("role") if message.get("role") in ("system", "user", "assistant") else None
            role = role or ("user" if event.get("source") == "user" else "assistant")
            text = content_text(list(message.get("content") or []) + list(event.get("extended_content") or []))
            session.turns.append(
                Turn(role=role, text=text, reasoning=str(message.get("reasoning_content") or ""), timestamp=stamp)
            )
            last_response = None
        elif kind == "ActionEvent":
            raw = event.get("tool_call") if isinstance(event.get("tool_call"), dict) else {}
            call_id = raw.get("id") or event.get("tool_call_id")
            arguments = raw.get("arguments") if "arguments" in raw else _action_arguments(event)
            call = make_tool_call(raw.get("name") or event.get("tool_name"), arguments, call_id)
            response_id = event.get("llm_response_id")
            turns = session.turns
            if response_id and response_id == last_response and turns and turns[-1].role == "assistant":
                turns[-1].tool_calls.append(call)
            else:
                turns.append(
                    Turn(
                        role="assistant",
                        text=content_text(event.get("thought")),
                        reasoning=str(event.get("reasoning_content") or ""),
                        tool_calls=[call],
                        timestamp=stamp,
                    )
                )
            last_response = response_id
        elif kind in ("ObservationEvent", "UserRejectObservation", "AgentErrorEvent"):
            session.turns.append(_tool_turn(kind, event, stamp))
            last_response = None
        if stamp:
            session.started_at = session.started_at or stamp
            session.ended_at = stamp
        session.model = session.model or _model_of(event)
    session.flags = session_flags(session.turns, set(session.flags))
    return session


def _tool_turn(kind: str, event: dict[str, Any], stamp: str | None) -> Turn:
    if kind == "ObservationEvent":
        observation = event.get("observation") if isinstance(event.get("observation"), dict) else {}
        text = content_text(observation.get("content"))
        is_error = bool(observation.get("is_error"))
    elif kind == "UserRejectObservation":
        text, is_error = f"Action rejected: {event.get('rejection_reason', '')}", True
    else:
        text, is_error = str(event.get("error") or ""), True
    return Turn(
        role="tool",
        text=text,
        tool_call_id=event.get("tool_call_id"),
        name=event.get("tool_name"),
        is_error=is_error,
        timestamp=stamp,
    )


def _action_arguments(event: dict[str, Any]) -> dict[str, Any]:
    action = event.get("action") if isinstance(event.get("action"), dict) else {}
    return {key: value for key, value in action.items() if key != "kind"}


def _model_of(event: dict[str, Any]) -> str | None:
    """The model name from a stats state update (`value.usage_to_metrics.default.model_name`)."""
    if event.get("kind") != "ConversationStateUpdateEvent" or not isinstance(event.get("value"), dict):
        return None
    usage = event["value"].get("usage_to_metrics")
    default = usage.get("default") if isinstance(usage, dict) else None
    name = default.get("model_name") if isinstance(default, dict) else None
    return name if isinstance(name, str) and name else None


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sniff_dir=sniff_dir, parse_dir=parse_dir)
