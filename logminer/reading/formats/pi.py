"""Pi coding agent and OpenClaw session files: one reader, two `--source` names (`pi`, `openclaw`).

Read from badlogic/pi-mono (packages/coding-agent/src/core/session-manager.ts and messages.ts):
- Pi writes `~/.pi/agent/sessions/--<cwd>--/<time>_<uuid>.jsonl` ($PI_CODING_AGENT_DIR/sessions); OpenClaw runs the
  Pi agent and writes the same files to `~/.openclaw/agents/<agent>/sessions/<sessionId>.jsonl` (labelled "openclaw").
- The first line is the header `{type: session, version?, id, timestamp, cwd, parentSession?}` (v1 has no version;
  forks name their origin in `parentSession`, older ones in `branchedFrom`). v1 entries are a plain list; v2/v3
  entries carry `id`/`parentId` and form a tree whose active branch is the chain ending at the last entry (what Pi
  resumes), like Claude Code's parentUuid chain. Entries off that chain are abandoned branches: Skipped.
- `message` entries by role: user; assistant (blocks text / thinking / toolCall{id, name, arguments}); toolResult
  (toolCallId, toolName, content, isError); bashExecution (a `!cmd` the user ran: the model saw "Ran `cmd`" and its
  output as a user message, unless excludeFromContext); custom (v2 hookMessage): extension text sent as a user message.
- `custom_message` entries are extension text the model saw as a user message; `branch_summary` the summary of a
  branch left behind, also sent as a user message. `custom` (extension state), `model_change`,
  `thinking_level_change`, `label` and `session_info` never reach the model: Skipped with their reason.
- `compaction` {summary, firstKeptEntryId (v1: firstKeptEntryIndex), tokensBefore}: afterwards the model saw the
  summary, the entries kept from firstKeptEntryId on, then the later ones. As for Claude Code and Codex, the history
  before it is one session and the context after it another (`<id>/compact-<n>`, parent = the previous).
- Sub-agents: OpenClaw's `sessions_spawn` results name the child sessions they started (metadata
  `spawned_sessions`), and its session index `sessions.json` beside the transcripts (session key → {sessionId,
  spawnedBy: the parent's key}) links a child to its parent. The index itself is Skipped: metadata, not a transcript.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import (
    NON_TEXT_DROPPED,
    content_text,
    make_tool_call,
    session_flags,
)
from logminer.reading.formats.drift import UnknownTypes
from logminer.reading.formats.jsondoc import (
    DocumentError,
    head_objects,
    iter_json_lines,
    load_document,
    stable_id,
)
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "pi"
RECORD_UNIT = "line"

SKIP_REASONS = {
    "model_change": "pi model_change: model switch, not sent to the model",
    "thinking_level_change": "pi thinking_level_change: reasoning setting, not sent to the model",
    "custom": "pi custom entry: extension state, not sent to the model",
    "label": "pi label: user bookmark, not sent to the model",
    "session_info": "pi session_info: session name, not sent to the model",
}
OFF_BRANCH = "pi entry not on the active branch (abandoned by a /tree or /fork navigation)"
EXCLUDED_BASH = "pi bashExecution excluded from the model's context (!! command)"
NO_MESSAGES = "pi session header without messages"
INDEX = "openclaw sessions.json: session index (metadata, not a transcript)"
INDEX_NAME = "sessions.json"
_INDEX_HEAD = re.compile(r'^\s*\{\s*"agent:[^"]*"\s*:\s*\{')
CONTEXT_ENTRIES = ("message", "custom_message", "branch_summary", "compaction")
MESSAGE_ROLES = ("user", "assistant", "toolResult", "bashExecution", "custom", "hookMessage",
                 "branchSummary", "compactionSummary")
COMPACTION_PREFIX = "The conversation history before this point was compacted into the following summary:\n\n<summary>\n"
BRANCH_PREFIX = "The following is a summary of a branch that this conversation came back from:\n\n<summary>\n"


@dataclass
class Entry:
    number: int
    obj: dict[str, Any]

    @property
    def kind(self) -> str | None:
        kind = self.obj.get("type")
        return kind if isinstance(kind, str) or kind is None else repr(kind)  # a table key, also when malformed


@dataclass
class Segment:
    """The context between compactions: turns (kept ones repeated) and the lines this segment consumed."""

    turns: list[Turn] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def sniff(source: SourceFile) -> bool:
    """A `type: session` header with an id, or Pi-shaped entries, among the first lines; or OpenClaw's index."""
    objects = head_objects(source, limit=16)
    if any(_is_header(obj) for obj in objects[:4]) or sum(_looks_like_entry(obj) for obj in objects) >= 2:
        return True
    return not source.is_binary and bool(_INDEX_HEAD.match(source.head)) and '"sessionId"' in source.head


