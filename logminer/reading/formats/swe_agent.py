"""SWE-agent `.traj` files (one JSON object per run): `history` preferred, `trajectory` as the fallback.

Shapes read (SWE-agent repository, tests/test_data/trajectories and trajectories/demonstrations):
- 1.0: `history[{role, content, agent, message_type, thought, action, tool_calls, tool_call_ids}]`, `trajectory`,
  `info`, `replay_config` (an object or its JSON text) with `problem_statement.id` (the instance id), `environment`.
- pre-1.0: the same `history` without `message_type`, `trajectory[{action, observation, response, state, thought}]`
  (the instance id is only the file name `<instance_id>.traj`; `state.working_dir` names the repository).
- history-only demonstrations (no `trajectory`/`info`).
- `is_demo` messages in history are a demonstration shown to the model, not the run: they are left out of the turns,
  counted in metadata `demo_messages` and flagged `has_demonstration`.
History maps one to one (tool messages answer `tool_call_ids[0]`); without history each trajectory step gives an
assistant turn (response, with the action as a tool call named by its first word) and a tool turn (observation).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import make_tool_call, openai_message_turn, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    content_hash,
    load_document,
    loads,
    rejected_document,
    repo_from_instance_id,
    stable_id,
    starts_with_json,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "swe-agent"
RECORD_UNIT = "item"  # one history message (or trajectory step when there is no history)

_TRAJECTORY_KEY = re.compile(r'"trajectory"\s*:\s*\[')
_HISTORY_KEY = re.compile(r'"history"\s*:\s*\[')
_STEP_FIELD = re.compile(r'"(observation|response|thought)"\s*:')
_MESSAGE_TYPE = re.compile(r'"message_type"\s*:')
_ROLES = ("system", "user", "assistant", "tool")


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary or not starts_with_json(head, "{") or '"trajectory_format"' in head:
        return False
    if _TRAJECTORY_KEY.search(head) and _STEP_FIELD.search(head):
        return True
    return bool(_HISTORY_KEY.search(head) and _MESSAGE_TYPE.search(head))


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    if not isinstance(document, dict):
        yield Rejected(source.path, 0, f"expected a JSON object with history/trajectory, got {type(document).__name__}")
        return
    history = document.get("history")
    trajectory = document.get("trajectory")
    flags: set[str] = set()
    if isinstance(history, list) and history:
        turns, demo_count, problem = _history_turns(history, flags)
        records = len(history)
    elif isinstance(trajectory, list) and trajectory:
        turns, demo_count, problem = _trajectory_turns(trajectory)
        records = len(trajectory)
    else:
        yield Rejected(source.path, 0, "neither a non-empty `history` nor `trajectory` list")
        return
    if problem:
        yield Rejected(source.path, 0, problem, records=records)
        return
    session = Session(
        session_id=stable_id(NAME, content_hash(source)),
        agent=NAME,
        source_file=source.path,
        turns=turns,
        records=records,
        metadata=_metadata(source.path, document, demo_count),
    )
    session.model = _model_name(document)
    if demo_count:
        flags.add("has_demonstration")
    session.flags = session_flags(turns, flags)
    yield session


def _history_turns(history: list[Any], flags: set[str]) -> tuple[list[Turn], int, str | None]:
    turns: list[Turn] = []
    demos = 0
    for index, message in enumerate(history):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return [], 0, f"history item {index}: not a message with role system/user/assistant/tool"
        if message.get("is_demo"):
            demos += 1
            continue
        turn = openai_message_turn(message, flags)
        if turn.role == "tool" and turn.tool_call_id is None:
            call_ids = message.get("tool_call_ids") or []
            turn.tool_call_id = str(call_ids[0]) if call_ids else None
        turns.append(turn)
    return turns, demos, None


def _trajectory_turns(trajectory: list[Any]) -> tuple[list[Turn], int, str | None]:
    turns: list[Turn] = []
    for index, step in enumerate(trajectory):
        if not isinstance(step, dict) or not ({"action", "observation", "response"} & step.keys()):
            return [], 0, f"trajectory step {index}: no action/observation/response"
        action = str(step.get("action") or "").strip()
        assistant = Turn(role="assistant", text=str(step.get("response") or step.get("thought") or ""))
        call_id = f"step-{index}"
        if action:
            assistant.tool_calls = [make_tool_call(action.split()[0], {"command": action}, call_id)]
        turns.append(assistant)
        if action:
            turns.append(
                Turn(role="tool", text=str(step.get("observation") or ""), tool_call_id=call_id, name=action.split()[0])
            )
    return turns, 0, None


def _replay_config(document: dict[str, Any]) -> dict[str, Any]:
    config = document.get("replay_config")
    if isinstance(config, str):
        try:
            config = loads(config)
        except json.JSONDecodeError:
            return {}
    return config if isinstance(config, dict) else {}


def _model_name(document: dict[str, Any]) -> str | None:
    model = (_replay_config(document).get("agent") or {}).get("model") or {}
    name = model.get("name") if isinstance(model, dict) else None
    return name if isinstance(name, str) and name else None


def _metadata(path: str, document: dict[str, Any], demo_count: int) -> dict[str, Any]:
    config = _replay_config(document)
    problem = config.get("problem_statement") if isinstance(config.get("problem_statement"), dict) else {}
    instance_id = problem.get("id") if isinstance(problem.get("id"), str) else None
    stem = os.path.basename(path).split(".traj")[0]
    if instance_id is None and repo_from_instance_id(stem):
        instance_id = stem
    metadata: dict[str, Any] = {}
    if instance_id:
        metadata["instance_id"] = instance_id
    repo = _repo(config, document) or repo_from_instance_id(instance_id)
    if repo:
        metadata["repo"] = repo
    if isinstance(document.get("environment"), str):
        metadata["environment"] = document["environment"]
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    if isinstance(info.get("exit_status"), str):
        metadata["exit_status"] = info["exit_status"]
    if demo_count:
        metadata["demo_messages"] = demo_count
    return metadata


def _repo(config: dict[str, Any], document: dict[str, Any]) -> str | None:
    repo = ((config.get("env") or {}).get("repo") or {}) if isinstance(config.get("env"), dict) else {}
    url = repo.get("github_url") if isinstance(repo, dict) else None
    if isinstance(url, str):
        match = re.search(r"github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    for step in document.get("trajectory") or []:  # pre-1.0: state.working_dir is "/owner__repo"
        state = step.get("state") if isinstance(step, dict) else None
        if isinstance(state, str):
            try:
                state = loads(state)
            except json.JSONDecodeError:
                continue
        working_dir = state.get("working_dir") if isinstance(state, dict) else None
        match = re.fullmatch(r"/([\w.-]+?)__([\w.-]+)", str(working_dir or ""))
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return None


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
