"""Claude Code session transcripts (`~/.claude/projects/<dir>/<session>.jsonl`, `subagents/agent-*.jsonl`).

Every line is one entry: `user` / `assistant` messages (`message` in Anthropic shape), `attachment` entries (2.1+:
context Claude Code adds to the next request as a system reminder: a read file, CLAUDE.md, a queued prompt, hook
output, ...) and bookkeeping lines (`summary`, `system`, `progress`, `file-history-snapshot`, `queue-operation`, and
2026's `mode`, `permission-mode`, `worktree-state`, `ai-title`, `bridge-session`, ...) that are not conversation and
are reported as Skipped with their reason. An attachment on the chain whose text the model saw is a user turn; the
others (UI state, or reminders Claude Code writes from structured data not in the file) are Skipped per attachment
type. A line type not known here is counted once per type as "unknown claude-code line type ..." (format drift).
How a file becomes sessions:
- entries are grouped into conversations: the main one, and one per sidechain (`agentId`, or for old files with
  in-file sidechains and no agentId, per chain root);
- each conversation is the `parentUuid` chain ending at its last message; a chain that crosses a compaction
  (`system` `compact_boundary` with `logicalParentUuid`) is cut there into segments, each its own session, the later
  one's parent being the earlier (`<sessionId>/compact-<n>`), because after compaction the model saw only the summary;
- parallel tool calls make the chain a tree (each result hangs under its own `tool_use` line), so assistant lines
  sharing the chain's `message.id`s and the user lines answering their tool calls are added back; assistant lines of
  one `message.id` (one API response streamed over several lines) merge into one turn;
- a uuid on two different lines (trimmed or merged exports) leaves no chain to follow: that conversation is read
  in file order;
- messages left over are abandoned branches (edits, retries) or context copied from another session: Skipped.
`toolUseResult` repeats the tool output that `message.content` already holds and is never read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import anthropic_turns, content_text, session_flags
from logminer.reading.formats.drift import UnknownTypes
from logminer.reading.formats.jsondoc import head_objects, iter_json_lines, stable_id
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "claude-code"
RECORD_UNIT = "line"

SKIP_REASONS = {
    "summary": "claude-code summary line: a session title, not a message",
    "system": "claude-code system line: hook/status/compaction notice, not sent to the model",
    "progress": "claude-code progress line: tool progress, not a message",
    "file-history-snapshot": "claude-code file-history-snapshot: file backup bookkeeping, not a message",
    "queue-operation": "claude-code queue-operation: input queue bookkeeping, not a message",
    "mode": "claude-code mode line: UI mode, not a message",
    "permission-mode": "claude-code permission-mode line: permission setting, not a message",
    "worktree-state": "claude-code worktree-state line: git worktree bookkeeping, not a message",
    "relocated": "claude-code relocated line: working-directory move, not a message",
    "agent-name": "claude-code agent-name line: display name, not a message",
    "custom-title": "claude-code custom-title line: session title, not a message",
    "ai-title": "claude-code ai-title line: generated session title, not a message",
    "last-prompt": "claude-code last-prompt line: prompt-history bookkeeping, not a message",
    "frame-link": "claude-code frame-link line: link to a preview, not a message",
    "pr-link": "claude-code pr-link line: link to a pull request, not a message",
    "started": "claude-code started line: background task bookkeeping, not a message",
    "result": "claude-code result line: background task result record, not a message",
    "bridge-session": "claude-code bridge-session line: remote-session bookkeeping, not a message",
    "atis-latch": "claude-code atis-latch line: client state, not a message",
}
# attachment type -> where its model-visible text is (keys into `attachment`); other types are Skipped
ATTACHMENT_TEXT = {
    "file": ("content", "file", "content"), "nested_memory": ("content", "content"), "queued_command": ("prompt",),
    "hook_additional_context": ("content",), "hook_success": ("content",), "edited_text_file": ("snippet",),
    "skill_listing": ("content",), "invoked_skills": ("skills", "content"), "total_tokens_reminder": ("text",),
    "silent_turn_reminder": ("text",), "batching_reminder_sent": ("text",),
    "hook_blocking_error": ("blockingError", "blockingError"),
}
OFF_CHAIN = "claude-code message not on the final parentUuid chain (abandoned branch or another session's context)"
MESSAGE_TYPES = ("user", "assistant")
_HEAD_PATTERN = re.compile(r'^\s*\{.*"(?:parentUuid|sessionId)"\s*:', re.DOTALL)


@dataclass
class Entry:
    number: int
    byte_start: int
    byte_end: int
    obj: dict[str, Any]

    @property
    def uuid(self) -> str | None:
        return _text(self.obj.get("uuid"))

    @property
    def parent(self) -> str | None:
        return _text(self.obj.get("parentUuid"))

    @property
    def is_message(self) -> bool:
        return self.obj.get("type") in MESSAGE_TYPES and isinstance(self.obj.get("message"), dict)

    @property
    def attachment_text(self) -> str:
        """The text the model saw for an attachment entry ("" when none is in the file)."""
        attachment = self.obj.get("attachment")
        if self.obj.get("type") != "attachment" or not isinstance(attachment, dict):
            return ""
        return _dig(attachment, ATTACHMENT_TEXT.get(attachment.get("type"), ())).strip()

    @property
    def in_context(self) -> bool:
        """A message, or an attachment whose text reached the model: the entries that become turns."""
        return self.is_message or bool(self.attachment_text)

    @property
    def message_id(self) -> str | None:
        return _text(self.obj["message"].get("id")) if self.is_message else None


def _dig(value: Any, path: tuple[str, ...]) -> str:
    """The text at `path` (through lists: each element's text joined), "" when the path finds none."""
    if not path:
        return content_text(value) if isinstance(value, (str, list)) else ""
    if isinstance(value, list):
        return "\n\n".join(t for t in (_dig(item, path) for item in value) if t)
    return _dig(value.get(path[0]), path[1:]) if isinstance(value, dict) else ""


def attachment_reason(entry: Entry) -> str:
    kind = entry.obj.get("attachment", {}).get("type") if isinstance(entry.obj.get("attachment"), dict) else None
    if entry.attachment_text:
        return f"claude-code attachment {kind}: context the model saw, but not on the final parentUuid chain"
    return f"claude-code attachment {kind}: no text for the model in the file (UI state, or a reminder Claude Code writes)"


def _text(value: Any) -> str | None:
    """A string field, or None when absent or of another type (ids must be hashable strings)."""
    return value if isinstance(value, str) and value else None


def sniff(source: SourceFile) -> bool:
    """Claude Code lines carry `sessionId` + `uuid` (messages) or are its known bookkeeping types."""
    objects = head_objects(source, limit=16)
    if objects:
        return any(_looks_like_entry(obj) for obj in objects)
    head = source.head
    return not source.is_binary and "\n" not in head.strip() and bool(_HEAD_PATTERN.match(head[:4096]))


def _looks_like_entry(obj: dict[str, Any]) -> bool:
    kind = obj.get("type")
    if kind in MESSAGE_TYPES + ("system", "progress"):
        return "sessionId" in obj and "uuid" in obj and "parentUuid" in obj
    if kind == "summary":
        return "leafUuid" in obj
    if kind == "file-history-snapshot":
        return "snapshot" in obj and "messageId" in obj
    if kind == "attachment":
        return "sessionId" in obj and "uuid" in obj and isinstance(obj.get("attachment"), dict)
    return isinstance(kind, str) and kind in SKIP_REASONS and "sessionId" in obj and kind not in ("system", "progress")


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    entries: list[Entry] = []
    skipped: dict[str, list[int]] = {}
    unknown = UnknownTypes(NAME)
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict):
            yield Rejected(source.path, number, "expected a JSON object per line")
        elif value.get("type") in MESSAGE_TYPES and not isinstance(value.get("message"), dict):
            yield Rejected(source.path, number, f"claude-code {value.get('type')} line without a message object")
        elif value.get("type") in MESSAGE_TYPES and not _text(value.get("uuid")):
            yield Rejected(source.path, number, "claude-code message line without a uuid")
        elif value.get("type") in (*MESSAGE_TYPES, "attachment", *SKIP_REASONS):
            entries.append(Entry(number, start, end, value))
        elif "type" not in value:
            yield Rejected(source.path, number, "claude-code line without a type")
        else:
            unknown.add(value.get("type"), number)
    used: set[int] = set()
    titles = {e.obj.get("leafUuid"): e.obj.get("summary") for e in entries if e.obj.get("type") == "summary"
              and isinstance(e.obj.get("leafUuid"), str) and isinstance(e.obj.get("summary"), str)}
    for conversation in _conversations(entries):
        for session, lines in _sessions(source, conversation):
            used.update(e.number for e in lines)
            title = next((titles[e.uuid] for e in reversed(lines) if e.uuid in titles), None)
            if title:  # `summary` lines name the conversation whose leaf they point at
                session.metadata["title"] = title
            yield session
    for entry in entries:
        if entry.number not in used:
            kind = entry.obj["type"]
            reason = OFF_CHAIN if entry.is_message else attachment_reason(entry) if kind == "attachment" else SKIP_REASONS[kind]
            skipped.setdefault(reason, []).append(entry.number)
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))
    yield from unknown.skipped(source.path)