def _is_header(obj: dict[str, Any]) -> bool:
    return obj.get("type") == "session" and isinstance(obj.get("id"), str) and "timestamp" in obj


def _looks_like_entry(obj: dict[str, Any]) -> bool:
    message = obj.get("message")
    if obj.get("type") == "message" and isinstance(message, dict):
        return message.get("role") in ("toolResult", "bashExecution") or (
            message.get("role") == "assistant" and "stopReason" in message)
    return obj.get("type") in ("model_change", "thinking_level_change") and ("modelId" in obj or "thinkingLevel" in obj)


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    if _INDEX_HEAD.match(source.head):
        yield from _parse_index(source)
        return
    header: Entry | None = None
    entries: list[Entry] = []
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict):
            yield Rejected(source.path, number, "expected a JSON object per line")
        elif header is None and not entries and value.get("type") == "session":
            header = Entry(number, value)
        elif value.get("type") == "message" and not isinstance(value.get("message"), dict):
            yield Rejected(source.path, number, "pi message entry without a message object")
        else:
            entries.append(Entry(number, value))
    meta = header.obj if header else {}
    unknown = UnknownTypes(NAME)
    skipped: dict[str, list[int]] = {}
    branch = _active_branch(entries)
    on_branch = {e.number for e in branch}
    for entry in entries:
        if entry.number not in on_branch:
            skipped.setdefault(OFF_BRANCH, []).append(entry.number)
    segments = _segments(branch, entries, skipped, unknown)
    label = _label(source.path, meta, entries)
    sessions = _sessions(source, meta, label, segments, entries)
    if header is not None:
        if sessions:
            sessions[0].records += 1
            sessions[0].line_start = min(sessions[0].line_start, header.number)
        else:
            skipped.setdefault(NO_MESSAGES, []).append(header.number)
    yield from sessions
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))
    yield from unknown.skipped(source.path)


def _active_branch(entries: list[Entry]) -> list[Entry]:
    """v2/v3: the parentId chain ending at the last entry with an id, oldest first; v1 (no ids): every entry."""
    with_ids = [e for e in entries if isinstance(e.obj.get("id"), str)]
    if not with_ids:
        return entries
    nodes = {e.obj["id"]: e for e in with_ids}
    chain, seen = [], set()
    current: Entry | None = with_ids[-1]
    while current is not None and current.obj["id"] not in seen:
        seen.add(current.obj["id"])
        chain.append(current)
        parent = current.obj.get("parentId")
        current = nodes.get(parent) if isinstance(parent, str) else None
    return list(reversed(chain))


def _segments(branch: list[Entry], entries: list[Entry], skipped: dict[str, list[int]],
              unknown: UnknownTypes) -> list[Segment]:
    segments = [Segment()]
    index_of = {id(e): i for i, e in enumerate(branch)}
    for position, entry in enumerate(branch):
        kind, segment = entry.kind, segments[-1]
        stamp = entry.obj.get("timestamp")
        if kind == "compaction":
            segment = Segment()
            segment.turns.append(Turn(role="user", text=f"{COMPACTION_PREFIX}{_str(entry.obj.get('summary'))}\n</summary>",
                                      timestamp=stamp if isinstance(stamp, str) else None))
            kept = _first_kept(entry, branch, entries, index_of)
            for earlier in branch[kept:position] if kept is not None else []:
                segment.turns += _entry_turns(earlier, segment.flags) or []
            segments.append(segment)
        elif kind in SKIP_REASONS:
            skipped.setdefault(SKIP_REASONS[kind], []).append(entry.number)
            continue
        elif kind in CONTEXT_ENTRIES:
            turns = _entry_turns(entry, segment.flags)
            if turns is None:
                role = entry.obj["message"].get("role")
                if role == "bashExecution":
                    skipped.setdefault(EXCLUDED_BASH, []).append(entry.number)
                else:
                    unknown.add(f"message:{role}", entry.number)
                continue
            segment.turns += turns
        else:
            unknown.add(kind, entry.number)
            continue
        segment.lines.append(entry.number)
        if isinstance(stamp, str):
            segment.timestamps.append(stamp)
    return segments


