"""OpenHands V0: an event-stream trajectory (JSON list of events) or evaluation output (JSONL, `history` per line).

Events (OpenHands repository, openhands/events/serialization, tests/runtime/trajs, tests/unit/resolver):
`{id, timestamp, source, message, action | observation, args | extras, content, cause, tool_call_metadata}`.
- `message` actions → user / assistant turns by `source`; `system` actions → system turns.
- Other agent actions → a tool call on an assistant turn. With `tool_call_metadata.model_response` the call is the
  model's own (name, JSON arguments, id) and actions from one response share one assistant turn (parallel calls);
  otherwise the call is the action name with its `args` (bookkeeping keys dropped). `thought` is the turn's text.
  A `finish` without a tool call is an assistant message.
- Observations answering a call (`tool_call_metadata.tool_call_id`, or `cause` = the action's id) → tool turns;
  state changes, recalls and other bookkeeping are not turns.
- Older resolver/eval histories are flat dicts without ids (args/extras merged into the event, or `[action,
  observation]` pairs): an observation answers the latest unanswered call.
Evaluation lines carry `instance_id` (→ metadata) and `instance.repo`; resolver lines carry `issue{owner, repo}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import make_tool_call, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    content_hash,
    first_json_line,
    iter_json_lines,
    load_document,
    rejected_document,
    repo_from_instance_id,
    stable_id,
    starts_with_json,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, ToolCall, Turn

NAME = "openhands"
RECORD_UNIT = "item"  # one event of a JSON event list; one line of eval-output JSONL (see `records` per session)

_NOT_TURN_ACTIONS = ("change_agent_state", "recall", "null", "condensation", "condensation_request", "agent_state")
_BOOKKEEPING_ARGS = {
    "thought", "keep_prompt", "is_confirmed", "action_risk", "security_risk", "confirmation_state", "hidden",
    "blocking", "impl_source", "images_urls", "image_urls", "wait_for_response", "action", "translated_ipython_code",
}
_EVENT_KIND = re.compile(r'"(action|observation)"\s*:\s*"')
_EVENT_BODY = re.compile(r'"source"\s*:\s*"(user|agent|environment)"|"(args|extras)"\s*:\s*\{')
_HISTORY_LIST = re.compile(r'"history"\s*:\s*\[')
_RUN_LINE_KEYS = ("instance_id", "instruction", "instance", "issue", "test_result", "git_patch", "metadata")


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary:
        return False
    if starts_with_json(head, "["):
        return bool(_EVENT_KIND.search(head) and _EVENT_BODY.search(head))
    line = first_json_line(head)
    if isinstance(line, dict):
        history = line.get("history")
        return isinstance(history, list) and any(k in line for k in _RUN_LINE_KEYS) and _looks_like_events(history)
    # eval lines often outgrow the sniff window: search the first MiB of the first line's text
    first_line = source.data[: 1 << 20].decode("utf-8", errors="replace").lstrip().split("\n", 1)[0]
    return (
        starts_with_json(first_line, "{")
        and bool(_HISTORY_LIST.search(first_line) and _EVENT_KIND.search(first_line))
        and any(f'"{key}"' in first_line for key in _RUN_LINE_KEYS)
    )


def _looks_like_events(history: list[Any]) -> bool:
    for item in history[:5]:
        if isinstance(item, list):  # [action, observation] pairs
            item = item[0] if item else None
        if isinstance(item, dict) and ("action" in item or "observation" in item):
            return True
    return False


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    if starts_with_json(source.head, "["):
        try:
            events = load_document(source)
        except DocumentError as error:
            yield rejected_document(source, error)
            return
        if not isinstance(events, list):
            yield Rejected(source.path, 0, "expected a JSON list of OpenHands events")
            return
        yield _session(source, events, {}, stable_id(NAME, content_hash(source)), len(events))
        return
    for number, start, end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
            continue
        if not isinstance(value, dict) or not isinstance(value.get("history"), list):
            yield Rejected(source.path, number, "eval-output line without a `history` list")
            continue
        session = _session(source, value["history"], value, stable_id(NAME, content_hash(source), number), 1)
        if isinstance(session, Session):
            session.line_start = session.line_end = number
            session.byte_start, session.byte_end = start, end
        elif isinstance(session, Rejected):
            session.line = number
        yield session


def _session(
    source: SourceFile, history: list[Any], record: dict[str, Any], session_id: str, records: int
) -> Session | Rejected:
    events = _flatten(history)
    bad = next((i for i, e in enumerate(events) if not isinstance(e, dict)), None)
    if bad is not None:
        return Rejected(source.path, 0, f"history item {bad} is not an event object", records=records)
    if events and not any("action" in e or "observation" in e for e in events):
        return Rejected(source.path, 0, "no OpenHands action/observation events", records=records)
    turns, model = _turns(events)
    session = Session(
        session_id=session_id, agent=NAME, source_file=source.path, turns=turns, records=records, model=model
    )
    stamps = [e["timestamp"] for e in events if isinstance(e.get("timestamp"), str)]
    if stamps:
        session.started_at, session.ended_at = stamps[0], stamps[-1]
    session.metadata = _metadata(record)
    session.flags = session_flags(turns, set(session.flags))
    return session


def _flatten(history: list[Any]) -> list[Any]:
    events: list[Any] = []
    for item in history:
        events.extend(item if isinstance(item, list) else [item])
    return [e for e in events if e != {}]


def _turns(events: list[dict[str, Any]]) -> tuple[list[Turn], str | None]:
    turns: list[Turn] = []
    call_of_action: dict[Any, str] = {}  # event id → tool call id
    unanswered: list[str] = []  # flat histories: calls in order, answered first-in first-out
    last_response: str | None = None
    model = None
    seen_user = False
    for index, event in enumerate(events):
        if "action" in event:
            action = event["action"]
            args = event["args"] if isinstance(event.get("args"), dict) else event
            source = event.get("source") or ("user" if action == "message" and not seen_user else "agent")
            if action in _NOT_TURN_ACTIONS:
                continue
            if action == "system":
                turns.append(Turn(role="system", text=str(args.get("content") or event.get("message") or "")))
                continue
            if action == "message":
                role = "user" if source == "user" else "assistant"
                seen_user = seen_user or role == "user"
                text = args.get("content") if isinstance(args.get("content"), str) else event.get("message", "")
                turns.append(Turn(role=role, text=str(text or ""), timestamp=event.get("timestamp")))
                last_response = None
                continue
            call, response_id, text, reasoning, response_model = _action_call(event, args, index)
            model = response_model or model
            if call is None:  # finish / reject without a tool call: the agent's closing words
                turns.append(Turn(role="assistant", text=text, reasoning=reasoning, timestamp=event.get("timestamp")))
                last_response = None
                continue
            if response_id and response_id == last_response and turns and turns[-1].role == "assistant":
                turns[-1].tool_calls.append(call)
            else:
                turns.append(
                    Turn(role="assistant", text=text, reasoning=reasoning, tool_calls=[call],
                         timestamp=event.get("timestamp"))
                )
            last_response = response_id
            call_of_action[str(event.get("id", f"#{index}"))] = call.id
            unanswered.append(call.id)
        elif "observation" in event:
            call_id = _answered_call(event, call_of_action, unanswered)
            if call_id is None:
                continue
            if call_id in unanswered:
                unanswered.remove(call_id)
            extras = event["extras"] if isinstance(event.get("extras"), dict) else event
            metadata = extras.get("metadata") if isinstance(extras.get("metadata"), dict) else {}
            exit_code = extras.get("exit_code", metadata.get("exit_code"))
            turns.append(
                Turn(
                    role="tool",
                    text=str(event.get("content") or event.get("message") or ""),
                    tool_call_id=call_id,
                    name=((event.get("tool_call_metadata") or {}).get("function_name") or event["observation"]),
                    is_error=event["observation"] == "error" or exit_code not in (None, 0, -1),
                    timestamp=event.get("timestamp"),
                )
            )
    return turns, model


def _action_call(
    event: dict[str, Any], args: dict[str, Any], index: int
) -> tuple[ToolCall | None, str | None, str, str, str | None]:
    """(tool call or None, model response id, assistant text, reasoning, model name) for a non-message action."""
    metadata = event.get("tool_call_metadata") if isinstance(event.get("tool_call_metadata"), dict) else {}
    response = metadata.get("model_response") if isinstance(metadata.get("model_response"), dict) else {}
    choices = response.get("choices") or [{}]
    message = (choices[0] or {}).get("message") or {} if isinstance(choices, list) else {}
    thought = str(args.get("thought") or "")
    text = message.get("content") if isinstance(message.get("content"), str) else thought
    reasoning = str(message.get("reasoning_content") or "")
    call_id = metadata.get("tool_call_id")
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") or {} if isinstance(raw, dict) else {}
        if raw.get("id") == call_id:
            call = make_tool_call(function.get("name"), function.get("arguments"), call_id)
            return call, response.get("id"), text or "", reasoning, response.get("model")
    if call_id:  # metadata without the response: the action's own arguments
        arguments = {k: v for k, v in args.items() if k not in _BOOKKEEPING_ARGS}
        return make_tool_call(metadata.get("function_name"), arguments, call_id), None, text or "", reasoning, None
    if event["action"] in ("finish", "reject"):
        outputs = args.get("outputs") if isinstance(args.get("outputs"), dict) else {}
        closing = thought or str(args.get("final_thought") or outputs.get("content") or event.get("message") or "")
        return None, None, closing, "", None
    arguments = {k: v for k, v in args.items() if k not in _BOOKKEEPING_ARGS}
    return make_tool_call(event["action"], arguments, f"event-{event.get('id', index)}"), None, thought, "", None


def _answered_call(event: dict[str, Any], call_of_action: dict[Any, str], unanswered: list[str]) -> str | None:
    metadata = event.get("tool_call_metadata") if isinstance(event.get("tool_call_metadata"), dict) else {}
    if metadata.get("tool_call_id"):
        return metadata["tool_call_id"]
    if "cause" in event and event["cause"] is not None:
        return call_of_action.get(str(event["cause"]))
    if "id" not in event and unanswered:  # flat history without ids: answers the oldest open call
        return unanswered[0]
    return None


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    instance_id = record.get("instance_id")
    if isinstance(instance_id, (str, int)) and str(instance_id):
        metadata["instance_id"] = str(instance_id)
    instance = record.get("instance") if isinstance(record.get("instance"), dict) else {}
    issue = record.get("issue") if isinstance(record.get("issue"), dict) else {}
    repo = instance.get("repo") or repo_from_instance_id(metadata.get("instance_id"))
    if not repo and issue.get("owner") and issue.get("repo"):
        repo = f"{issue['owner']}/{issue['repo']}"
    if isinstance(repo, str) and repo:
        metadata["repo"] = repo
    if issue.get("number") is not None:
        metadata["issue_number"] = issue["number"]
    return metadata


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