def _conversations(entries: list[Entry]) -> list[list[Entry]]:
    """Message-bearing entries grouped by conversation (main, each sidechain), in file order."""
    nodes = {e.uuid: e for e in entries if e.uuid}
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if entry.uuid:
            groups.setdefault(_group_key(entry, nodes), []).append(entry)
    return list(groups.values())


def _group_key(entry: Entry, nodes: dict[str, Entry]) -> tuple[str, str]:
    obj = entry.obj
    if not obj.get("isSidechain"):
        return ("main", "")
    if obj.get("agentId"):
        return ("agent", str(obj["agentId"]))
    root, seen = entry, set()  # old in-file sidechains: one conversation per chain root
    while root.parent in nodes and root.uuid not in seen:
        seen.add(root.uuid)
        root = nodes[root.parent]
    return ("sidechain", root.uuid or "")


def _chain_segments(group: list[Entry]) -> list[list[Entry]]:
    """The parentUuid chain ending at the group's last message, oldest first, cut at compaction boundaries."""
    nodes = {e.uuid: e for e in group}
    messages = [e for e in group if e.in_context]
    if not messages:
        return []
    if any(nodes[e.uuid].obj != e.obj for e in group):  # one uuid on different lines: no chain to follow
        return [group]
    segments: list[list[Entry]] = [[]]
    uuid, seen = messages[-1].uuid, set()
    while uuid in nodes and uuid not in seen:
        seen.add(uuid)
        entry = nodes[uuid]
        segments[-1].append(entry)
        uuid = entry.parent
        if uuid is None and _text(entry.obj.get("logicalParentUuid")) in nodes:
            uuid = entry.obj["logicalParentUuid"]
            segments.append([])
    return [list(reversed(segment)) for segment in reversed(segments) if any(e.in_context for e in segment)]


