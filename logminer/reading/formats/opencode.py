"""OpenCode JSON storage (`~/.local/share/opencode/storage/`): one session spread over many small JSON files.

Read from sst/opencode (now anomalyco/opencode: packages/opencode/src/storage/json-migration.ts at 062aa8c, which
reads this layout into SQLite, and session/message-v2.ts for the part types):
- `session/<projectID>/<sessionID>.json`: {id, projectID, parentID, title, directory, version, time{created, updated}}
- `message/<sessionID>/<messageID>.json`: {id, sessionID, role: user|assistant, time{created}, modelID, providerID}
- `part/<messageID>/<partID>.json`: {id, messageID, type, ...}: `text` (text, synthetic), `reasoning` (text),
  `tool` (callID, tool, state{status, input, output | error}), `step-start` / `step-finish` (one model call each),
  `file`, `patch`, `snapshot`, `agent`, `compaction`, ... (not turns).
- `project/`, `todo/`, `permission/`, `session_share/`, `session_diff/`: not conversation: Skipped.
Messages and parts are ordered by id (OpenCode ids are ascending). An assistant message is split at `step-start`
into one assistant turn per model call, each followed by the tool turns of its calls. Versions that store sessions in
SQLite (`opencode.db`) are read by opencode_db, which maps its message/part rows with message_turns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from logminer.reading.formats.common import content_text, make_tool_call, session_flags
from logminer.reading.formats.jsondoc import iso_from_epoch_ms, loads
from logminer.reading.registry import AgentSource, Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "opencode"
RECORD_UNIT = "file"  # every JSON file of the storage tree is one record

CONVERSATION_DIRS = ("session", "message", "part")
OTHER_DIRS = {
    "project": "opencode project record",
    "todo": "opencode todo list",
    "permission": "opencode permissions",
    "session_share": "opencode share link",
    "session_diff": "opencode session diff",
    "snapshot": "opencode file snapshot",
}
Event = Session | Skipped | Rejected



def sniff_dir(path: str) -> bool:
    return all(os.path.isdir(os.path.join(path, name)) for name in CONVERSATION_DIRS)


def parse_dir(path: str) -> Iterator[Event]:
    """One session per session file; every file of the tree is consumed by a session, Skipped or Rejected."""
    files = _json_files(path)
    consumed: set[str] = set()
    for session_file in sorted(f for f in files if _area(path, f) == "session"):
        yield from _session(path, session_file, consumed)
    for file_path in files:
        if file_path in consumed:
            continue
        area = _area(path, file_path)
        if area in OTHER_DIRS:
            yield Skipped(file_path, 0, OTHER_DIRS[area])
        elif area in ("message", "part"):
            yield Skipped(file_path, 0, f"opencode {area} of no stored session")
        else:
            yield Rejected(file_path, 0, "not a file of the opencode storage layout")


def _json_files(path: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files)]
    return found


def _area(root: str, file_path: str) -> str:
    return os.path.relpath(file_path, root).split(os.sep)[0]


def _read(file_path: str) -> dict[str, Any] | Rejected:
    try:
        value = loads(SourceFile.open(file_path).text)
    except SourceError as error:
        return Rejected(file_path, 0, error.reason)
    except json.JSONDecodeError as error:
        return Rejected(file_path, error.lineno, f"invalid JSON: {error.msg}")
    return value if isinstance(value, dict) else Rejected(file_path, 0, "not a JSON object")


def _children(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".json")]


def _session(root: str, session_file: str, consumed: set[str]) -> Iterator[Event]:
    consumed.add(session_file)
    info = _read(session_file)
    if isinstance(info, Rejected):
        yield info
        return
    session_id = os.path.basename(session_file).removesuffix(".json")
    session = Session(session_id=session_id, agent=NAME, source_file=session_file, records=1)
    session.parent_session_id = info.get("parentID") if isinstance(info.get("parentID"), str) else None
    time = info.get("time") if isinstance(info.get("time"), dict) else {}
    session.started_at = iso_from_epoch_ms(time.get("created"))
    session.ended_at = iso_from_epoch_ms(time.get("updated"))
    session.metadata = {k: info[k] for k in ("title", "directory", "version") if isinstance(info.get(k), str)}
    messages = []
    for message_file in _children(os.path.join(root, "message", session_id)):
        consumed.add(message_file)
        message = _read(message_file)
        if isinstance(message, Rejected):
            yield message
            continue
        parts = []
        for part_file in _children(os.path.join(root, "part", os.path.basename(message_file).removesuffix(".json"))):
            consumed.add(part_file)
            part = _read(part_file)
            if isinstance(part, Rejected):
                yield part
                continue
            parts.append(part)
        session.records += 1 + len(parts)
        messages.append((message, parts))
    messages.sort(key=lambda item: str(item[0].get("id", "")))
    for message, parts in messages:
        parts.sort(key=lambda part: str(part.get("id", "")))
        session.turns += message_turns(message, parts)
        if message.get("role") == "assistant" and isinstance(message.get("modelID"), str):
            session.model = message["modelID"]
    session.flags = session_flags(session.turns, set(session.flags))
    yield session


def message_turns(message: dict[str, Any], parts: list[dict[str, Any]]) -> list[Turn]:
    time = message.get("time") if isinstance(message.get("time"), dict) else {}
    stamp = iso_from_epoch_ms(time.get("created"))
    if message.get("role") != "assistant":
        texts = [str(p.get("text", "")) for p in parts if p.get("type") == "text" and p.get("text")]
        return [Turn(role="user", text="\n\n".join(texts), timestamp=stamp)]
    turns: list[Turn] = []
    step = Turn(role="assistant", timestamp=stamp)
    results: list[Turn] = []

    def close_step() -> None:
        if step.text or step.reasoning or step.tool_calls:
            turns.append(step)
            turns.extend(results)

    for part in parts:
        kind = part.get("type")
        if kind == "step-start" and (step.text or step.reasoning or step.tool_calls):
            close_step()
            step, results = Turn(role="assistant", timestamp=stamp), []
        elif kind == "text" and part.get("text"):
            step.text = f"{step.text}\n\n{part['text']}" if step.text else str(part["text"])
        elif kind == "reasoning" and part.get("text"):
            step.reasoning = f"{step.reasoning}\n\n{part['text']}" if step.reasoning else str(part["text"])
        elif kind == "tool":
            state = part.get("state") if isinstance(part.get("state"), dict) else {}
            call = make_tool_call(part.get("tool"), state.get("input") or {}, part.get("callID") or part.get("id"))
            step.tool_calls.append(call)
            failed = state.get("status") == "error"
            output = state.get("error") if failed else state.get("output")
            if state.get("status") in ("completed", "error"):
                results.append(Turn(role="tool", text=content_text(output), tool_call_id=call.id, name=call.name,
                                    is_error=failed))
    close_step()
    return turns


def _opencode_folders(home: Path, env: Mapping[str, str], platform: str) -> list[Path]:
    """--source opencode: in $XDG_DATA_HOME/opencode, else ~/.local/share/opencode (XDG on every system): the
    database opencode.db (and opencode-<channel>.db, or $OPENCODE_DB when absolute), then the pre-1.2 storage/."""
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "opencode"
    named = [Path(env["OPENCODE_DB"])] if env.get("OPENCODE_DB", "").startswith("/") else []
    return [*named, data / "opencode.db", *sorted(data.glob("opencode-*.db")), data / "storage"]


FORMAT = Format(NAME, RECORD_UNIT, unit="folder", sniff_dir=sniff_dir, parse_dir=parse_dir, sources=(AgentSource("opencode", _opencode_folders),))
