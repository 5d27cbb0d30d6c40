"""Codex CLI / Codex Desktop rollouts (`~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`).

Every line is `{timestamp, type, payload}`:
- `session_meta`: the session id, cwd, CLI version, git commit/branch (the remote URL is not copied: it may hold a
  token). Its `base_instructions` (the fixed agent prompt, identical in every session) is not made a turn.
- `turn_context`: per-turn settings; its `model` names the session's model.
- `response_item`: the conversation, mapped with the shared Responses mapping (common.ResponsesTurns): `developer`
  messages → system, `custom_tool_call` (free-form patches) / `web_search_call` / `local_shell_call` → tool calls,
  reasoning summaries → reasoning; `encrypted_content` is opaque and never read. `ghost_snapshot` items (undo
  bookkeeping) are Skipped.
- `event_msg`: UI events that repeat the response items (user_message, agent_message, agent_reasoning, token
  counts): Skipped.
- 0.144+ (openai/codex RolloutItem): `inter_agent_communication` {author, recipient, content} is a message another
  agent sent this thread (a user turn); `world_state` (environment snapshot), `inter_agent_communication_metadata`,
  `token_usage_record`, `security_risk_score`, `retained_context` and `realtime_item` are bookkeeping: Skipped with
  their reason. `event_msg` `item_completed` lines repeat the response items like every other event. A line type or
  response item type not known here is counted once per type as "unknown codex line type ..." (format drift).
- `compacted`: `replacement_history` replaces the history so far. The history before it becomes its own session
  and the replacement starts a new one (`<id>/compact-<n>`, parent = the previous), since after compaction the model
  saw only the replacement. Without `replacement_history` (older CLIs), the summary `message` starts it as a user turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import ResponsesTurns, session_flags
from logminer.reading.formats.drift import UnknownTypes
from logminer.reading.formats.jsondoc import head_objects, iter_json_lines, stable_id
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "codex"
RECORD_UNIT = "line"

CORE_TYPES = ("session_meta", "response_item", "event_msg", "turn_context")
SKIP_REASONS = {
    "event_msg": "codex event_msg: UI event repeating the response items",
    "world_state": "codex world_state: environment snapshot (AGENTS.md, environments), bookkeeping",
    "inter_agent_communication_metadata": "codex inter_agent_communication_metadata: delivery flag of an agent message",
    "token_usage_record": "codex token_usage_record: token accounting",
    "security_risk_score": "codex security_risk_score: safety bookkeeping",
    "retained_context": "codex retained_context: context bookkeeping",
    "realtime_item": "codex realtime_item: realtime audio session event",
}
LINE_TYPES = (*CORE_TYPES, "compacted", "inter_agent_communication", *SKIP_REASONS)
SKIP_EVENT = SKIP_REASONS["event_msg"]
SKIP_GHOST = "codex ghost_snapshot: undo bookkeeping, not conversation"
SKIP_EMPTY = "codex rollout lines with no conversation items (metadata only)"
_HEAD_PATTERN = re.compile(r'^\s*\{"timestamp":"[^"]*",(?:"ordinal":\d+,)?"type":"(?:%s)","payload":' % "|".join(CORE_TYPES))


@dataclass
class Segment:
    """The part of a rollout between compactions: its turns and the lines it consumed."""

    builder: ResponsesTurns = field(default_factory=ResponsesTurns)
    lines: list[tuple[int, int, int]] = field(default_factory=list)  # (line, byte start, byte end)
    timestamps: list[str] = field(default_factory=list)

    def consume(self, number: int, start: int, end: int, timestamp: Any) -> None:
        self.lines.append((number, start, end))
        if isinstance(timestamp, str):
            self.timestamps.append(timestamp)


def sniff(source: SourceFile) -> bool:
    """Most of the first lines are {timestamp, type, payload} envelopes and one of them is a core rollout type;
    which line comes first does not matter (0.144+ writes world_state early)."""
    objects = head_objects(source, limit=16)
    if objects:
        envelopes = [obj for obj in objects if _is_envelope(obj)]
        return 2 * len(envelopes) > len(objects) and any(obj["type"] in CORE_TYPES for obj in envelopes)
    return not source.is_binary and bool(_HEAD_PATTERN.match(source.head[:2048]))


def _is_envelope(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("type"), str) and isinstance(obj.get("payload"), dict) and "timestamp" in obj


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    meta: dict[str, Any] = {}
    model: str | None = None
    segments = [Segment()]
    skipped: dict[str, list[int]] = {}
    unknown = UnknownTypes(NAME)
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        if not isinstance(value, dict) or not _is_envelope(value):
            yield Rejected(source.path, number, "not a codex rollout line (expected {timestamp, type, payload})")
            continue
        kind, payload, timestamp = value["type"], value["payload"], value.get("timestamp")
        segment = segments[-1]
        if kind in SKIP_REASONS:
            skipped.setdefault(SKIP_REASONS[kind], []).append(number)
        elif kind == "response_item" and payload.get("type") == "ghost_snapshot":
            skipped.setdefault(SKIP_GHOST, []).append(number)
        elif kind == "response_item":
            problem = segment.builder.add(payload, timestamp)
            if problem and problem.startswith(ResponsesTurns.UNKNOWN_ITEM):
                unknown.add(f"response_item:{payload.get('type')}", number)
                continue
            if problem:
                yield Rejected(source.path, number, f"codex response_item: {problem}")
                continue
            segment.consume(number, start, end, timestamp)
        elif kind == "inter_agent_communication":  # another agent's message, delivered to this thread
            segment.builder.add({"type": "agent_message", "content": payload.get("content")}, timestamp)
            segment.consume(number, start, end, timestamp)
        elif kind not in LINE_TYPES:
            unknown.add(kind, number)
        elif kind == "compacted":
            segments.append(_replacement(payload, number, start, end, timestamp))
        else:
            if kind == "session_meta" and not meta:
                meta = payload
            if kind == "turn_context" and isinstance(payload.get("model"), str):
                model = payload["model"]
            segment.consume(number, start, end, timestamp)
    model = model or (meta.get("model") if isinstance(meta.get("model"), str) else None)
    yield from _sessions(source, segments, meta, model, skipped)
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))
    yield from unknown.skipped(source.path)


def _replacement(payload: dict[str, Any], number: int, start: int, end: int, timestamp: Any) -> Segment:
    """A new segment whose history is the compaction's replacement history (or its summary message)."""
    segment = Segment()
    history = payload.get("replacement_history")
    if isinstance(history, list):
        for item in history:
            if not (isinstance(item, dict) and item.get("type") == "ghost_snapshot"):
                segment.builder.add(item, timestamp)
    elif isinstance(payload.get("message"), str):
        segment.builder.add({"type": "message", "role": "user", "content": payload["message"]}, timestamp)
        segment.builder.flags.add("compaction_summary_only")
    segment.consume(number, start, end, timestamp)
    return segment