def _first_kept(compaction: Entry, branch: list[Entry], entries: list[Entry], index_of: dict[int, int]) -> int | None:
    """Index in `branch` of the first entry the compaction kept (v2+: firstKeptEntryId; v1: a file entry index)."""
    kept_id = compaction.obj.get("firstKeptEntryId")
    if isinstance(kept_id, str):
        return next((i for i, e in enumerate(branch) if e.obj.get("id") == kept_id), None)
    kept_index = compaction.obj.get("firstKeptEntryIndex")  # counts the header as entry 0
    if isinstance(kept_index, int) and not isinstance(kept_index, bool) and 1 <= kept_index <= len(entries):
        return index_of.get(id(entries[kept_index - 1]))
    return None


def _entry_turns(entry: Entry, flags: set[str]) -> list[Turn] | None:
    """The turns one context entry gave the model; None for a message role this reader does not know."""
    obj, kind = entry.obj, entry.kind
    stamp = obj.get("timestamp") if isinstance(obj.get("timestamp"), str) else None
    if kind == "custom_message":
        return [Turn(role="user", text=_text(obj.get("content"), flags), timestamp=stamp)]
    if kind == "branch_summary":
        return [Turn(role="user", text=f"{BRANCH_PREFIX}{_str(obj.get('summary'))}</summary>", timestamp=stamp)]
    if kind != "message":
        return []
    message = obj["message"]
    role = message.get("role")
    if role == "assistant":
        return [_assistant(message, flags, stamp)]
    if role == "toolResult":
        return [Turn(role="tool", text=_text(message.get("content"), flags), tool_call_id=_id(message.get("toolCallId")),
                     name=_id(message.get("toolName")), is_error=bool(message.get("isError")), timestamp=stamp)]
    if role == "bashExecution":
        return None if message.get("excludeFromContext") else [Turn(role="user", text=_bash_text(message), timestamp=stamp)]
    if role in ("user", "custom", "hookMessage"):
        return [Turn(role="user", text=_text(message.get("content"), flags), timestamp=stamp)]
    if role in ("branchSummary", "compactionSummary"):
        prefix = BRANCH_PREFIX if role == "branchSummary" else COMPACTION_PREFIX
        return [Turn(role="user", text=f"{prefix}{_str(message.get('summary'))}</summary>", timestamp=stamp)]
    return None


def _assistant(message: dict[str, Any], flags: set[str], stamp: str | None) -> Turn:
    turn = Turn(role="assistant", timestamp=stamp)
    texts, thoughts = [], []
    content = message.get("content")
    for block in [{"type": "text", "text": content}] if isinstance(content, str) else _list(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_str(block.get("text")))
        elif kind == "thinking":
            thoughts.append(_str(block.get("thinking")))
        elif kind == "toolCall":
            turn.tool_calls.append(make_tool_call(block.get("name"), block.get("arguments"), block.get("id")))
        else:
            flags.add(NON_TEXT_DROPPED)
    turn.text = "\n\n".join(t for t in texts if t)
    turn.reasoning = "\n\n".join(t for t in thoughts if t)
    return turn


def _bash_text(message: dict[str, Any]) -> str:
    """The user message Pi builds from a `!cmd` run (messages.ts bashExecutionToText), as the model saw it."""
    output = _str(message.get("output"))
    text = f"Ran `{_str(message.get('command'))}`\n" + (f"```\n{output}\n```" if output else "(no output)")
    exit_code = message.get("exitCode")
    if message.get("cancelled"):
        text += "\n\n(command cancelled)"
    elif isinstance(exit_code, int) and exit_code != 0:
        text += f"\n\nCommand exited with code {exit_code}"
    if message.get("truncated") and message.get("fullOutputPath"):
        text += f"\n\n[Output truncated. Full output: {_str(message.get('fullOutputPath'))}]"
    return text


def _text(content: Any, flags: set[str]) -> str:
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "image" for b in content):
        flags.add(NON_TEXT_DROPPED)
    return content_text(content)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _label(path: str, meta: dict[str, Any], entries: list[Entry]) -> str:
    """"openclaw" for OpenClaw's files (its folder, its cwd or its custom entry types), else "pi"."""
    marker = f"{os.sep}.openclaw{os.sep}"
    if marker in path or marker in _str(meta.get("cwd")) + os.sep:
        return "openclaw"
    return "openclaw" if any(_str(e.obj.get("customType")).startswith("openclaw") for e in entries) else NAME


