"""The one record type of the pipeline: a Session of ordered Turns, and its polars table schema.

Every reader in `logminer.reading.formats` yields `Session`, `Skipped` or `Rejected` events; every later stage
(redact, clean, score, render, dedup, split) consumes and produces `Session`s or rows of `SESSION_SCHEMA`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

ROLES = ("system", "user", "assistant", "tool")
BROKEN_TOOL_JSON = "broken_tool_json"  # session flag: some tool-call arguments are not valid JSON (kept as text)


@dataclass
class ToolCall:
    name: str
    arguments: str  # canonical JSON text (json.dumps(..., sort_keys=True, ensure_ascii=False)), or the raw text
    id: str | None = None
    arguments_valid: bool = True  # False: `arguments` was not valid JSON and is kept verbatim as text


@dataclass
class Turn:
    role: str  # one of ROLES
    text: str = ""
    reasoning: str = ""  # thinking / reasoning text, kept apart from `text`
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # role == "tool": the id of the call this result answers
    name: str | None = None  # role == "tool": the tool's name when known
    is_error: bool = False  # role == "tool": the tool reported an error
    timestamp: str | None = None  # ISO 8601 when the format has one


@dataclass
class Session:
    session_id: str
    agent: str  # the format's NAME, e.g. "claude-code", "codex", "openai-chat"
    source_file: str
    turns: list[Turn] = field(default_factory=list)
    line_start: int = 0  # 1-based first line of the file that fed this session (0: whole-file formats)
    line_end: int = 0
    byte_start: int = 0
    byte_end: int = 0
    records: int = 1  # how many input records (lines / JSON items) this session consumed, for accounting
    model: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    parent_session_id: str | None = None  # sidechains / sub-agents
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI-style tool definitions
    flags: list[str] = field(default_factory=list)  # e.g. "broken_tool_json", "truncated"
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. instance_id, repo, cwd


@dataclass
class Rejected:
    """Input that could not be read: counted, reported with file, line and reason, never silently lost."""

    source_file: str
    line: int  # 1-based; 0 when the whole file is meant
    reason: str
    records: int = 1


@dataclass
class Skipped:
    """Input that was read and recognised but is not conversation text (summary lines, hook logs, holdout lists)."""

    source_file: str
    line: int
    reason: str
    records: int = 1


TOOL_CALL_DTYPE = pl.Struct(
    {"id": pl.Utf8, "name": pl.Utf8, "arguments": pl.Utf8, "arguments_valid": pl.Boolean}
)
TURN_DTYPE = pl.Struct(
    {
        "role": pl.Utf8,
        "text": pl.Utf8,
        "reasoning": pl.Utf8,
        "tool_calls": pl.List(TOOL_CALL_DTYPE),
        "tool_call_id": pl.Utf8,
        "name": pl.Utf8,
        "is_error": pl.Boolean,
        "timestamp": pl.Utf8,
    }
)
SESSION_SCHEMA: dict[str, pl.DataType] = {
    "session_id": pl.Utf8,
    "agent": pl.Utf8,
    "source_file": pl.Utf8,
    "line_start": pl.Int64,
    "line_end": pl.Int64,
    "byte_start": pl.Int64,
    "byte_end": pl.Int64,
    "records": pl.Int64,
    "model": pl.Utf8,
    "started_at": pl.Utf8,
    "ended_at": pl.Utf8,
    "parent_session_id": pl.Utf8,
    "turns": pl.List(TURN_DTYPE),
    "tools": pl.Utf8,  # JSON text of the tool definitions
    "flags": pl.List(pl.Utf8),
    "metadata": pl.Utf8,  # JSON text
}


def session_to_row(session: Session) -> dict[str, Any]:
    """One SESSION_SCHEMA row; built field by field because dataclasses.asdict's deep copy is ~5x slower."""
    row = {key: getattr(session, key) for key in SESSION_SCHEMA if key not in ("turns", "tools", "metadata", "flags")}
    row["flags"] = list(session.flags)
    row["turns"] = [
        {
            "role": t.role, "text": t.text, "reasoning": t.reasoning,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments, "arguments_valid": c.arguments_valid}
                for c in t.tool_calls
            ],
            "tool_call_id": t.tool_call_id, "name": t.name, "is_error": t.is_error, "timestamp": t.timestamp,
        }
        for t in session.turns
    ]
    row["tools"] = json.dumps(session.tools, sort_keys=True, ensure_ascii=False)
    row["metadata"] = json.dumps(session.metadata, sort_keys=True, ensure_ascii=False)
    return row


def row_to_session(row: dict[str, Any]) -> Session:
    turns = [
        Turn(**{**turn, "tool_calls": [ToolCall(**call) for call in turn["tool_calls"] or []]})
        for turn in row["turns"] or []
    ]
    values = {key: row[key] for key in SESSION_SCHEMA if key not in ("turns", "tools", "metadata")}
    values["flags"] = list(values["flags"] or [])
    return Session(
        **values,
        turns=turns,
        tools=json.loads(row["tools"] or "[]"),
        metadata=json.loads(row["metadata"] or "{}"),
    )


def sessions_to_frame(sessions: list[Session]) -> pl.DataFrame:
    return pl.DataFrame([session_to_row(s) for s in sessions], schema=SESSION_SCHEMA)


def frame_to_sessions(frame: pl.DataFrame) -> list[Session]:
    return [row_to_session(row) for row in frame.iter_rows(named=True)]


def canonical_arguments(arguments: Any) -> tuple[str, bool]:
    """Tool-call arguments as canonical JSON text; a string that is not JSON is kept verbatim, flagged invalid."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested deeper than Python can follow
            return arguments, False
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False), True
