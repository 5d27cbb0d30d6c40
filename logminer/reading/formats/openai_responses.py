"""OpenAI Responses API items: logged requests (`input` items, `instructions`, `tools`) with their `output`, Response
objects, or a stream of bare items (JSONL, one item per line, the whole file one conversation).

Item types `message` (parts `input_text` / `output_text`), `function_call`, `function_call_output`, `reasoning`
(summary text kept as reasoning; `encrypted_content` is opaque and dropped) and the tool-call kinds Codex adds are
mapped by common.ResponsesTurns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import ResponsesTurns, session_flags, tool_definitions
from logminer.reading.formats.jsondoc import Record, ShapeError, first_value, iter_records, parse_records, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "openai-responses"
RECORD_UNIT = "item"  # one logged exchange, Response object, or (item streams) one item per line
ITEM_KEYS = {  # item type → keys it always has (so other formats' `type` fields do not pass for items)
    "message": ("role", "content"), "function_call": ("name", "arguments"), "function_call_output": ("call_id", "output"),
    "reasoning": ("summary",), "custom_tool_call": ("name", "input"), "custom_tool_call_output": ("call_id", "output"),
    "web_search_call": ("action",), "local_shell_call": ("action",), "local_shell_call_output": ("call_id", "output"),
}
_PART_TYPES = ("input_text", "output_text", "summary_text")


def sniff(source: SourceFile) -> bool:
    value = first_value(source)
    if isinstance(value, list):
        return bool(value) and all(_is_item(item) for item in value[:8])
    if not isinstance(value, dict) or "payload" in value:  # Codex rollout lines wrap items in `payload`
        return False
    if _is_item(value):
        return True
    items = [i for key in ("input", "output") if isinstance(value.get(key), list) for i in value[key]]
    return any(_is_item(item) for item in items[:8]) and all(_is_item(i) or _is_easy_message(i) for i in items[:8])


def _is_easy_message(item: Any) -> bool:
    """An untyped input message `{role, content: str}` (allowed in `input` next to typed items)."""
    return isinstance(item, dict) and set(item) <= {"role", "content"} and isinstance(item.get("content"), str)


def _is_item(item: Any) -> bool:
    """A Responses item: a known `type` with that type's keys; messages carry typed parts or a plain string."""
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or item["type"] not in ITEM_KEYS:
        return False
    if not all(key in item for key in ITEM_KEYS[item["type"]]):
        return False
    if item["type"] != "message":
        return True
    content = item.get("content")
    return isinstance(content, str) or (isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in _PART_TYPES + ("refusal", "input_image", "input_file")
        for p in content))


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    first = first_value(source)
    if isinstance(first, dict) and _is_item(first):
        yield from _item_stream(source)
    else:
        yield from parse_records(source, NAME, exchange)


def exchange(value: Any) -> Session:
    """One record: {instructions?, input, output?, tools?, model?, id?}, a Response object, or a bare item list."""
    if isinstance(value, list):
        value = {"input": value}
    if not isinstance(value, dict) or not any(isinstance(value.get(k), list) for k in ("input", "output")):
        raise ShapeError("expected Responses items: an object with `input` / `output` item lists, or an item list")
    builder = ResponsesTurns()
    if isinstance(value.get("instructions"), str) and value["instructions"]:
        builder.turns.append(Turn(role="system", text=value["instructions"]))
    items = list(value.get("input") or []) + list(value.get("output") or [])
    for index, item in enumerate(items):
        if isinstance(item, dict) and "type" not in item and "role" in item:
            item = {**item, "type": "message"}  # easy input messages: {role, content}
        problem = builder.add(item)
        if problem:
            raise ShapeError(f"item {index}: {problem}")
    own_id = value.get("id") if isinstance(value.get("id"), str) else ""
    return Session(session_id=own_id, agent=NAME, source_file="", turns=builder.turns,
                   model=value.get("model") if isinstance(value.get("model"), str) else None,
                   tools=tool_definitions(value.get("tools")), flags=session_flags(builder.turns, builder.flags))


def _item_stream(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    """A file of bare items (one per line or one array): one conversation, each item one record."""
    builder = ResponsesTurns()
    used: list[Record] = []
    for record in iter_records(source):
        if isinstance(record, Rejected):
            yield record
            continue
        values = record.value if isinstance(record.value, list) else [record.value]
        # a record is used whole or rejected whole: check a list's items before any reaches the conversation
        # (add() judges each item on its own and changes nothing when it returns a problem)
        problem = next((p for p in map(ResponsesTurns().add, values) if p), None) if len(values) > 1 else None
        problem = problem or next((p for p in map(builder.add, values) if p), None)
        if problem:
            yield Rejected(source.path, record.line_start, problem)
        else:
            used.append(record)
    if used and builder.turns:
        yield Session(
            session_id=f"{NAME}:{stable_id(source.path, used[0].line_start)}", agent=NAME, source_file=source.path,
            turns=builder.turns, line_start=used[0].line_start, line_end=used[-1].line_end,
            byte_start=used[0].byte_start, byte_end=used[-1].byte_end, records=len(used),
            flags=session_flags(builder.turns, builder.flags))
    elif used:
        yield Skipped(source.path, used[0].line_start, "Responses items without conversation turns", records=len(used))


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
