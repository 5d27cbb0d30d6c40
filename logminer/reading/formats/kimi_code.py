"""Kimi Code (`~/.kimi-code/sessions/wd_<slug>/session_<uuid>/`): `agents/<agent>/wire.jsonl` + `state.json`.

wire.jsonl (protocol_version 1.4/1.5; layout as documented by public readers and the real samples): a header
`{type: metadata, protocol_version, created_at}`, then flat records `{type, ..., time (epoch ms), agentId?}`:
- `context.append_message{message{role, content[{type: text, text}], toolCalls[]}}` → a turn (user prompts, also
  the subagent's task);
- `context.append_loop_event{event}`: `step.begin` opens one model call (an assistant turn), `content.part{part:
  {type: text | think}}` adds its text or reasoning, `tool.call{toolCallId, name, args}` a tool call,
  `tool.result{toolCallId, result{output, isError}}` a tool turn, `step.end` closes the step;
- `context.apply_compaction{summary}`: the summary the model sees instead of the history (a user turn);
- bookkeeping (Skipped once per type with its count): `llm.request`, `llm.tools_snapshot`, `config.update` (the
  system prompt, identical in every session, is not made a turn), `turn.prompt` / `turn.steer` (the prompt is
  recorded again as context.append_message), `turn.*`, `usage.record`, `token_counting.*`, `permission.*`,
  `profile.bind`, `plugin.*`, `runtime.*`, `tools.*`, ...; unknown types: "unknown kimi-code line type X".
`state.json` (title, agents, workDir, lastPrompt) is the session's sidecar: acknowledged (Skipped), not a transcript.
A whole session folder (`state.json` + `agents/`) is read as a folder: each agent's wire.jsonl as above, and the
`tool-results/` (full text of outputs the wire holds truncated, as the model saw them), `media/` and `logs/` files
are acknowledged instead of being read as documents of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, normal_role, session_flags
from logminer.reading.formats.jsondoc import as_list, first_dict, head_objects, iso_from_epoch_ms, iter_json_lines
from logminer.reading.formats.jsondoc import stable_id
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "kimi-code"
RECORD_UNIT = "line"
CONVERSATION = ("context.append_message", "context.append_loop_event", "context.apply_compaction")
BOOKKEEPING_PREFIXES = ("llm.", "config.", "turn.", "usage.", "token_counting.", "permission.", "profile.",
                        "plugin.", "runtime.", "tools.", "mcp.", "plan_mode.", "swarm_mode.", "goal.", "cron.",
                        "micro_compaction.", "context.")
LOOP_EVENTS = ("step.begin", "step.end", "content.part", "tool.call", "tool.result")
STATE_KEYS = {"agents", "createdAt"}
SIDECARS = {"tool-results": "kimi-code tool-result file (full output; the model saw the wire.jsonl copy)",
            "media": "kimi-code media attachment", "logs": "kimi-code runtime log"}
STATE_SKIP = "kimi-code state.json sidecar (session title and agents; not a transcript)"
Event = Session | Skipped | Rejected


def _is_state(value: Any) -> bool:
    return isinstance(value, dict) and STATE_KEYS <= value.keys() and isinstance(value.get("agents"), dict) \
        and ("workDir" in value or "cwd" in value or "lastPrompt" in value)


def sniff(source: SourceFile) -> bool:
    objects = head_objects(source, limit=6)
    if objects and objects[0].get("type") == "metadata" and "protocol_version" in objects[0]:
        return all(isinstance(o.get("type"), str) for o in objects)
    if len(objects) >= 2 and all("." in str(o.get("type")) and "time" in o for o in objects) \
            and any(o.get("type") in CONVERSATION for o in objects):
        return True
    return len(objects) <= 1 and _is_state(first_dict(source))


def parse(source: SourceFile) -> Iterator[Event]:
    if _is_state(first_dict(source)):
        yield Skipped(source.path, 0, STATE_SKIP)
        return
    builder = _Steps()
    skipped: dict[str, list[int]] = {}
    used: list[tuple[int, int, int]] = []
    model = None
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        kind = value.get("type") if isinstance(value, dict) else None
        if not isinstance(kind, str):
            yield Rejected(source.path, number, "not a kimi-code wire record (no type)")
            continue
        stamp = iso_from_epoch_ms(value.get("time"))
        if kind == "context.append_message" and isinstance(value.get("message"), dict):
            problem = builder.message(value["message"], stamp)
        elif kind == "context.append_loop_event" and isinstance(value.get("event"), dict):
            if value["event"].get("type") not in LOOP_EVENTS:
                skipped.setdefault(f"unknown kimi-code loop event type {value['event'].get('type')}", []).append(number)
                continue
            problem = builder.event(value["event"], stamp)
        elif kind == "context.apply_compaction":
            builder.close()
            builder.turns.append(Turn(role="user", text=str(value.get("summary") or ""), timestamp=stamp))
            builder.flags.add("compaction_summary")
            problem = None
        else:
            if kind == "llm.request" and isinstance(value.get("model"), str):
                model = value["model"]
            skipped.setdefault(_skip_reason(kind), []).append(number)
            continue
        if problem:
            yield Rejected(source.path, number, f"kimi-code {kind}: {problem}")
            continue
        used.append((number, start, end))
    builder.close()
    if used and builder.turns:
        stamps = [t.timestamp for t in builder.turns if t.timestamp]
        session_id = _session_id(source.path)
        yield Session(
            session_id=session_id, parent_session_id=session_id.split("/")[0] if "/" in session_id else None,
            agent=NAME, source_file=source.path, turns=builder.turns,
            line_start=used[0][0], line_end=used[-1][0], byte_start=used[0][1], byte_end=used[-1][2],
            records=len(used), model=model, started_at=stamps[0] if stamps else None,
            ended_at=stamps[-1] if stamps else None, flags=session_flags(builder.turns, builder.flags),
            metadata={"agent_id": os.path.basename(os.path.dirname(source.path))},
        )
    elif used:
        skipped.setdefault("kimi-code loop events with no text", []).extend(number for number, _, _ in used)
    for reason, numbers in skipped.items():
        yield Skipped(source.path, numbers[0], reason, records=len(numbers))


def sniff_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "state.json")) and os.path.isdir(os.path.join(path, "agents"))


def parse_dir(path: str) -> Iterator[Event]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        area = Path(os.path.relpath(root, path)).parts
        for name in sorted(files):
            file_path = os.path.join(root, name)
            if name == "wire.jsonl" or (root == path and name == "state.json"):
                try:
                    yield from parse(SourceFile.open(file_path))
                except SourceError as error:
                    yield Rejected(file_path, 0, error.reason)
            elif len(area) >= 3 and area[0] == "agents" and area[2] in SIDECARS:
                yield Skipped(file_path, 0, SIDECARS[area[2]])
            elif area and area[0] in SIDECARS:
                yield Skipped(file_path, 0, SIDECARS[area[0]])
            else:
                yield Rejected(file_path, 0, "not a file of a kimi-code session folder")


def _skip_reason(kind: str) -> str:
    if kind == "metadata":
        return "kimi-code wire header (protocol version)"
    if kind.startswith(BOOKKEEPING_PREFIXES):
        return f"kimi-code {kind} (bookkeeping, not conversation)"
    return f"unknown kimi-code line type {kind}"


def _session_id(path: str) -> str:
    """`.../session_<uuid>/agents/<agent>/wire.jsonl` → `<uuid>` (`<uuid>/<agent>` for subagents, whose parent is
    the session's main agent)."""
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-3] == "agents" and parts[-4].startswith("session_"):
        session = parts[-4].removeprefix("session_")
        return session if parts[-2] == "main" else f"{session}/{parts[-2]}"
    return stable_id(NAME, path)


