"""Split inputs: a sessions table is told from other parquet, raw logs are ingested in-process with their filtered
and rejected records carried as rows, and a table written by ingest reads back as the same sessions."""

from __future__ import annotations

import polars as pl
import pytest

from logminer.ingest.pipeline import IngestOptions, ingest
from logminer.split.inputs import InputError, is_sessions_table, load_inputs, read_sessions_table


def test_sessions_table_or_raw_log(example_logs, tmp_path):
    table = tmp_path / "sessions.parquet"
    ingest([str(example_logs / "codex")], table, IngestOptions())
    assert is_sessions_table(str(table))
    chat = tmp_path / "chat.parquet"
    pl.DataFrame({"messages": [[{"role": "user", "content": "hi"}]]}).write_parquet(chat)
    assert not is_sessions_table(str(chat))
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 but not really")
    assert not is_sessions_table(str(tmp_path / "fake.parquet"))


def test_raw_logs_and_their_table_give_the_same_sessions(example_logs, tmp_path):
    raw = [str(example_logs / "codex"), str(example_logs / "aider")]
    from_raw = load_inputs(raw)
    ingest(raw, tmp_path / "sessions.parquet", IngestOptions())
    from_table = load_inputs([str(tmp_path / "sessions.parquet")])
    assert from_raw.sessions and [s.session_id for s in from_raw.sessions] == [s.session_id for s in
                                                                               from_table.sessions]
    assert [s.turns for s in from_raw.sessions] == [s.turns for s in from_table.sessions]
    assert from_table.rejected == [] and from_table.files == [str(tmp_path / "sessions.parquet")]
    assert all(row.stage == "ingest" and row.records > 0 for row in from_raw.rejected)


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="nothing"):
        load_inputs([str(tmp_path / "nothing")])
    (tmp_path / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 64)
    with pytest.raises(InputError, match="broken.parquet: cannot read sessions table"):
        read_sessions_table(str(tmp_path / "broken.parquet"))