def _with_parallel_branches(chain: list[Entry], group: list[Entry], taken: set[int]) -> list[Entry]:
    """The chain's messages plus the sibling lines of the same API responses and the results of their tool calls."""
    chosen = {e.number: e for e in chain if e.in_context}
    message_ids = {e.message_id for e in chosen.values() if e.obj["type"] == "assistant" and e.message_id}
    for entry in group:
        if entry.number not in taken and entry.obj.get("type") == "assistant" and entry.message_id in message_ids:
            chosen.setdefault(entry.number, entry)
    call_ids = {_text(block.get("id")) for e in chosen.values() if e.obj["type"] == "assistant"
                for block in _blocks(e) if block.get("type") == "tool_use"} - {None}
    for entry in group:
        if entry.number not in taken and entry.is_message and entry.obj["type"] == "user":
            if any(b.get("type") == "tool_result" and _text(b.get("tool_use_id")) in call_ids for b in _blocks(entry)):
                chosen.setdefault(entry.number, entry)
    return sorted(chosen.values(), key=lambda e: e.number)


def _blocks(entry: Entry) -> list[dict[str, Any]]:
    content = entry.obj["message"].get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _sessions(source: SourceFile, group: list[Entry]) -> Iterator[tuple[Session, list[Entry]]]:
    taken: set[int] = set()
    previous_id = None
    for index, chain in enumerate(_chain_segments(group)):
        lines = _with_parallel_branches(chain, group, taken)
        taken.update(e.number for e in lines)
        session = _session(source, lines, index, previous_id)
        previous_id = session.session_id
        yield session, lines


