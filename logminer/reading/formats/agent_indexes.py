"""SQLite indexes that agents keep beside their transcripts (search indexes, not conversations): acknowledged.

Without this a `--source` folder would report them as "SQLite database of another application". Known ones:
Grok Build's `~/.grok/sessions/session_search.sqlite` (an FTS5 index `session_docs` / `session_docs_fts` over the
session titles and text, which chat_history.jsonl already holds). One table per row below; the file is one record.
"""

from __future__ import annotations

from collections.abc import Iterator

from logminer.reading.registry import Format
from logminer.reading.sqlite_store import Database
from logminer.schema import Skipped

NAME = "agent-index"
RECORD_UNIT = "file"
INDEXES = (  # (a table that identifies the index, what it is)
    ("session_docs_fts", "grok session search index (full-text copy of the transcripts)"),
)


def _index(database: Database) -> str | None:
    return next((what for table, what in INDEXES if table in database.tables), None)


def sniff(database: Database) -> bool:
    return _index(database) is not None


def parse(database: Database) -> Iterator[Skipped]:
    yield Skipped(database.path, 0, str(_index(database)))


FORMAT = Format(NAME, RECORD_UNIT, unit="database", sniff=sniff, parse=parse)
