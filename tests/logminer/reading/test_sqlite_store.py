"""Reading agents' SQLite stores: never modified or locked (also with a live WAL), WAL content seen, truncated,
corrupt and foreign databases rejected with a reason, companion files acknowledged."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logminer.reading import sqlite_store
from logminer.reading.sqlite_store import DatabaseError, open_database
from tests.logminer.reading.formats.agent_checks import read
from tests.logminer.reading.formats.test_crush import write_crush_db


def fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    """mtime (ns) and sha256 of every file in the folder."""
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(folder.iterdir())}


def test_a_live_wal_database_is_read_without_touching_it(tmp_path):
    db = tmp_path / "crush.db"
    write_crush_db(db, sessions=1)
    writer = sqlite3.connect(db)  # the "running agent": WAL mode, nothing checkpointed, connection left open
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO messages (id, session_id, role, parts, created_at, updated_at) VALUES "
                   "('m-wal', 's0', 'user', '[{\"type\":\"text\",\"data\":{\"text\":\"only in the WAL\"}}]', 99, 99)")
    writer.commit()
    assert (tmp_path / "crush.db-wal").stat().st_size > 0 and (tmp_path / "crush.db-shm").exists()
    before = fingerprint(tmp_path)
    snapshots = set(Path(tempfile.gettempdir()).glob("logminer-sqlite-*"))

    result = read(tmp_path)

    assert fingerprint(tmp_path) == before  # db, -wal and -shm: same bytes, same mtime, no new file
    assert set(Path(tempfile.gettempdir()).glob("logminer-sqlite-*")) == snapshots  # the private copy is gone
    texts = [t.text for s in result.sessions for t in s.turns]
    assert "only in the WAL" in texts  # the committed WAL transaction is seen
    assert {r.reason for r in result.skipped} >= {"SQLite write-ahead log of crush.db (read with it)",
                                                  "SQLite shared-memory index of crush.db (read with it)"}
    writer.execute("INSERT INTO sessions (id, title, updated_at, created_at) VALUES ('s-new', 't', 1, 1)")
    writer.commit()  # not locked: the agent keeps writing
    writer.close()


def test_a_rollback_journal_database_is_not_locked_or_changed(tmp_path):
    db = tmp_path / "crush.db"
    write_crush_db(db, sessions=2)
    before = fingerprint(tmp_path)
    with open_database(str(db)) as database:
        other = sqlite3.connect(db, timeout=0)  # a writer while we hold the database open
        other.execute("UPDATE sessions SET title = 'changed' WHERE id = 's0'")
        other.commit()
        other.close()
        assert "sessions" in database.tables
    after = fingerprint(tmp_path)
    assert set(after) == set(before) == {"crush.db"}  # no -shm or -journal left beside it


def test_a_database_that_keeps_changing_is_refused(tmp_path, monkeypatch):
    db = tmp_path / "crush.db"
    write_crush_db(db, sessions=1)
    ticks = iter(range(1000))
    monkeypatch.setattr(sqlite_store, "_state", lambda path: ((("", next(ticks), 0)),))
    monkeypatch.setattr(sqlite_store.time, "sleep", lambda seconds: None)
    with pytest.raises(DatabaseError, match="kept changing"):
        with open_database(str(db)):
            pass
    result = read(db)
    assert [r.reason for r in result.rejected] and "kept changing" in result.rejected[0].reason


def test_a_foreign_database_is_rejected_with_its_tables(tmp_path):
    db = tmp_path / "places.sqlite"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE moz_places (id INTEGER, url TEXT)")
    connection.execute("CREATE TABLE moz_bookmarks (id INTEGER)")
    connection.commit()
    connection.close()
    result = read(db)
    assert [r.reason for r in result.rejected] == [
        "SQLite database of another application (tables: moz_bookmarks, moz_places)"]
    assert result.records == 1


def test_a_wal_file_without_its_database_is_not_mistaken(tmp_path):
    (tmp_path / "orphan.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\x00" * 28)
    result = read(tmp_path / "orphan.db-wal")
    assert not result.skipped and len(result.rejected) == 1


@settings(max_examples=int(os.environ.get("LOGMINER_FUZZ_EXAMPLES", "25")), deadline=None)
@given(cut=st.integers(min_value=0, max_value=100), flips=st.lists(st.integers(0, 10_000), max_size=8))
def test_truncated_or_corrupt_databases_are_rejected_never_raised(tmp_path_factory, cut, flips):
    folder = tmp_path_factory.mktemp("fuzz")
    db = folder / "crush.db"
    write_crush_db(db, sessions=3)
    data = bytearray(db.read_bytes())
    data = data[: max(16, len(data) * cut // 100)] if cut < 100 else data
    for position in flips:
        if 100 <= position < len(data):
            data[position] ^= 0xFF
    db.write_bytes(bytes(data))
    result = read(db)
    for rejected in result.rejected:
        assert rejected.source_file == str(db) and rejected.reason
    assert result.sessions or result.rejected or result.skipped


def test_a_truncated_database_names_the_reason(tmp_path):
    db = tmp_path / "crush.db"
    write_crush_db(db, sessions=3)
    db.write_bytes(db.read_bytes()[:5000])
    result = read(db)
    assert result.rejected and all("malformed" in r.reason or "not a readable" in r.reason or "cannot read" in r.reason
                                   for r in result.rejected)


def test_an_empty_store_is_reported_not_dropped(tmp_path):
    db = write_crush_db(tmp_path / "crush.db", sessions=0)
    result = read(db)
    assert [(s.reason, s.records) for s in result.skipped] == [("crush database with no conversations", 0)]
