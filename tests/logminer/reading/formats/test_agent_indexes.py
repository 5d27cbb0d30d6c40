"""Agents' search-index databases are acknowledged, not rejected as another application's."""

from __future__ import annotations

import sqlite3

from tests.logminer.reading.formats.agent_checks import read


def test_grok_search_index_is_acknowledged(tmp_path):
    db = tmp_path / "session_search.sqlite"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE session_docs (session_id TEXT, title TEXT, content TEXT)")
    connection.execute("CREATE VIRTUAL TABLE session_docs_fts USING fts5(title, content)")
    connection.commit()
    connection.close()
    result = read(db)
    assert not result.rejected and result.records == 1
    assert result.reasons() == {"grok session search index (full-text copy of the transcripts)"}
