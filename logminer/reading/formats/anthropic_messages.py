"""Anthropic Messages API conversations: `{system?, messages, tools?, model?}` requests, optionally logged as
`{request, response}` pairs whose response (a Message with content blocks) is the final assistant turn.

Content is a string or blocks: `text`, `thinking` (→ reasoning), `redacted_thinking` (opaque, dropped), `tool_use`
(→ tool call), and in user messages `tool_result` (with `is_error`), which becomes a tool turn (common.anthropic_turns).
Tool definitions `{name, description, input_schema}` are stored OpenAI-style (common.tool_definitions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import anthropic_turns, session_flags, tool_definitions
from logminer.reading.formats.jsondoc import ShapeError, first_value, parse_records
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "anthropic-messages"
RECORD_UNIT = "item"  # one request (JSONL line, array element or document)
_BLOCK_TYPES = ("tool_use", "tool_result", "thinking", "redacted_thinking")


def sniff(source: SourceFile) -> bool:
    value = first_value(source)
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        value = {"messages": value}  # a bare message list (Cline's api_conversation_history.json)
    elif isinstance(value, list):
        value = value[0] if value else None
    elif isinstance(value, dict) and "role" in value and source.head.lstrip().startswith("["):
        value = {"messages": [value]}  # pretty-printed bare message list: first_value gave its first element
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("request"), dict) and isinstance(value.get("response"), dict):
        value = value["request"]
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages[:8]):
        return False
    blocks = [b for m in messages for b in (m.get("content") if isinstance(m.get("content"), list) else [])]
    return "system" in value or any(isinstance(b, dict) and b.get("type") in _BLOCK_TYPES for b in blocks)


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    yield from parse_records(source, NAME, conversation)


def conversation(value: Any) -> Session:
    """One request (plus logged response), or a bare message list, as a Session without file details."""
    if isinstance(value, list):
        value = {"messages": value}
    if not isinstance(value, dict):
        raise ShapeError("expected an Anthropic Messages request object")
    response = value.get("response") if isinstance(value.get("request"), dict) else None
    request = value["request"] if response is not None else value
    if not isinstance(request.get("messages"), list):
        raise ShapeError("expected an object with a `messages` list (Anthropic Messages format)")
    flags: set[str] = set()
    tool_names: dict[str, str] = {}
    turns: list[Turn] = []
    system = request.get("system")
    if system:
        turns += anthropic_turns("system", system, flags, tool_names)
    messages = list(request["messages"]) + ([response] if isinstance(response, dict) else [])
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ShapeError(f"message {index}: expected role user or assistant")
        turns += anthropic_turns(message["role"], message.get("content"), flags, tool_names)
    model = (response or {}).get("model") or request.get("model")
    own_id = (response or {}).get("id") or value.get("id")
    return Session(session_id=own_id if isinstance(own_id, str) else "", agent=NAME, source_file="", turns=turns,
                   model=model if isinstance(model, str) else None, tools=tool_definitions(request.get("tools")),
                   flags=session_flags(turns, flags))


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
