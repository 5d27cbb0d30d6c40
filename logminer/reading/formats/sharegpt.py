"""ShareGPT conversations (LLaMA-Factory, glaive, ...): `{conversations: [{from, value}], tools?, system?}`.

`from`: human → user, gpt → assistant, system → system, function_call → an assistant turn whose value is JSON
`{name, arguments}` (or a list of them: parallel calls), observation → a tool turn answering the call before it.
`tools` may be a JSON string. Records are array elements of a JSON document or JSONL lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import link_tool_results, make_tool_call, session_flags, tool_definitions
from logminer.reading.formats.jsondoc import ShapeError, first_dict, loads, parse_records
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, ToolCall, Turn

NAME = "sharegpt"
RECORD_UNIT = "item"  # one conversation object
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
         "function_call": "assistant", "observation": "tool", "tool": "tool"}


def sniff(source: SourceFile) -> bool:
    value = first_dict(source)
    turns = value.get("conversations") if value else None
    return isinstance(turns, list) and bool(turns) and all(
        isinstance(t, dict) and "from" in t and "value" in t for t in turns[:8])


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    yield from parse_records(source, NAME, conversation)


def conversation(value: Any) -> Session:
    if not isinstance(value, dict) or not isinstance(value.get("conversations"), list):
        raise ShapeError("expected an object with a `conversations` list (ShareGPT format)")
    flags: set[str] = set()
    turns: list[Turn] = []
    if isinstance(value.get("system"), str) and value["system"]:
        turns.append(Turn(role="system", text=value["system"]))
    for index, entry in enumerate(value["conversations"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("from"), str) or entry["from"] not in ROLES:
            raise ShapeError(f"conversation entry {index}: unknown `from` {entry.get('from') if isinstance(entry, dict) else entry!r}")
        text = entry.get("value")
        text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
        if entry["from"] == "function_call":
            turns.append(Turn(role="assistant", tool_calls=_calls(text)))
        else:
            turns.append(Turn(role=ROLES[entry["from"]], text=text))
    link_tool_results(turns)
    own_id = value.get("id")
    return Session(session_id=str(own_id) if isinstance(own_id, (str, int)) else "", agent=NAME, source_file="",
                   turns=turns, tools=tool_definitions(value.get("tools")), flags=session_flags(turns, flags))


def _calls(text: str) -> list[ToolCall]:
    """A function_call value: JSON {name, arguments} or a list of them; anything else is kept as invalid text."""
    try:
        value = loads(text)
    except ValueError:
        return [make_tool_call("", text)]
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, dict) and "name" in v for v in values):
        return [make_tool_call("", text)]
    return [make_tool_call(v["name"], v.get("arguments", v.get("parameters", {})), v.get("id")) for v in values]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
