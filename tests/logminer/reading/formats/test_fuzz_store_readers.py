"""Property tests: the SQLite store readers never crash on arbitrary JSON in their data columns, and every row they
count ends in exactly one event."""

from __future__ import annotations

import json
import os
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.logminer.reading.formats import test_crush, test_cursor, test_goose, test_opencode_db
from tests.logminer.reading.formats.agent_checks import read

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "data", "text", "role", "id", "name", "input", "state", "status", "content",
                         "toolCall", "toolResult", "value", "thinking", "tool_call_id", "toolFormerData", "rawArgs",
                         "result", "fullConversationHeadersOnly", "bubbleId", "conversation", "time", "created",
                         "modelInfo", "modelType", "metadata", "model", "summary", "tool_calls", "toolCalls"]),
        children, max_size=5),
    max_leaves=16,
)
FUZZ = settings(max_examples=int(os.environ.get("LOGMINER_FUZZ_EXAMPLES", "25")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# (builder of a valid store, SQL that overwrites one JSON column with the fuzzed value, rows that hold records)
STORES = {
    "crush": (lambda p: test_crush.write_crush_db(p, sessions=1),
              "UPDATE messages SET parts = ? WHERE rowid = 2", "SELECT count(*) FROM messages"),
    "opencode": (lambda p: _opencode(p), "UPDATE part SET data = ? WHERE rowid = 3",
                 "SELECT (SELECT count(*) FROM message) + (SELECT count(*) FROM part)"),
    "goose": (lambda p: test_goose.write_goose_db(p), "UPDATE messages SET content_json = ? WHERE rowid = 2",
              "SELECT count(*) FROM messages"),
    "cursor": (lambda p: test_cursor.kv_database(p), "UPDATE cursorDiskKV SET value = ? WHERE key = 'bubbleId:c1:b2'",
               "SELECT count(*) FROM cursorDiskKV WHERE key LIKE 'bubbleId:%'"),
}


def _opencode(path):
    connection = test_opencode_db.connect(path)
    test_opencode_db.add_session(connection, "ses_f")
    test_opencode_db.add_v1(connection, "ses_f")
    connection.commit()
    connection.close()
    return path


@FUZZ
@given(store=st.sampled_from(sorted(STORES)), value=JSON_VALUES, raw=st.booleans())
def test_arbitrary_json_in_a_data_column_never_escapes(tmp_path_factory, store, value, raw):
    build, update, count = STORES[store]
    db = build(tmp_path_factory.mktemp(store) / "store.db")
    connection = sqlite3.connect(db)
    text = json.dumps(value)
    connection.execute(update, (text[: len(text) // 2] if raw else text,))  # raw: a truncated JSON text
    connection.commit()
    rows = connection.execute(count).fetchone()[0]
    connection.close()
    result = read(db)
    assert result.records == rows  # each row: in a session, rejected with a reason, or skipped with one
    assert all(r.source_file == str(db) and r.reason for r in result.rejected)