def _sessions(source: SourceFile, segments: list[Segment], meta: dict[str, Any], model: str | None,
              skipped: dict[str, list[int]]) -> Iterator[Session]:
    base_id = str(meta.get("id") or stable_id(source.path, segments[0].lines[0][0] if segments[0].lines else 0))
    previous: str | None = None
    index = 0
    for segment in segments:
        if not segment.builder.turns:
            if segment.lines:
                skipped.setdefault(SKIP_EMPTY, []).extend(line for line, _, _ in segment.lines)
            continue
        session_id = base_id if index == 0 else f"{base_id}/compact-{index}"
        git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
        metadata = {"cwd": meta.get("cwd"), "cli_version": meta.get("cli_version"),
                    "originator": meta.get("originator"), "git_commit": git.get("commit_hash"),
                    "git_branch": git.get("branch"), "relation": "main" if index == 0 else "compaction-continuation"}
        turns = segment.builder.turns
        yield Session(
            session_id=session_id, agent=NAME, source_file=source.path, turns=turns,
            line_start=segment.lines[0][0], line_end=segment.lines[-1][0],
            byte_start=segment.lines[0][1], byte_end=segment.lines[-1][2], records=len(segment.lines),
            model=model, started_at=min(segment.timestamps, default=None), ended_at=max(segment.timestamps, default=None),
            parent_session_id=previous, flags=session_flags(turns, segment.builder.flags),
            metadata={key: value for key, value in metadata.items() if value is not None},
        )
        previous = session_id
        index += 1


def _codex_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source codex: $CODEX_HOME/sessions, else ~/.codex/sessions (all systems)."""
    return [Path(env["CODEX_HOME"]) / "sessions" if env.get("CODEX_HOME") else home / ".codex" / "sessions"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("codex", _codex_folders),))
