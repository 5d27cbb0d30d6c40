"""Continue (continue.dev) chat sessions: `~/.continue/sessions/<sessionId>.json` (+ the `sessions.json` index).

Read from continuedev/continue core/index.d.ts: `Session{sessionId, title, workspaceDirectory, history:
ChatHistoryItem[], mode, chatModelTitle}`; `ChatHistoryItem{message, contextItems, toolCallStates?, reasoning?}`
with `message` an OpenAI-shaped ChatMessage (`role` user / assistant / system / thinking / tool; `content` a string
or `[{type: text | imageUrl}]`; assistant `toolCalls[{id, type, function{name, arguments}}]`; tool messages
`toolCallId`). `toolCallStates[].output` (context items `{name, content}`) holds a call's result when no tool
message records it. `reasoning{text}` and `thinking` messages are reasoning of the assistant turn that follows.
One record per history item. `sessions.json` (`[{sessionId, title, dateCreated, workspaceDirectory}]`) is an index.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import openai_message_turn, session_flags
from logminer.reading.formats.jsondoc import DocumentError, first_value, load_document, rejected_document
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "continue"
RECORD_UNIT = "item"  # one history item
INDEX_KEYS = {"sessionId", "title", "dateCreated"}
FIRST_KEY = re.compile(r'\s*\{\s*"sessionId"\s*:')  # Continue writes sessionId first
Event = Session | Skipped | Rejected


def _is_session(value: Any) -> bool:
    history = value.get("history") if isinstance(value, dict) else None
    return "sessionId" in value and isinstance(history, list) and \
        all(isinstance(item, dict) and isinstance(item.get("message"), dict) for item in history[:3])


def _is_index(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and \
        all(isinstance(v, dict) and INDEX_KEYS <= v.keys() for v in value[:3])


def sniff(source: SourceFile) -> bool:
    """The head, not a parse: a session file is often longer than the head (first_value gives up on it)."""
    head = source.head
    if FIRST_KEY.match(head) and all(f'"{key}"' in head for key in ("history", "message", "contextItems")):
        return not source.is_binary
    return _is_index(first_value(source))


def parse(source: SourceFile) -> Iterator[Event]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    if _is_index(document):
        yield Skipped(source.path, 0, "continue session index (titles of the session files)", records=len(document))
        return
    if not (isinstance(document, dict) and _is_session(document)):
        yield Rejected(source.path, 0, "not a continue session (sessionId, history)")
        return
    flags: set[str] = set()
    turns: list[Turn] = []
    answered: set[str] = set()
    pending: list[tuple[int, list[Any]]] = []  # (index after the assistant turn, its toolCallStates)
    reasoning: list[str] = []
    kept = 0
    for index, item in enumerate(document["history"]):
        message = item.get("message") if isinstance(item, dict) else None
        role = message.get("role") if isinstance(message, dict) else None
        if role == "thinking":
            reasoning.append(str(message.get("content") or ""))
            kept += 1
            continue
        turn = openai_message_turn({**message, "tool_calls": message.get("toolCalls"),
                                    "tool_call_id": message.get("toolCallId")}, flags) if role else None
        if turn is None:
            yield Rejected(source.path, 0, f"history item {index}: not a chat message (role {role!r})")
            continue
        kept += 1
        if isinstance(item.get("reasoning"), dict) and item["reasoning"].get("text"):
            reasoning.append(str(item["reasoning"]["text"]))
        if turn.role == "assistant" and reasoning:
            turn.reasoning = "\n\n".join(r for r in (*reasoning, turn.reasoning) if r)
            reasoning = []
        if turn.role == "tool" and turn.tool_call_id:
            answered.add(turn.tool_call_id)
        turns.append(turn)
        if turn.role == "assistant" and isinstance(item.get("toolCallStates"), list):
            pending.append((len(turns), item["toolCallStates"]))
    for position, states in reversed(pending):  # results recorded only in toolCallStates, after their call
        results = [_state_turn(s) for s in states
                   if isinstance(s, dict) and str(s.get("toolCallId") or "") not in answered]
        turns[position:position] = [r for r in results if r is not None]
    model = document.get("chatModelTitle")
    if not kept and not document["history"]:
        yield Skipped(source.path, 0, "continue session with no messages yet", records=0)
    if kept:
        yield Session(session_id=str(document["sessionId"]), agent=NAME, source_file=source.path, turns=turns,
                      records=kept, model=model if isinstance(model, str) else None,
                      flags=session_flags(turns, flags),
                      metadata={k: document[k] for k in ("title", "workspaceDirectory", "mode")
                                if isinstance(document.get(k), str)})


def _state_turn(state: dict[str, Any]) -> Turn | None:
    output = state.get("output")
    if state.get("status") not in ("done", "errored") or not isinstance(output, list):
        return None
    text = "\n".join(str(o.get("content") or "") for o in output if isinstance(o, dict))
    call = state.get("toolCall") if isinstance(state.get("toolCall"), dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    return Turn(role="tool", text=text, tool_call_id=str(state.get("toolCallId") or "") or None,
                name=function.get("name"), is_error=state.get("status") == "errored")


def _continue_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source continue: $CONTINUE_GLOBAL_DIR/sessions, else ~/.continue/sessions (every system)."""
    root = Path(env["CONTINUE_GLOBAL_DIR"]) if env.get("CONTINUE_GLOBAL_DIR") else home / ".continue"
    return [root / "sessions"]


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse, sources=(AgentSource("continue", _continue_folders),))
