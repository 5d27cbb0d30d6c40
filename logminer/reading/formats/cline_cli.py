"""Cline CLI 3.x session folders: `~/.cline/data/sessions/<id>/` with `<id>.messages.json` and `<id>.json`.

`<id>.messages.json` = `{version, agent, sessionId, origin, updated_at, messages: [...]}`; each message is an
Anthropic MessageParam as Cline's extension stores it (`role`, `content` blocks text / tool_use / tool_result /
thinking, plus `id`, `ts` epoch ms, `modelInfo{id, provider}`, `metrics`) → common.anthropic_turns, one record
per message. `<id>.json` is the session's metadata (`session_id`, `cwd`, `prompt`, `started_at`, `metadata{title}`):
acknowledged (Skipped). Any other file in the folder is rejected as not part of the layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.common import anthropic_turns, session_flags
from logminer.reading.formats.jsondoc import (
    DocumentError,
    iso_from_epoch_ms,
    load_document,
    loads,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "cline-cli"
RECORD_UNIT = "item"  # one message of <id>.messages.json; the metadata file is one record
Event = Session | Skipped | Rejected


def sniff_dir(path: str) -> bool:
    name = os.path.basename(path.rstrip(os.sep))
    return bool(name) and os.path.isfile(os.path.join(path, f"{name}.messages.json"))


def parse_dir(path: str) -> Iterator[Event]:
    name = os.path.basename(path.rstrip(os.sep))
    metadata = _read(os.path.join(path, f"{name}.json"))
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for file_name in sorted(files):
            file_path = os.path.join(root, file_name)
            if root == path and file_name == f"{name}.messages.json":
                yield from _messages(file_path, name, metadata if isinstance(metadata, dict) else {})
            elif root == path and file_name == f"{name}.json":
                yield Skipped(file_path, 0, "cline-cli session metadata")
            else:
                yield Rejected(file_path, 0, "not a file of a cline-cli session folder")


def _read(path: str) -> Any:
    try:
        return loads(SourceFile.open(path).text)
    except (SourceError, json.JSONDecodeError):
        return None


def _messages(file_path: str, session_id: str, metadata: dict[str, Any]) -> Iterator[Event]:
    try:
        document = load_document(SourceFile.open(file_path))
    except SourceError as error:  # the file cannot be opened
        yield Rejected(file_path, 0, error.reason)
        return
    except DocumentError as error:  # unreadable text or a JSON syntax error, with its line
        yield Rejected(file_path, error.line, error.reason)
        return
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list):
        yield Rejected(file_path, 0, "no messages list")
        return
    flags: set[str] = set()
    names: dict[str, str] = {}
    turns = []
    model = None
    kept = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            yield Rejected(file_path, 0, f"message {index}: not a user/assistant message")
            continue
        kept += 1
        stamp = iso_from_epoch_ms(message.get("ts"))
        turns += anthropic_turns(message["role"], message.get("content"), flags, names, stamp)
        info = message.get("modelInfo") if isinstance(message.get("modelInfo"), dict) else {}
        model = info.get("id") or info.get("modelId") or model
    if not kept:
        return
    stamps = [t.timestamp for t in turns if t.timestamp]
    title = (metadata.get("metadata") or {}).get("title") if isinstance(metadata.get("metadata"), dict) else None
    extra = {"cwd": metadata.get("cwd"), "title": title}
    yield Session(session_id=str(document.get("sessionId") or session_id), agent="cline", source_file=file_path,
                  turns=turns, records=kept, model=model if isinstance(model, str) else None,
                  started_at=stamps[0] if stamps else None, ended_at=stamps[-1] if stamps else None,
                  flags=session_flags(turns, flags), metadata={k: v for k, v in extra.items() if isinstance(v, str)})


FORMAT = Format(NAME, RECORD_UNIT, unit="folder", sniff_dir=sniff_dir, parse_dir=parse_dir)
