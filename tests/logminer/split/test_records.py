"""Split records: a Document carries its session's columns into every file; a Rejection is one rejected.parquet row."""

from __future__ import annotations

import json

import polars as pl
import xxhash

from logminer.schema import Session, Turn
from logminer.split.assign import fill_budget
from logminer.split.decontaminate import DocumentFacts
from logminer.split.records import BUCKET_SCHEMA, REJECTED_SCHEMA, SPLIT_SCHEMA, Document, Rejection


def _session() -> Session:
    return Session(session_id="s1", agent="codex", source_file="logs/a.jsonl", line_start=7, model="m",
                   turns=[Turn("user", "hi"), Turn("assistant", "hello")], metadata={"repo": "o/r", "b": 1},
                   records=3)


def test_document_rows_fit_the_schemas() -> None:
    doc = Document.rendered(0, _session(), "user: hi\nassistant: hello", "", DocumentFacts(repo="o/r"))
    assert doc.columns() == {"session_id": "s1", "source_file": "logs/a.jsonl", "agent": "codex", "model": "m",
                             "line_start": 7, "turns": 2, "metadata": json.dumps({"b": 1, "repo": "o/r"})}
    assert doc.identity() == xxhash.xxh64_hexdigest(b"logs/a.jsonl\0s1\x007")
    doc.cluster, doc.group, doc.tokens = doc.identity(), "cluster:x", 5
    split = pl.DataFrame([doc.split_row(3)], schema=SPLIT_SCHEMA)
    assert split.row(0, named=True)["cluster_size"] == 3 and split["text"][0] == doc.text
    copy = Document.rendered(1, _session(), "copy", "", DocumentFacts())
    copy.reason, copy.similarity, copy.cluster = "near_duplicate", 0.8, doc.cluster
    bucket = pl.DataFrame([copy.bucket_row(doc)], schema=BUCKET_SCHEMA).row(0, named=True)
    assert bucket["representative_session_id"] == "s1" and bucket["jaccard"] == 0.8


def test_rejections_keep_line_and_records() -> None:
    session = _session()
    rejected = [Rejection.of_session(session, "render", "template refused"),
                Rejection("logs/b.jsonl", None, 12, "ingest", "rejected: invalid JSON", 1)]
    frame = pl.DataFrame([r.row() for r in rejected], schema=REJECTED_SCHEMA)
    assert frame.rows() == [("logs/a.jsonl", "s1", 7, "render", "template refused", 3),
                            ("logs/b.jsonl", None, 12, "ingest", "rejected: invalid JSON", 1)]


def test_fill_budget_takes_what_still_fits_in_order() -> None:
    tokens = {"a": 5, "b": 9, "c": 3, "d": 1}
    assert fill_budget("abcd", tokens.__getitem__, 9) == (["a", "c", "d"], 9)
    assert fill_budget("abcd", tokens.__getitem__, None) == (["a", "b", "c", "d"], 18)
    assert fill_budget("abcd", tokens.__getitem__, 0) == ([], 0)