def _sessions(source: SourceFile, meta: dict[str, Any], label: str, segments: list[Segment],
              entries: list[Entry]) -> list[Session]:
    base_id = _id(meta.get("id")) or f"{label}:{stable_id(source.path, entries[0].number if entries else 0)}"
    parent, relation = _parent_session(meta, source.path)
    models = [e.obj["message"]["model"] for e in entries if e.kind == "message"
              and e.obj["message"].get("role") == "assistant" and isinstance(e.obj["message"].get("model"), str)]
    model = models[-1] if models else _id(meta.get("modelId"))
    spawned = _spawned_sessions(entries)
    sessions: list[Session] = []
    for segment in segments:
        if not segment.lines:
            continue
        index = len(sessions)
        metadata = {"cwd": _id(meta.get("cwd")), "version": meta.get("version", 1) if meta else None,
                    "relation": relation if index == 0 else "compaction-continuation",
                    "spawned_sessions": spawned or None}
        sessions.append(Session(
            session_id=base_id if index == 0 else f"{base_id}/compact-{index}", agent=label, source_file=source.path,
            turns=segment.turns, line_start=segment.lines[0], line_end=segment.lines[-1],
            records=len(segment.lines), model=model,
            started_at=min(segment.timestamps, default=None), ended_at=max(segment.timestamps, default=None),
            parent_session_id=parent if index == 0 else sessions[-1].session_id,
            flags=session_flags(segment.turns, segment.flags),
            metadata={key: value for key, value in metadata.items() if value is not None}))
    return sessions


def _parent_session(meta: dict[str, Any], path: str) -> tuple[str | None, str | None]:
    """(parent session id, relation): a fork's `parentSession` / `branchedFrom` name the parent's file
    (<time>_<uuid>.jsonl); an OpenClaw sub-agent's parent is the `spawnedBy` key of its entry in sessions.json."""
    origin = _id(meta.get("parentSession")) or _id(meta.get("branchedFrom"))
    if origin is not None:
        stem = os.path.basename(origin.replace("\\", "/")).removesuffix(".jsonl")
        return stem.rsplit("_", 1)[-1] or None, "fork"
    index = _read_index(os.path.join(os.path.dirname(path), INDEX_NAME))
    session_id = _id(meta.get("id"))
    entry = next((e for e in index.values() if session_id and e.get("sessionId") == session_id), None)
    parent = index.get(_str(entry.get("spawnedBy"))) if entry else None
    return (_id(parent.get("sessionId")), "subagent") if parent else (None, "main")


def _read_index(path: str) -> dict[str, dict[str, Any]]:
    """OpenClaw's sessions.json (session key → entry), or {} when absent or unreadable."""
    if not os.path.isfile(path):
        return {}
    try:
        document = load_document(SourceFile.open(path))
    except (DocumentError, OSError, ValueError):
        return {}
    return {k: v for k, v in document.items() if isinstance(v, dict)} if isinstance(document, dict) else {}


def _parse_index(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield Rejected(source.path, error.line, error.reason)
        return
    if isinstance(document, dict) and all(isinstance(v, dict) for v in document.values()):
        yield Skipped(source.path, 0, INDEX)
    else:
        yield Rejected(source.path, 0, "openclaw sessions.json is not an object of session entries")


def _spawned_sessions(entries: list[Entry]) -> list[str]:
    """OpenClaw `sessions_spawn` results: `{"status": "accepted", "childSessionKey": ...}` as the tool's text."""
    keys = []
    for entry in entries:
        message = entry.obj.get("message")
        if entry.kind != "message" or message.get("role") != "toolResult" or message.get("toolName") != "sessions_spawn":
            continue
        try:
            result = json.loads(content_text(message.get("content")))
        except ValueError:
            continue
        if isinstance(result, dict) and isinstance(result.get("childSessionKey"), str):
            keys.append(result["childSessionKey"])
    return keys


def _pi_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source pi: $PI_CODING_AGENT_DIR/sessions, else ~/.pi/agent/sessions (all systems)."""
    return [Path(env["PI_CODING_AGENT_DIR"]) / "sessions" if env.get("PI_CODING_AGENT_DIR")
            else home / ".pi" / "agent" / "sessions"]


def _openclaw_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source openclaw: every agent's sessions folder, $OPENCLAW_STATE_DIR/agents/*/sessions, else
    ~/.openclaw/agents/*/sessions (all systems); the default agent's folder is named when none exists."""
    agents = (Path(env["OPENCLAW_STATE_DIR"]) if env.get("OPENCLAW_STATE_DIR") else home / ".openclaw") / "agents"
    return sorted(agents.glob("*/sessions")) or [agents / "main" / "sessions"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse,
                sources=(AgentSource("pi", _pi_folders), AgentSource("openclaw", _openclaw_folders)))
