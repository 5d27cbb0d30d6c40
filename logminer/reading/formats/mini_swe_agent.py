"""mini-swe-agent trajectories (`*.traj.json`): `{trajectory_format, info, messages, instance_id}` or a message list.

Shapes read (SWE-agent/mini-swe-agent tests/test_data and run outputs):
- `mini-swe-agent-1` (and old bare lists): the action is the one ```` ```bash ```` block (old fixtures:
  ```` ```mswea_bash_command ````) in the assistant text; the command's result is the next user message, starting
  `<returncode>`. The block becomes a `bash` tool call (removed from the text so it is not rendered twice) and the
  result a tool turn; the submission output that ends a run (the last user message after a call) is that call's
  result too. Assistant
  messages with zero or several blocks were format errors in the run: text only, and the next user message stays user.
- `mini-swe-agent-1.1`+: OpenAI `tool_calls`, `tool` role with `tool_call_id`, `reasoning_content`, and a final
  `exit` role message holding the submission (kept in metadata `exit_status`, not as a turn).
The instance id comes from the top-level `instance_id`, else the file name `<instance_id>.traj.json`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import make_tool_call, openai_message_turn, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    content_hash,
    load_document,
    rejected_document,
    repo_from_instance_id,
    stable_id,
    starts_with_json,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "mini-swe-agent"
RECORD_UNIT = "item"  # one message

_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)[ \t]*\n(.*?)\n?```", re.DOTALL)
_RESULT_PREFIX = "<returncode>"
_FORMAT_TAG = re.compile(r'"trajectory_format"\s*:\s*"mini-swe-agent')
_VERSION_KEY = re.compile(r'"mini_version"\s*:')
_ROLES = ("system", "user", "assistant", "tool", "exit")


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary:
        return False
    if starts_with_json(head, "{"):  # the format tag is written last, `info.mini_version` near the top
        tail = source.data[-4096:].decode("utf-8", errors="replace")
        return bool(_FORMAT_TAG.search(head) or _FORMAT_TAG.search(tail) or _VERSION_KEY.search(head))
    if starts_with_json(head, "["):  # old fixtures: a bare message list with returncode results
        return '"role"' in head and _RESULT_PREFIX in head and ("```mswea_bash_command" in head or "```bash" in head)
    return False


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    try:
        document = load_document(source)
    except DocumentError as error:
        yield rejected_document(source, error)
        return
    if isinstance(document, list):
        messages, info, instance_id, version = document, {}, None, "bare-list"
    elif isinstance(document, dict) and isinstance(document.get("messages"), list):
        messages = document["messages"]
        info = document.get("info") if isinstance(document.get("info"), dict) else {}
        instance_id = document.get("instance_id") if isinstance(document.get("instance_id"), str) else None
        version = str(document.get("trajectory_format") or "")
    else:
        yield Rejected(source.path, 0, "expected a message list or an object with a `messages` list")
        return
    bad = next((i for i, m in enumerate(messages) if not isinstance(m, dict) or m.get("role") not in _ROLES), None)
    if bad is not None:
        yield Rejected(source.path, 0, f"message {bad}: not a message with a known role", records=len(messages))
        return
    flags: set[str] = set()
    turns, exit_status = _turns(messages, flags)
    instance_id = instance_id or _instance_from_name(source.path)
    metadata: dict[str, Any] = {"trajectory_format": version}
    if instance_id:
        metadata["instance_id"] = instance_id
        if repo_from_instance_id(instance_id):
            metadata["repo"] = repo_from_instance_id(instance_id)
    status = info.get("exit_status") or exit_status
    if isinstance(status, str) and status:
        metadata["exit_status"] = status
    if isinstance(info.get("mini_version"), str):
        metadata["mini_version"] = info["mini_version"]
    session = Session(
        session_id=stable_id(NAME, content_hash(source)),
        agent=NAME,
        source_file=source.path,
        turns=turns,
        records=len(messages),
        model=_model_name(info),
        metadata=metadata,
        flags=session_flags(turns, flags),
    )
    yield session


def _turns(messages: list[dict[str, Any]], flags: set[str]) -> tuple[list[Turn], str | None]:
    turns: list[Turn] = []
    pending: str | None = None  # id of a text-action call still waiting for its result
    exit_status = None
    for index, message in enumerate(messages):
        if message["role"] == "exit":
            exit_status = "exit"
            continue
        turn = openai_message_turn(message, flags)
        if turn.role == "assistant":
            pending = None
            blocks = _BLOCK.findall(turn.text) if not turn.tool_calls else []
            if len(blocks) == 1:  # v1: the one bash block is the action
                pending = f"action-{index}"
                turn.tool_calls = [make_tool_call("bash", {"command": blocks[0].strip()}, pending)]
                turn.text = _BLOCK.sub("", turn.text).strip()
        elif turn.role == "tool":
            turn.name = turn.name or "bash"
        elif turn.role == "user" and pending and (
            turn.text.lstrip().startswith(_RESULT_PREFIX) or index == len(messages) - 1
        ):
            turn = Turn(role="tool", text=turn.text, tool_call_id=pending, name="bash")
            pending = None
        else:
            pending = None
        turns.append(turn)
    return turns, exit_status


def _model_name(info: dict[str, Any]) -> str | None:
    model = ((info.get("config") or {}).get("model") or {}) if isinstance(info.get("config"), dict) else {}
    name = model.get("model_name") if isinstance(model, dict) else None
    return name if isinstance(name, str) and name else None


def _instance_from_name(path: str) -> str | None:
    stem = os.path.basename(path).split(".traj")[0]
    return stem if repo_from_instance_id(stem) else None


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
