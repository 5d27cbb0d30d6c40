"""Route every input to the reader of its format (registry.FORMATS): folder formats first, then per-file sniffing.

A format with `sniff_dir`/`parse_dir` reads layouts that spread one session over many files (OpenCode storage,
OpenHands V1 conversation folders); every file under a folder it claims is its own. Every other file goes to the
first format whose `sniff(source)` accepts it (binary formats such as parquet sniff their magic bytes; text formats
must refuse binary data, see SourceFile.is_binary). A SQLite file (by its header) goes to the database formats, which
read a read-only snapshot of it (sqlite_store); its `-wal` / `-shm` / `-journal` companions are acknowledged.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator

from logminer.ingest.redact import redact_text
from logminer.reading.formats.jsondoc import loads
from logminer.reading.registry import Format, load_formats
from logminer.reading.sources import SourceError, SourceFile, expand_inputs
from logminer.reading.sqlite_store import DatabaseError, companion_of, foreign_reason, is_sqlite, open_database
from logminer.schema import Rejected, Session, Skipped

Event = Session | Skipped | Rejected
TOO_DEEP = "JSON nested too deeply to read"
COMPANION_KINDS = {"-wal": "write-ahead log", "-shm": "shared-memory index", "-journal": "rollback journal"}


def claimed_folders(paths: list[str], formats: tuple[Format, ...]) -> dict[str, Format]:
    """Folders (inputs or below them) that a folder format claims, outermost first."""
    claimed: dict[str, Format] = {}
    candidates = sorted({os.path.dirname(p) for p in paths})
    for folder in candidates:
        while folder and folder not in claimed:
            if any(folder.startswith(c + os.sep) for c in claimed):
                break
            owner = next((f for f in formats if f.sniff_dir is not None and f.sniff_dir(folder)), None)
            if owner is not None:
                claimed[folder] = owner
                break
            parent = os.path.dirname(folder)
            folder = parent if parent != folder else ""
    return claimed


def detect_format(source: SourceFile, formats: tuple[Format, ...]) -> Format | None:
    return next((f for f in formats if f.unit == "file" and f.sniff(source)), None)


def read_inputs(inputs: list[str], *, strict: bool = False) -> Iterator[tuple[str, str | None, Event]]:
    """Yield (file or folder, format name or None, event) for every input record.

    With strict=True the first Rejected raises SourceError instead of being yielded.
    """
    formats = load_formats()
    paths = expand_inputs(inputs)
    folders = claimed_folders(paths, formats)
    for folder, owner in folders.items():
        try:
            for event in owner.parse_dir(folder):
                yield _checked(folder, owner.name, event, strict)
        except RecursionError:
            yield _checked(folder, owner.name, Rejected(folder, 0, TOO_DEEP), strict)
    inside = tuple(folder + os.sep for folder in folders)  # str.startswith with a tuple: one C-level scan
    databases = tuple(f for f in formats if f.unit == "database")
    for path in paths:
        if inside and path.startswith(inside):
            continue
        if is_sqlite(path):  # before any decoding: a database is read through a read-only snapshot, not its bytes
            for name, event in read_database(path, databases):
                yield _checked(path, name, event, strict)
            continue
        owner = companion_of(path)
        if owner is not None:
            kind = COMPANION_KINDS[path[len(owner):]]
            yield _checked(path, None, Skipped(path, 0, f"SQLite {kind} of {os.path.basename(owner)} (read with it)"),
                           strict)
            continue
        try:
            source = SourceFile.open(path)
            fmt = detect_format(source, formats)
        except SourceError as error:  # error.path: the name in a printable form (a file name may not be UTF-8)
            yield _checked(error.path, None, Rejected(error.path, 0, error.reason), strict)
            continue
        except RecursionError:
            yield _checked(path, None, Rejected(path, 0, TOO_DEEP), strict)
            continue
        if fmt is None:
            reason = unrecognised_reason(source)
            yield _checked(path, None, Rejected(path, 0, reason), strict)
            continue
        try:
            for event in fmt.parse(source):
                yield _checked(path, fmt.name, event, strict)
        except SourceError as error:
            yield _checked(path, fmt.name, Rejected(path, 0, error.reason), strict)
        except RecursionError:  # a value nested deeper than a reader's recursion can follow
            yield _checked(path, fmt.name, Rejected(path, 0, TOO_DEEP), strict)


def read_database(path: str, formats: tuple[Format, ...]) -> Iterator[tuple[str | None, Event]]:
    """(format name, event) for a SQLite file: the first database format whose sniff takes it reads it; a database
    of another application, or one that cannot be read (truncated, corrupt, changing), is one Rejected."""
    name = None
    try:
        with open_database(path) as database:
            fmt = next((f for f in formats if f.sniff(database)), None)
            if fmt is None:
                yield None, Rejected(path, 0, foreign_reason(database))
                return
            name = fmt.name
            count = 0
            for count, event in enumerate(fmt.parse(database), 1):
                yield name, event
            if not count:  # so that inspect and the report still show the file
                yield name, Skipped(path, 0, f"{name} database with no conversations", records=0)
    except DatabaseError as error:
        yield name, Rejected(path, 0, error.reason)
    except sqlite3.Error as error:  # a corrupt page met outside Database.rows
        yield name, Rejected(path, 0, f"cannot read the database: {error}")
    except RecursionError:
        yield name, Rejected(path, 0, TOO_DEEP)


def unrecognised_reason(source: SourceFile) -> str:
    """Why no reader took a file: binary, broken JSON (with the error's line), or a JSON shape nobody knows."""
    if source.is_binary:
        return "binary data, not a transcript"
    try:
        first = source.text.lstrip()[:1]
        if first not in ("{", "["):
            return "unknown format"
        try:
            document = loads(source.text)
        except json.JSONDecodeError as error:
            line = source.text.splitlines()[0] if source.text else ""
            try:  # JSONL whose first line parses: the shape is unknown, not broken
                document = loads(line)
            except json.JSONDecodeError:
                return f"malformed or truncated JSON (line {error.lineno}, column {error.colno}: {error.msg})"
    except SourceError as error:
        return error.reason
    if isinstance(document, list):
        document = document[0] if document else {}
    keys = ", ".join(sorted(document)[:8]) if isinstance(document, dict) else type(document).__name__
    return f"JSON of an unknown shape (keys: {keys})"


def _checked(path: str, name: str | None, event: Event, strict: bool) -> tuple[str, str | None, Event]:
    """The event as read_inputs yields it; under strict, a Rejected becomes a SourceError whose message is
    redacted like the report (a reason may quote the offending text, e.g. the keys of an unknown JSON shape)."""
    if strict and isinstance(event, Rejected):
        where = f"line {event.line}: " if event.line else ""
        raise SourceError(redact_text(event.source_file), f"{where}{redact_text(event.reason)}")
    return path, name, event
