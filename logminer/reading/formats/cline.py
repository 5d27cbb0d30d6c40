"""Cline task folders: `<globalStorage>/saoudrizwan.claude-dev/tasks/<taskId>/`, one session per folder.

Read from cline/cline (src/core/storage/disk.ts at eb3276d, src/shared/messages/content.ts): a task folder holds
- `api_conversation_history.json`: the model's conversation, Anthropic MessageParams extended by Cline with `ts`
  (epoch ms), `modelInfo{modelId, providerId, mode}`, `metrics`, `id` → the turns (common.anthropic_turns);
- `ui_messages.json` (older: `claude_messages.json`): the UI's `{ts, type: ask|say, ...}` copy of the same
  conversation, `task_metadata.json` (`files_in_context`, `model_usage[{model_id, ...}]`, `environment_history`),
  `context_history.json`, `settings.json`, `focus_chain_taskid_<id>.md`: read or acknowledged, Skipped.
Older Cline versions call tools with XML tags in the assistant text and answer in user text blocks; that text is kept
as it is (the model saw exactly that). The system prompt is not stored by Cline.
Roo Code (`rooveterinaryinc.roo-cline`) and Kilo Code (`kilocode.kilo-code`) keep the same task folders (plus
`history_item.json`); their sessions are labelled by the extension folder they were found in (Session.agent).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import anthropic_turns, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    iso_from_epoch_ms,
    load_document,
    loads,
    stable_id,
)
from logminer.reading.registry import AgentSource, Format, editor_user_folders
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "cline"
RECORD_UNIT = "item"  # one API message; each companion file of the task folder is one record

API_HISTORY = "api_conversation_history.json"
COMPANIONS = {
    "ui_messages.json": "cline UI messages (a display copy of the API history)",
    "claude_messages.json": "cline UI messages (a display copy of the API history)",
    "task_metadata.json": "cline task metadata (files in context, model usage)",
    "context_history.json": "cline context-tracking state",
    "settings.json": "cline task settings",
    "history_item.json": "task history entry (title, tokens, cost)",
}
AGENT_BY_EXTENSION = {"rooveterinaryinc.roo-cline": "roo-code", "kilocode.kilo-code": "kilo-code"}
Event = Session | Skipped | Rejected



def sniff_dir(path: str) -> bool:
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    return API_HISTORY in names and bool(names & {"ui_messages.json", "claude_messages.json", "task_metadata.json"})


def parse_dir(path: str) -> Iterator[Event]:
    """The task's session from its API history; every other file in the folder is acknowledged or rejected."""
    metadata = _read_json(os.path.join(path, "task_metadata.json"))
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file_path = os.path.join(root, name)
            if root == path and name == API_HISTORY:
                yield from _history(file_path, os.path.basename(path.rstrip(os.sep)), metadata)
            elif root == path and name in COMPANIONS:
                yield Skipped(file_path, 0, COMPANIONS[name])
            elif root == path and name.startswith("focus_chain_taskid_") and name.endswith(".md"):
                yield Skipped(file_path, 0, "cline focus chain (task checklist)")
            else:
                yield Rejected(file_path, 0, "not a file of a cline task folder")


def _history(file_path: str, task_id: str, metadata: Any) -> Iterator[Event]:
    try:
        messages = load_document(SourceFile.open(file_path))
    except SourceError as error:  # the file cannot be opened
        yield Rejected(file_path, 0, error.reason)
        return
    except DocumentError as error:  # unreadable text or a JSON syntax error, with its line
        yield Rejected(file_path, error.line, error.reason)
        return
    if not isinstance(messages, list):
        yield Rejected(file_path, 0, "api_conversation_history.json is not a list of messages")
        return
    roles = ("user", "assistant")
    bad = next((i for i, m in enumerate(messages) if not isinstance(m, dict) or m.get("role") not in roles), None)
    if bad is not None:
        yield Rejected(file_path, 0, f"message {bad}: not a user/assistant message", records=len(messages))
        return
    flags: set[str] = set()
    tool_names: dict[str, str] = {}
    turns = []
    for message in messages:
        stamp = iso_from_epoch_ms(message.get("ts"))
        turns += anthropic_turns(message["role"], message.get("content"), flags, tool_names, stamp)
    stamps = [t.timestamp for t in turns if t.timestamp]
    yield Session(
        session_id=task_id or stable_id(NAME, file_path),
        agent=agent_of(file_path),
        source_file=file_path,
        turns=turns,
        records=len(messages),
        model=_model(messages, metadata),
        started_at=stamps[0] if stamps else None,
        ended_at=stamps[-1] if stamps else None,
        flags=session_flags(turns, flags),
        metadata={"task_id": task_id},
    )


def agent_of(path: str) -> str:
    """The agent whose extension folder holds the task: Roo Code, Kilo Code, else Cline."""
    parts = set(Path(path).parts)
    return next((agent for folder, agent in AGENT_BY_EXTENSION.items() if folder in parts), NAME)


def _model(messages: list[dict[str, Any]], metadata: Any) -> str | None:
    for message in reversed(messages):
        info = message.get("modelInfo")
        if isinstance(info, dict) and isinstance(info.get("modelId"), str):
            return info["modelId"]
    usage = metadata.get("model_usage") if isinstance(metadata, dict) else None
    if isinstance(usage, list) and usage and isinstance(usage[-1], dict):
        model = usage[-1].get("model_id")
        return model if isinstance(model, str) else None
    return None



def _read_json(path: str) -> Any:
    try:
        return loads(SourceFile.open(path).text)
    except (SourceError, json.JSONDecodeError):
        return None


CLINE_EDITORS = ("Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf")
CLINE_TASKS = ("User", "globalStorage", "saoudrizwan.claude-dev", "tasks")


def _extension_tasks(home: Path, env: Mapping[str, str], platform: str, extension: str) -> list[Path]:
    return [root / "User" / "globalStorage" / extension / "tasks"
            for root in editor_user_folders(home, env, platform, CLINE_EDITORS)]


def _cline_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source cline: <editor user folder>/User/globalStorage/saoudrizwan.claude-dev/tasks of VS Code, VS Code
    Insiders, VSCodium, Cursor and Windsurf, then the CLI's ~/.cline/data/sessions (3.x, cline_cli) and
    ~/.cline/data/tasks."""
    cli = home / ".cline" / "data"
    return [*_extension_tasks(home, env, platform, "saoudrizwan.claude-dev"), cli / "sessions", cli / "tasks"]


def _roo_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source roo: <editor user folder>/User/globalStorage/rooveterinaryinc.roo-cline/tasks (editors as cline)."""
    return _extension_tasks(home, env, platform, "rooveterinaryinc.roo-cline")


def _kilo_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source kilo: Kilo CLI's database $XDG_DATA_HOME or ~/.local/share/kilo/kilo.db (an OpenCode fork, read by
    opencode_db) and Kilo Code's <editor user folder>/User/globalStorage/kilocode.kilo-code/tasks."""
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "kilo"
    return [data / "kilo.db", *_extension_tasks(home, env, platform, "kilocode.kilo-code")]


FORMAT = Format(NAME, RECORD_UNIT, unit="folder", sniff_dir=sniff_dir, parse_dir=parse_dir,
                sources=(AgentSource("cline", _cline_folders), AgentSource("roo", _roo_folders),
                         AgentSource("kilo", _kilo_folders)))
