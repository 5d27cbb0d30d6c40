"""OpenAI Chat Completions conversations and Hugging Face chat datasets (JSON, JSONL, parquet).

One conversation per record: an object with a `messages` list (plus optional `tools`, `id`, `model`), or a bare
list of messages. Records are JSONL lines, elements of a top-level JSON array, a single JSON document, or the rows of
a parquet file with a `messages` column (line numbers are then row numbers, byte offsets 0). Messages map one to one
through common.openai_message_turn: `tool_calls` arguments as JSON text or dict, typed content parts
(`text` / `reasoning` / `tool_call`), `reasoning_content`; results without call ids are linked to calls by position.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import link_tool_results, openai_message_turn, session_flags, tool_definitions
from logminer.reading.formats.jsondoc import ShapeError, first_value, parse_records, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "openai-chat"
RECORD_UNIT = "item"  # one conversation: a JSONL line, an array element, a document or a parquet row
PARQUET_MAGIC = b"PAR1"
_RESERVED = ("conversations", "trajectory_format", "history", "response", "request_params", "question", "system")
_ANTHROPIC_BLOCKS = ("tool_use", "tool_result", "thinking", "redacted_thinking")


def sniff(source: SourceFile) -> bool:
    if source.data[:4] == PARQUET_MAGIC:
        return source.data[-4:] == PARQUET_MAGIC and b"messages" in _parquet_footer(source.data)
    value = first_value(source)
    if isinstance(value, list):  # a bare message list (or an array of conversations)
        if value and isinstance(value[0], dict) and _is_message(value[0]):
            return _has_roles(value)
        value = value[0] if value else None
    elif isinstance(value, dict) and _is_message(value) and source.head.lstrip().startswith("["):
        return _has_roles([value])  # a pretty-printed bare message list: first_value gave its first element
    if not isinstance(value, dict) or any(key in value for key in _RESERVED):
        return False
    messages = value.get("messages")
    return isinstance(messages, list) and bool(messages) and _has_roles(messages)


def _parquet_footer(data: bytes) -> bytes:
    """The parquet footer (file metadata with the schema's column names): its length is stored before the magic."""
    if len(data) < 12:
        return b""
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length:-8] if 0 < length <= len(data) - 12 else b""


def _is_message(value: dict[str, Any]) -> bool:
    return "role" in value and ("content" in value or "tool_calls" in value)


def _has_roles(messages: list[Any]) -> bool:
    """Chat messages with roles, and no Anthropic content blocks (those files are anthropic-messages')."""
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages[:8]):
        return False
    blocks = [b for m in messages[:8] for b in (m.get("content") if isinstance(m.get("content"), list) else [])]
    return not any(isinstance(b, dict) and b.get("type") in _ANTHROPIC_BLOCKS for b in blocks)


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    if source.data[:4] == PARQUET_MAGIC:
        yield from _parse_parquet(source)
        return
    yield from parse_records(source, NAME, conversation)


def conversation(value: Any) -> Session:
    """One record (an object with `messages`, or a bare message list) as a Session without file details."""
    if isinstance(value, list):
        value = {"messages": value}
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        raise ShapeError("expected an object with a `messages` list (OpenAI chat format)")
    flags: set[str] = set()
    turns = []
    for index, message in enumerate(value["messages"]):
        if not isinstance(message, dict):
            raise ShapeError(f"message {index} is not a JSON object")
        turn = openai_message_turn(message, flags)
        if turn is None:
            raise ShapeError(f"message {index} has unknown role {message.get('role')!r}")
        turns.append(turn)
    link_tool_results(turns)
    metadata = {key: value[key] for key in ("source", "category", "dataset") if isinstance(value.get(key), str)}
    return Session(
        session_id=str(value["id"]) if isinstance(value.get("id"), (str, int)) else "", agent=NAME, source_file="",
        turns=turns, model=value.get("model") if isinstance(value.get("model"), str) else None,
        tools=tool_definitions(value.get("tools")), flags=session_flags(turns, flags), metadata=metadata,
    )


def _parse_parquet(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    """Rows of a parquet chat dataset; the whole file is rejected when polars cannot read it or lacks `messages`."""
    import polars as pl

    try:
        frame = pl.read_parquet(io.BytesIO(source.data))
    except Exception as error:  # polars raises several error types for corrupt files
        yield Rejected(source.path, 0, f"unreadable parquet: {error}")
        return
    if "messages" not in frame.columns:
        yield Rejected(source.path, 0, f"parquet without a `messages` column (columns: {', '.join(frame.columns)})",
                       records=max(frame.height, 1))
        return
    for row_number, row in enumerate(frame.iter_rows(named=True), start=1):
        try:
            session = conversation(_drop_nulls(row))
        except ShapeError as error:
            yield Rejected(source.path, row_number, str(error))
            continue
        session.agent, session.source_file = NAME, source.path
        session.session_id = session.session_id or f"{NAME}:{stable_id(source.path, row_number)}"
        session.line_start = session.line_end = row_number
        yield session


def _drop_nulls(value: Any) -> Any:
    """Parquet structs carry every field of the union schema; missing ones come back as None and are removed."""
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
