"""Google Antigravity CLI (`agy`) step logs: JSONL, one agent step per line.

Lines `{step_index, source: USER_EXPLICIT | MODEL | SYSTEM, type, status, created_at, content?, thinking?,
tool_calls?, truncated_fields?}` (as in the real sample): `USER_INPUT` → user turn; `PLANNER_RESPONSE` → assistant
turn (`thinking` → reasoning, `content` → text, `tool_calls[{name, args}]` → calls; each argument value is itself
JSON text and is decoded); other MODEL steps (`LIST_DIRECTORY`, `VIEW_FILE`, `RUN_COMMAND`, `CODE_ACTION`,
`SEARCH_WEB`, `GREP_SEARCH`, `GENERIC`, ...) are tool results, linked to the open calls in order;
`SYSTEM_MESSAGE` → system turn; `CONVERSATION_HISTORY` and `CHECKPOINT` markers are Skipped. One record per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import link_tool_results, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import as_list, head_objects, iter_json_lines, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "antigravity"
RECORD_UNIT = "line"
STEP_KEYS = {"step_index", "source", "type", "status"}
MARKERS = {"CONVERSATION_HISTORY": "antigravity conversation-history marker (no text)",
           "CHECKPOINT": "antigravity checkpoint marker (resume after compaction)"}


def sniff(source: SourceFile) -> bool:
    objects = head_objects(source, limit=4)
    return bool(objects) and all(STEP_KEYS <= o.keys() for o in objects)


def _arguments(args: Any) -> Any:
    if not isinstance(args, dict):
        return args or {}
    decoded = {}
    for key, value in args.items():
        try:
            decoded[key] = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            decoded[key] = value
    return decoded


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    turns: list[Turn] = []
    used: list[tuple[int, int, int]] = []
    skipped: dict[str, list[int]] = {}
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        if not (isinstance(value, dict) and STEP_KEYS <= value.keys()):
            yield Rejected(source.path, number, "not an antigravity step (expected step_index, source, type, status)")
            continue
        kind = value["type"] if isinstance(value["type"], str) else repr(value["type"])
        stamp = value.get("created_at") if str(value.get("created_at", ""))[:2].isdigit() else None
        text = value.get("content") if isinstance(value.get("content"), str) else ""
        if kind in MARKERS:
            skipped.setdefault(MARKERS[kind], []).append(number)
            continue
        if kind == "USER_INPUT":
            turns.append(Turn(role="user", text=text, timestamp=stamp))
        elif kind == "PLANNER_RESPONSE":
            calls = [make_tool_call(c.get("name"), _arguments(c.get("args")), c.get("id"))
                     for c in as_list(value.get("tool_calls")) if isinstance(c, dict)]
            turns.append(Turn(role="assistant", text=text, reasoning=str(value.get("thinking") or ""),
                              tool_calls=calls, timestamp=stamp))
        elif kind == "SYSTEM_MESSAGE":
            turns.append(Turn(role="system", text=text, timestamp=stamp))
        elif value.get("source") == "MODEL":
            turns.append(Turn(role="tool", text=text, name=kind.lower(), is_error=value.get("status") == "ERROR",
                              timestamp=stamp))
        else:
            reason = f"unknown antigravity step type {kind} (source {value.get('source')})"
            skipped.setdefault(reason, []).append(number)
            continue
        used.append((number, start, end))
    link_tool_results(turns)
    if used:
        stamps = [t.timestamp for t in turns if t.timestamp]
        yield Session(session_id=stable_id(NAME, source.path), agent=NAME, source_file=source.path, turns=turns,
                      line_start=used[0][0], line_end=used[-1][0], byte_start=used[0][1], byte_end=used[-1][2],
                      records=len(used), started_at=stamps[0] if stamps else None,
                      ended_at=stamps[-1] if stamps else None, flags=session_flags(turns, set()))
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
