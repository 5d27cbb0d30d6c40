"""Claude Code hook logs: flat JSONL lines with `ts` and `event` written by user hook scripts.

They record which hooks fired (PreToolUse, Stop, ...), not the conversation, so they are recognised and reported
as Skipped instead of being mistaken for plain text or rejected as an unknown shape.
"""

from __future__ import annotations

from collections.abc import Iterator

from logminer.reading.formats.jsondoc import head_objects, iter_json_lines
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

NAME = "claude-code-hooks"
RECORD_UNIT = "line"
REASON = "claude-code hook log: not a conversation"
_CONVERSATION_KEYS = {"message", "messages", "uuid", "payload", "conversations"}


def _is_hook_line(obj: dict) -> bool:
    return "ts" in obj and "event" in obj and not _CONVERSATION_KEYS & obj.keys()


def sniff(source: SourceFile) -> bool:
    objects = head_objects(source)
    return bool(objects) and all(_is_hook_line(obj) for obj in objects)


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    first_line, count = 0, 0
    for number, _, _, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict) or not _is_hook_line(value):
            yield Rejected(source.path, number, "not a hook log line (expected a JSON object with `ts` and `event`)")
        else:
            first_line, count = first_line or number, count + 1
    if count:
        yield Skipped(source.path, first_line, REASON, records=count)


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