def _session(source: SourceFile, lines: list[Entry], index: int, previous_id: str | None) -> Session:
    first, last = lines[0].obj, lines[-1].obj
    main_id = str(last.get("sessionId") or stable_id(source.path, lines[-1].number))
    agent_id = last.get("agentId") if last.get("isSidechain") else None
    if last.get("isSidechain"):
        base_id = f"{main_id}/agent-{agent_id}" if agent_id else f"{main_id}/sidechain-{lines[0].uuid}"
        relation = "compaction-agent" if str(agent_id or "").startswith("acompact") else "sidechain"
        parent = main_id
    else:
        base_id, relation, parent = main_id, "main", None
    session_id = base_id if index == 0 else f"{base_id}/compact-{index}"
    flags: set[str] = set()
    turns = _turns(lines, flags)
    timestamps = [e.obj["timestamp"] for e in lines if isinstance(e.obj.get("timestamp"), str)]
    models = [e.obj["message"].get("model") for e in lines if e.obj["type"] == "assistant"]
    metadata = {
        "cwd": last.get("cwd") or first.get("cwd"),
        "git_branch": last.get("gitBranch") or None,
        "version": last.get("version"),
        "agent_id": agent_id,
        "relation": relation if index == 0 else "compaction-continuation",
        "subagent_file": os.path.basename(source.path).startswith("agent-"),
    }
    return Session(
        session_id=session_id, agent=NAME, source_file=source.path, turns=turns,
        line_start=lines[0].number, line_end=lines[-1].number,
        byte_start=lines[0].byte_start, byte_end=lines[-1].byte_end, records=len(lines),
        model=next((m for m in models if isinstance(m, str) and m != "<synthetic>"), None),
        started_at=min(timestamps) if timestamps else None, ended_at=max(timestamps) if timestamps else None,
        parent_session_id=previous_id if index > 0 else parent,
        flags=session_flags(turns, flags),
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def _turns(lines: list[Entry], flags: set[str]) -> list:
    """Anthropic mapping of the lines, assistant lines of one message.id merged (repeated blocks kept once)."""
    messages: list[tuple[str, list[Any], str | None]] = []
    by_message_id: dict[str, list[Any]] = {}
    for entry in lines:
        if not entry.is_message:  # an attachment: its text reaches the model inside the next user message
            messages.append(("user", [{"type": "text", "text": entry.attachment_text}], entry.obj.get("timestamp")))
            continue
        message = entry.obj["message"]
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content) if isinstance(
            content, list) else []
        role = entry.obj["type"]
        merged = by_message_id.get(entry.message_id) if role == "assistant" and entry.message_id else None
        if merged is not None:
            merged.extend(b for b in blocks if b not in merged)
            continue
        messages.append((role, blocks, entry.obj.get("timestamp")))
        if role == "assistant" and entry.message_id:
            by_message_id[entry.message_id] = blocks
    tool_names: dict[str, str] = {}
    turns = []
    for role, blocks, timestamp in messages:
        turns += anthropic_turns(role, blocks, flags, tool_names, timestamp)
    return turns


def _claude_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source claude: $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects (all systems)."""
    return [Path(env["CLAUDE_CONFIG_DIR"]) / "projects" if env.get("CLAUDE_CONFIG_DIR") else home / ".claude" / "projects"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("claude", _claude_folders),))
