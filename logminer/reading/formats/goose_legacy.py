"""Goose's older session files `<sessions dir>/<name>.jsonl` (before sessions.db; Goose imports them once).

A first line of session metadata (`working_dir`, `description`, `schedule_id`, token counts, ...), then one message
per line: `{id?, role: user|assistant, created (epoch seconds), content: [blocks]}` with the content blocks of
goose.GooseTurns. One record is one line; the metadata line is Skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from logminer.reading.formats.goose import GooseTurns
from logminer.reading.formats.jsondoc import head_objects, iso_from_epoch, iter_json_lines, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "goose-jsonl"
RECORD_UNIT = "line"
META_KEYS = {"working_dir", "description"}
META_SKIP = "goose session metadata line"


def _is_message(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("role") in ("user", "assistant")
            and isinstance(value.get("content"), list) and "created" in value)


def sniff(source: SourceFile) -> bool:
    objects = head_objects(source, limit=4)
    if not objects or not META_KEYS <= objects[0].keys() or "role" in objects[0]:
        return False
    return all(_is_message(value) for value in objects[1:])


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    builder = GooseTurns()
    meta: dict[str, Any] = {}
    first = last = start = end = 0
    for number, begin, finish, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        if not meta and isinstance(value, dict) and META_KEYS <= value.keys() and "role" not in value:
            meta = value
            yield Skipped(source.path, number, META_SKIP)
            continue
        problem = builder.add(value.get("role") if isinstance(value, dict) else None,
                              value.get("content") if isinstance(value, dict) else None,
                              iso_from_epoch(value.get("created")) if isinstance(value, dict) else None)
        if problem:
            yield Rejected(source.path, number, f"goose session line: {problem}")
            continue
        first, start = (first, start) if first else (number, begin)
        last, end = number, finish
    if builder.records:
        metadata = {"title": meta.get("description"), "cwd": meta.get("working_dir")}
        session = builder.session(Path(source.path).name.split(".")[0] or stable_id(NAME, source.path), source.path,
                                  {k: v for k, v in metadata.items() if isinstance(v, str) and v}, None, None)
        session.agent = "goose"
        session.line_start, session.line_end, session.byte_start, session.byte_end = first, last, start, end
        yield session


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
