"""Read-only access to the SQLite stores of coding agents (OpenCode, Crush, Cursor, Goose), safe while they run.

An agent's database is never opened in place. The file and its `-wal` / `-journal` companions are copied into a
private temporary folder, and the copy is what SQLite opens: the agent's files are only read (never locked, never
written, no `-shm` created beside them), and committed transactions still in the write-ahead log are seen, because
SQLite replays the copied `-wal` when it opens the copy. A copy is kept only if the files did not change while it
was taken (size and mtime before == after; retried a few times), so it is one consistent snapshot. The copy is
opened `mode=ro` (with `immutable=1` when no log was copied: nothing else can touch a private copy; read-write
only to roll back a copied hot `-journal`, then `query_only`).

Why not open the original: `immutable=1` would ignore the WAL (the newest messages), and `mode=ro` still takes
shared locks (a rollback-journal writer then gets SQLITE_BUSY) and may create a `-shm` file beside the database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
LOG_SUFFIXES = ("-wal", "-journal")  # companions that hold committed (WAL) or pre-transaction (journal) pages
COMPANION_SUFFIXES = (*LOG_SUFFIXES, "-shm")
COPY_ATTEMPTS = 4


class DatabaseError(Exception):
    """A SQLite file that cannot be read; `reason` says why (corrupt, truncated, changing while copied)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_sqlite(path: str) -> bool:
    """True when a regular file starts with the SQLite header (checked before any text decoding). Anything but a
    regular file is not opened here (a FIFO would block the read for ever): sources.read_regular_file rejects it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def companion_of(path: str) -> str | None:
    """The database a `-wal` / `-shm` / `-journal` file belongs to, when that database exists beside it."""
    for suffix in COMPANION_SUFFIXES:
        if path.endswith(suffix) and is_sqlite(path[: -len(suffix)]):
            return path[: -len(suffix)]
    return None


@dataclass
class Database:
    """An open read-only snapshot of one SQLite file; `path` is the original file (used in every report)."""

    path: str
    connection: sqlite3.Connection = field(repr=False)
    tables: frozenset[str]
    _columns: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def columns(self, table: str) -> frozenset[str]:
        """The column names of `table` (formats add columns over versions: select only what exists)."""
        if table not in self._columns:
            rows = self.connection.execute(f'PRAGMA table_info("{table}")').fetchall()
            self._columns[table] = frozenset(row[1] for row in rows)
        return self._columns[table]

    def select(self, table: str, wanted: tuple[str, ...], where: str = "", parameters: tuple[Any, ...] = (),
               order: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Rows of `table` as dicts of the `wanted` columns, in `order` (the columns of it that exist, then insertion
        order): stores add and rename columns across versions, and a column this version lacks reads None."""
        have = self.columns(table)
        fields = ", ".join(f'"{name}"' if name in have else f'NULL AS "{name}"' for name in wanted)
        keys = ", ".join([*(f'"{name}"' for name in order if name in have), "rowid"])
        clause = f"WHERE {where} " if where else ""
        for row in self.rows(f'SELECT {fields} FROM "{table}" {clause}ORDER BY {keys}', parameters):
            yield dict(zip(wanted, row))

    def rows(self, sql: str, parameters: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a query, streamed; a corrupt page becomes a DatabaseError naming the file."""
        try:
            yield from self.connection.execute(sql, parameters)
        except sqlite3.DatabaseError as error:
            raise DatabaseError(self.path, f"cannot read the database: {error}") from error


def _state(path: str) -> tuple[tuple[str, int, int], ...]:
    """(suffix, size, mtime_ns) of the database and of each log companion that exists."""
    found = []
    for suffix in ("", *LOG_SUFFIXES):
        try:
            info = os.stat(path + suffix)
        except FileNotFoundError:
            continue
        found.append((suffix, info.st_size, info.st_mtime_ns))
    return tuple(found)


def _snapshot(path: str, folder: str) -> tuple[str, set[str]]:
    """Copy the database and its non-empty log companions into `folder`; (copy path, the suffixes copied)."""
    target = os.path.join(folder, "snapshot.db")
    for attempt in range(COPY_ATTEMPTS):
        before = _state(path)
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        copied = set()
        try:
            for suffix, size, _ in before:
                if suffix and size == 0:
                    continue  # an empty log holds nothing; copying it would only make SQLite look for a -shm
                shutil.copyfile(path + suffix, target + suffix)
                copied.add(suffix)
        except FileNotFoundError:  # the agent checkpointed and removed its -wal meanwhile: take the copy again
            if not os.path.exists(path):
                raise
            continue
        if _state(path) == before:
            return target, copied
        time.sleep(0.05 * (attempt + 1))
    raise DatabaseError(path, f"the database kept changing while it was copied ({COPY_ATTEMPTS} tries); "
                              "read it again when the agent is idle")


@contextmanager
def open_database(path: str) -> Iterator[Database]:
    """A read-only snapshot of the SQLite file at `path`; DatabaseError when it cannot be read as one."""
    folder = tempfile.mkdtemp(prefix="logminer-sqlite-")
    connection = None
    try:
        try:
            copy, copied = _snapshot(path, folder)
        except OSError as error:
            raise DatabaseError(path, f"cannot copy the database: {error.strerror or error}") from error
        # a copied hot journal must be rolled back into the (private) copy, which needs write access to it
        mode = "" if "-journal" in copied else "?mode=ro" if copied else "?mode=ro&immutable=1"
        uri = Path(copy).as_uri() + mode
        try:
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only = ON")
            names = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as error:
            raise DatabaseError(path, f"not a readable SQLite database ({error})") from error
        yield Database(path, connection, frozenset(name for (name,) in names))
    finally:
        if connection is not None:
            connection.close()
        shutil.rmtree(folder, ignore_errors=True)


def foreign_reason(database: Database) -> str:
    """Why no reader took a SQLite file: it belongs to another application; its tables say which."""
    names = sorted(t for t in database.tables if not t.startswith("sqlite_"))
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"SQLite database of another application (tables: {shown or 'none'})"