class _Steps:
    """Assistant turns built from loop events: one per step (model call), then its tool results."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.flags: set[str] = set()
        self.names: dict[str, str] = {}
        self.step: Turn | None = None
        self.results: list[Turn] = []

    def close(self) -> None:
        if self.step is not None and (self.step.text or self.step.reasoning or self.step.tool_calls):
            self.turns.append(self.step)
        self.turns += self.results
        self.step, self.results = None, []

    def message(self, message: dict[str, Any], stamp: str | None) -> str | None:
        role = normal_role(message.get("role"))
        if role is None:
            return f"unknown message role {message.get('role')!r}"
        self.close()
        turn = Turn(role=role, text=content_text(message.get("content")), timestamp=stamp)
        for call in as_list(message.get("toolCalls")):
            if isinstance(call, dict):
                turn.tool_calls.append(make_tool_call(call.get("name"), call.get("args", call.get("arguments")),
                                                      call.get("toolCallId", call.get("id"))))
        if role == "tool":
            turn.tool_call_id = str(message.get("toolCallId") or "") or None
        self.turns.append(turn)
        return None

    def event(self, event: dict[str, Any], stamp: str | None) -> str | None:
        kind = event.get("type")
        if kind == "step.begin":
            self.close()
            self.step = Turn(role="assistant", timestamp=stamp)
        elif kind == "step.end":
            self.close()
        elif kind == "content.part":
            part = event.get("part") if isinstance(event.get("part"), dict) else {}
            step = self._current(stamp)
            if part.get("type") == "think":
                step.reasoning = "\n\n".join(t for t in (step.reasoning, str(part.get("think") or "")) if t)
            elif part.get("type") == "text":
                step.text = "\n\n".join(t for t in (step.text, str(part.get("text") or "")) if t)
            else:
                self.flags.add("non_text_content_dropped")
        elif kind == "tool.call":
            call = make_tool_call(event.get("name"), event.get("args") or {}, event.get("toolCallId"))
            self._current(stamp).tool_calls.append(call)
            self.names[call.id or ""] = call.name
        else:  # tool.result
            result = event.get("result") if isinstance(event.get("result"), dict) else {}
            call_id = str(event.get("toolCallId") or "") or None
            turn = Turn(role="tool", text=content_text(result.get("output")), tool_call_id=call_id,
                        name=self.names.get(call_id or ""), is_error=bool(result.get("isError")), timestamp=stamp)
            (self.results if self.step is not None else self.turns).append(turn)  # a late result: after its step
        return None

    def _current(self, stamp: str | None) -> Turn:
        if self.step is None:
            self.step = Turn(role="assistant", timestamp=stamp)
        return self.step


def _kimi_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source kimi: $KIMI_CODE_HOME/sessions, else ~/.kimi-code/sessions (every system)."""
    root = Path(env["KIMI_CODE_HOME"]) if env.get("KIMI_CODE_HOME") else home / ".kimi-code"
    return [root / "sessions"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sniff_dir=sniff_dir, parse_dir=parse_dir,
                sources=(AgentSource("kimi", _kimi_folders),))
