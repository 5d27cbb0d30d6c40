"""LLM call logs: LiteLLM completion logs and request/response JSONL logs, one session per call.

- LiteLLM completion log: one object `{messages, tools?, kwargs, response, ...}`; the session is the request's
  messages plus the response's first choice message.
- Request/response JSONL (e.g. SWE-agent interaction logs): a `{type: "request", request_params: {model, messages,
  tools}}` line followed by its `{type: "response", response: {choices}}` line; both lines feed one session. Objects
  holding `{request: {...}, response: {...}}` on one line work too.
Consecutive calls of one conversation repeat its prefix; merging them is dedup's job, not the reader's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from logminer.reading.formats.common import link_tool_results, openai_message_turn, session_flags, tool_definitions
from logminer.reading.formats.jsondoc import Record, ShapeError, first_dict, iter_records, position, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "llm-log"
RECORD_UNIT = "item"  # one log object (a JSONL line or a document); a request and its response line are two
_FIRST_LINE_KEYS = re.compile(r'"messages"\s*:.*"response"\s*:\s*\{', re.DOTALL)


def sniff(source: SourceFile) -> bool:
    value = first_dict(source)
    if value is None:  # a first record longer than the head: look for both keys in the first line
        if source.is_binary or not source.head.lstrip().startswith("{"):
            return False
        first_line = source.data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        return bool(_FIRST_LINE_KEYS.search(first_line))
    return _kind(value) is not None


def _kind(value: dict[str, Any]) -> str | None:
    if isinstance(value.get("messages"), list) and isinstance(value.get("response"), dict):
        return "completion"
    if value.get("type") == "request" and isinstance(value.get("request_params"), dict):
        return "request"
    if value.get("type") == "response" and isinstance(value.get("response"), dict):
        return "response"
    request, response = value.get("request"), value.get("response")
    if isinstance(request, dict) and isinstance(response, dict) and "choices" in response:
        return "pair"  # OpenAI-style; Anthropic {request, response} pairs are anthropic-messages'

    return None


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    pending: Record | None = None  # a request line waiting for its response line
    for record in iter_records(source):
        if isinstance(record, Rejected):
            yield record
            continue
        kind = _kind(record.value) if isinstance(record.value, dict) else None
        if pending is not None and kind != "response":
            yield _session(source, [pending], pending.value["request_params"], None)
            pending = None
        try:
            if kind == "completion":
                yield _session(source, [record], record.value, record.value["response"])
            elif kind == "pair":
                yield _session(source, [record], record.value["request"], record.value["response"])
            elif kind == "request":
                pending = record
            elif kind == "response" and pending is not None:
                yield _session(source, [pending, record], pending.value["request_params"], record.value["response"])
                pending = None
            elif kind == "response":
                yield Rejected(source.path, record.line_start, "response line without a preceding request line")
            else:
                yield Rejected(source.path, record.line_start, "unknown LLM log record (expected messages + response, "
                               "or request/response lines)")
        except ShapeError as error:
            yield Rejected(source.path, record.line_start, str(error), records=1 if kind != "response" else 2)
            pending = None
    if pending is not None:
        yield _session(source, [pending], pending.value["request_params"], None)


def _iso(timestamp: Any) -> str | None:
    """An ISO 8601 time: strings as logged, epoch seconds (LiteLLM) converted to UTC."""
    if isinstance(timestamp, str) and timestamp:
        return timestamp
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool) and 0 < timestamp < 1e11:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds")
    return None


def _session(source: SourceFile, records: list[Record], request: dict[str, Any], response: Any) -> Session:
    """One call: the request's messages, then the response's first choice message (when there is one)."""
    if not isinstance(request.get("messages"), list):
        raise ShapeError("request without a `messages` list")
    flags: set[str] = set()
    messages = list(request["messages"])
    choices = response.get("choices") if isinstance(response, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and isinstance(choices[0].get("message"), dict):
        messages.append({**choices[0]["message"], "role": choices[0]["message"].get("role") or "assistant"})
    else:
        flags.add("no_response")
    turns = []
    for index, message in enumerate(messages):
        turn = openai_message_turn(message, flags) if isinstance(message, dict) else None
        if turn is None:
            raise ShapeError(f"message {index}: not a chat message with a known role")
        turns.append(turn)
    link_tool_results(turns)
    kwargs = request.get("kwargs") if isinstance(request.get("kwargs"), dict) else {}
    model = (response or {}).get("model") or request.get("model") or kwargs.get("model")
    own_id = (response or {}).get("id")
    timestamps = [_iso(r.value.get("timestamp")) for r in records if _iso(r.value.get("timestamp"))]
    session = Session(
        session_id=own_id if isinstance(own_id, str) and own_id else f"{NAME}:{stable_id(source.path, records[0].line_start)}",
        agent=NAME, source_file=source.path, turns=turns, records=len(records),
        model=model if isinstance(model, str) else None,
        started_at=timestamps[0] if timestamps else None, ended_at=timestamps[-1] if timestamps else None,
        tools=tool_definitions(request.get("tools") or kwargs.get("tools")), flags=session_flags(turns, flags))
    position(session, records[0])
    session.line_end, session.byte_end = records[-1].line_end, records[-1].byte_end
    return session


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
