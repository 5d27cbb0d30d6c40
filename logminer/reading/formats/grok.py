"""Grok Build (xAI grok CLI) session folders: `~/.grok/sessions/<percent-encoded cwd>/<session id>/`.

A folder holds `chat_history.jsonl` (the model's conversation, one item per line), `summary.json` (id, cwd, model,
title, git state), and UI streams `events.jsonl` / `updates.jsonl` plus `system_prompt.txt`. chat_history lines
(chat_format_version 1, as in the real sample): `system{content}`, `user{content: [{type: text | image}]}` (also
synthetic context such as `environment_context`), `reasoning{summary[{text}], encrypted_content}` (the summary is
the reasoning of the next assistant turn; the encrypted blob is opaque), `assistant{content, tool_calls[{id, name,
arguments}], model_id}`, `tool_result{tool_call_id, content}`, `backend_tool_call` (a server-side tool run, e.g.
web search, whose results are not recorded: Skipped). One record per line; every other file is acknowledged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, parts_text, session_flags
from logminer.reading.formats.jsondoc import as_list, iter_json_lines, loads
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "grok"
RECORD_UNIT = "line"
HISTORY = "chat_history.jsonl"
COMPANIONS = {"summary.json": "grok session summary (id, cwd, model, title)",
              "events.jsonl": "grok UI event stream (repeats chat_history)",
              "updates.jsonl": "grok UI update stream (repeats chat_history)",
              "system_prompt.txt": "grok system prompt file (the system line of chat_history holds it)"}
Event = Session | Skipped | Rejected


def sniff_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, HISTORY)) and os.path.isfile(os.path.join(path, "summary.json"))


def parse_dir(path: str) -> Iterator[Event]:
    summary = _summary(os.path.join(path, "summary.json"))
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file_path = os.path.join(root, name)
            if root == path and name == HISTORY:
                yield from _history(file_path, summary, os.path.basename(path.rstrip(os.sep)))
            elif root == path and name in COMPANIONS:
                lines = 1 if not name.endswith(".jsonl") else _line_count(file_path)
                yield Skipped(file_path, 0, COMPANIONS[name], records=lines)
            else:
                yield Rejected(file_path, 0, "not a file of a grok session folder")


def _summary(path: str) -> dict[str, Any]:
    try:
        value = loads(SourceFile.open(path).text)
    except (SourceError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _line_count(path: str) -> int:
    try:
        return sum(1 for line in SourceFile.open(path).data.split(b"\n") if line.strip())
    except SourceError:
        return 1


def _history(file_path: str, summary: dict[str, Any], folder: str) -> Iterator[Event]:
    try:
        source = SourceFile.open(file_path)
    except SourceError as error:
        yield Rejected(file_path, 0, error.reason)
        return
    turns: list[Turn] = []
    flags: set[str] = set()
    names: dict[str, str] = {}
    reasoning: list[str] = []
    used: list[tuple[int, int, int]] = []
    backend: list[int] = []
    model = None
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "backend_tool_call":
            backend.append(number)
            continue
        if kind == "reasoning":
            reasoning += [str(p.get("text") or "") for p in as_list(value.get("summary")) if isinstance(p, dict)]
        elif kind in ("system", "user"):
            turns.append(Turn(role=kind, text=parts_text(value.get("content"), flags)))
        elif kind == "assistant":
            turn = Turn(role="assistant", text=content_text(value.get("content")), reasoning="\n\n".join(reasoning))
            reasoning = []
            for call in as_list(value.get("tool_calls")):
                if isinstance(call, dict):
                    turn.tool_calls.append(make_tool_call(call.get("name"), call.get("arguments"), call.get("id")))
                    names[str(call.get("id"))] = str(call.get("name") or "")
            turns.append(turn)
            model = value.get("model_id") if isinstance(value.get("model_id"), str) else model
        elif kind == "tool_result":
            call_id = str(value.get("tool_call_id") or "") or None
            turns.append(Turn(role="tool", text=content_text(value.get("content")), tool_call_id=call_id,
                              name=names.get(call_id or "")))
        else:
            yield Rejected(file_path, number, f"unknown grok chat_history line type {kind!r}")
            continue
        used.append((number, start, end))
    if backend:
        yield Skipped(file_path, backend[0], "grok backend_tool_call (server-side tool run; results not recorded)",
                      records=len(backend))
    if used:
        info = summary.get("info") if isinstance(summary.get("info"), dict) else {}
        metadata = {"cwd": info.get("cwd"), "title": summary.get("generated_title") or summary.get("session_summary")}
        yield Session(session_id=str(info.get("id") or folder), agent=NAME, source_file=file_path, turns=turns,
                      line_start=used[0][0], line_end=used[-1][0], byte_start=used[0][1], byte_end=used[-1][2],
                      records=len(used), model=model or summary.get("current_model_id"),
                      started_at=summary.get("created_at"), ended_at=summary.get("updated_at"),
                      flags=session_flags(turns, flags),
                      metadata={k: v for k, v in metadata.items() if isinstance(v, str)})


def _grok_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source grok: $GROK_HOME/sessions, else ~/.grok/sessions (every system)."""
    return [(Path(env["GROK_HOME"]) if env.get("GROK_HOME") else home / ".grok") / "sessions"]


FORMAT = Format(NAME, RECORD_UNIT, unit="folder", sniff_dir=sniff_dir, parse_dir=parse_dir,
                sources=(AgentSource("grok", _grok_folders),))
