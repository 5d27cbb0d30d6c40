"""Format drift: line or item types a reader does not know yet are counted once per type, never fatal.

Agents add line types every month. A file of a known format stays detected and its known parts are read; every
unknown type becomes one Skipped event "unknown <format> line type '<type>'" holding all of its lines, so the report
and `logminer inspect` show drift at once instead of rejecting good files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from logminer.schema import Skipped

_REASON = re.compile(r"^(?:skipped: )?unknown (\S+) line type '(.*)'$")  # as the report writes it, too


def unknown_reason(format_name: str, kind: object) -> str:
    return f"unknown {format_name} line type '{kind}'"


def unknown_type(reason: str) -> tuple[str, str] | None:
    """(format, type) of a reason made by unknown_reason, else None."""
    match = _REASON.match(reason)
    return (match.group(1), match.group(2)) if match else None


class UnknownTypes:
    """Lines of unknown types, by type, in first-seen order."""

    def __init__(self, format_name: str):
        self.format_name = format_name
        self.lines: dict[str, list[int]] = {}

    def add(self, kind: object, line: int) -> None:
        self.lines.setdefault(str(kind), []).append(line)

    def skipped(self, path: str) -> Iterator[Skipped]:
        for kind, lines in self.lines.items():
            yield Skipped(path, lines[0], unknown_reason(self.format_name, kind), records=len(lines))
