"""Ingest accounting: every input record lands in exactly one bucket (kept, filtered with a reason, rejected with a
reason), per file and per format, plus what redaction and cleaning changed. Serialised as deterministic JSON.

File names and reasons are redacted before they are stored: a report must not leak a home folder or a secret that a
reader quoted in a rejection reason.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from logminer.ingest.redact import redact_json, redact_text
from logminer.schema import Rejected, Session, Skipped

MAX_LISTED_REJECTIONS = 1000  # the per-line list is capped; the per-reason counts are always complete
UNKNOWN_FORMAT = "unknown"


@dataclass
class FileStats:
    """Counts for one input file (or folder, for folder formats)."""

    format: str
    sessions_read: int = 0
    sessions_kept: int = 0
    turns_kept: int = 0
    tool_calls_kept: int = 0
    records_kept: int = 0
    filtered: Counter[str] = field(default_factory=Counter)  # reason → records
    rejected: Counter[str] = field(default_factory=Counter)  # reason → records

    @property
    def records(self) -> int:
        return self.records_kept + sum(self.filtered.values()) + sum(self.rejected.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "records": self.records,
            "sessions_read": self.sessions_read,
            "sessions_kept": self.sessions_kept,
            "turns_kept": self.turns_kept,
            "tool_calls_kept": self.tool_calls_kept,
            "records_kept": self.records_kept,
            "records_filtered": dict(sorted(self.filtered.items())),
            "records_rejected": dict(sorted(self.rejected.items())),
        }


@dataclass
class IngestReport:
    """Accumulates the fate of every record; `to_json` gives the report.json content."""

    files: dict[str, FileStats] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    rejections_not_listed: int = 0
    redactions: Counter[str] = field(default_factory=Counter)
    cleaning: Counter[str] = field(default_factory=Counter)
    options: dict[str, Any] = field(default_factory=dict)

    def stats(self, path: str, fmt: str | None) -> FileStats:
        key = redact_text(path)
        if key not in self.files:
            self.files[key] = FileStats(fmt or UNKNOWN_FORMAT)
        elif fmt and self.files[key].format == UNKNOWN_FORMAT:
            self.files[key].format = fmt
        return self.files[key]

    def session_read(self, path: str, fmt: str | None) -> None:
        self.stats(path, fmt).sessions_read += 1

    def read(self, path: str, fmt: str | None, event: Session | Skipped | Rejected) -> Session | None:
        """Count one reader event: Rejected and Skipped land in their bucket here; a Session is counted as read and
        returned, for the caller to keep (`kept`) or filter (`filtered`)."""
        if isinstance(event, Rejected):
            self.rejected(path, fmt, event)
        elif isinstance(event, Skipped):
            self.skipped(path, fmt, event)
        else:
            self.session_read(path, fmt)
            return event
        return None

    def kept(self, path: str, fmt: str | None, session: Session) -> None:
        stats = self.stats(path, fmt)
        stats.sessions_kept += 1
        stats.turns_kept += len(session.turns)
        stats.tool_calls_kept += sum(len(t.tool_calls) for t in session.turns)
        stats.records_kept += session.records

    def filtered(self, path: str, fmt: str | None, reason: str, records: int) -> None:
        self.stats(path, fmt).filtered[redact_text(reason)] += records

    def skipped(self, path: str, fmt: str | None, event: Skipped) -> None:
        self.filtered(path, fmt, f"skipped: {event.reason}", event.records)

    def rejected(self, path: str, fmt: str | None, event: Rejected) -> None:
        reason = redact_text(event.reason)
        self.stats(path, fmt).rejected[reason] += event.records
        if len(self.rejections) < MAX_LISTED_REJECTIONS:
            self.rejections.append({"file": redact_text(event.source_file), "line": event.line, "reason": reason})
        else:
            self.rejections_not_listed += 1

    def merge(self, other: IngestReport) -> None:
        """Add the counts of `other` (a report of later inputs, e.g. from a worker process) to this one."""
        for path, stats in other.files.items():
            mine = self.files.setdefault(path, FileStats(stats.format))
            if mine.format == UNKNOWN_FORMAT:
                mine.format = stats.format
            mine.sessions_read += stats.sessions_read
            mine.sessions_kept += stats.sessions_kept
            mine.turns_kept += stats.turns_kept
            mine.tool_calls_kept += stats.tool_calls_kept
            mine.records_kept += stats.records_kept
            mine.filtered.update(stats.filtered)
            mine.rejected.update(stats.rejected)
        room = MAX_LISTED_REJECTIONS - len(self.rejections)
        self.rejections.extend(other.rejections[:room])
        self.rejections_not_listed += other.rejections_not_listed + max(0, len(other.rejections) - room)
        self.redactions.update(other.redactions)
        self.cleaning.update(other.cleaning)

    def totals(self) -> dict[str, Any]:
        filtered: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        for stats in self.files.values():
            filtered.update(stats.filtered)
            rejected.update(stats.rejected)
        kept = sum(s.records_kept for s in self.files.values())
        return {
            "records": kept + sum(filtered.values()) + sum(rejected.values()),
            "records_kept": kept,
            "records_filtered": sum(filtered.values()),
            "records_rejected": sum(rejected.values()),
            "filtered_by_reason": dict(sorted(filtered.items())),
            "rejected_by_reason": dict(sorted(rejected.items())),
            "sessions_read": sum(s.sessions_read for s in self.files.values()),
            "sessions_kept": sum(s.sessions_kept for s in self.files.values()),
            "turns_kept": sum(s.turns_kept for s in self.files.values()),
            "tool_calls_kept": sum(s.tool_calls_kept for s in self.files.values()),
        }

    def formats(self) -> dict[str, dict[str, int]]:
        """Per detected format: files, records, sessions read/kept, turns and tool calls kept."""
        table: dict[str, Counter[str]] = {}
        for stats in self.files.values():
            row = table.setdefault(stats.format, Counter())
            row.update(files=1, records=stats.records, sessions_read=stats.sessions_read,
                       sessions_kept=stats.sessions_kept, turns_kept=stats.turns_kept,
                       tool_calls_kept=stats.tool_calls_kept)
        return {name: dict(sorted(row.items())) for name, row in sorted(table.items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "formats": self.formats(),
            "files": {path: stats.to_json() for path, stats in sorted(self.files.items())},
            "rejections": self.rejections,
            "rejections_not_listed": self.rejections_not_listed,
            "redactions": dict(sorted(self.redactions.items())),
            "cleaning": dict(sorted(self.cleaning.items())),
            "options": self.options,
        }

    def dumps(self) -> str:
        return json.dumps(redact_json(self.to_json()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
