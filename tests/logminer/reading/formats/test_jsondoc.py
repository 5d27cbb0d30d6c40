"""JSON reading shared by the readers: records of JSONL, arrays and documents keep their line and byte positions,
every bad line is one rejection with its line, parse_records turns shape errors into rejections and gives id-less
sessions a deterministic id; helpers (ids, repositories, epoch times) equal hand-computed values."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats.jsondoc import (
    DocumentError,
    Record,
    ShapeError,
    iso_from_epoch_ms,
    iter_json_lines,
    iter_records,
    load_document,
    loads,
    parse_records,
    repo_from_instance_id,
    skip_all,
    stable_id,
    starts_with_json,
    text_lines,
)
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn


def test_jsonl_records_with_positions_and_rejections():
    data = b'{"a": 1}\n\n{"a": 2\n  {"a": 3}\n'
    events = list(iter_records(SourceFile("x.jsonl", data)))
    assert events[0] == Record({"a": 1}, 1, 1, 0, 8)
    assert isinstance(events[1], Rejected) and events[1].line == 3 and events[1].reason.startswith("invalid JSON")
    assert events[2] == Record({"a": 3}, 4, 4, data.index(b"  {"), len(data) - 1)
    lines = list(iter_json_lines(SourceFile("y.jsonl", b'[1]\n\xff\n')))
    assert lines[0][3] == [1] and lines[1][3].reason == "not UTF-8 text (byte 0)"


def test_array_elements_and_single_documents():
    array = SourceFile("a.json", json.dumps([{"id": 1}, {"id": 2}], indent=1).encode())
    records = list(iter_records(array))
    assert [r.value for r in records] == [{"id": 1}, {"id": 2}]
    assert [(r.line_start, r.line_end) for r in records] == [(2, 4), (5, 7)]
    document = SourceFile("d.json", b'{\n  "messages": []\n}\n')
    [only] = list(iter_records(document))
    assert only.value == {"messages": []} and (only.line_start, only.line_end) == (1, 3)
    with pytest.raises(DocumentError) as caught:
        load_document(SourceFile("bad.json", b'{\n  "a": 1,\n  oops\n}'))
    assert caught.value.line == 3 and "invalid JSON" in caught.value.reason


def test_parse_records_accounting_and_deterministic_ids():
    def convert(value):
        if value.get("skip"):
            return Skipped("", 0, "summary line")
        if "text" not in value:
            raise ShapeError("no text field")
        return Session(value.get("id", ""), "", "", turns=[Turn("user", value["text"])])

    data = b'{"text": "a"}\n{"text": "b", "id": "own"}\n{"other": 1}\n{"skip": true}\n'
    first = list(parse_records(SourceFile("f.jsonl", data), "demo", convert))
    assert [type(e).__name__ for e in first] == ["Session", "Session", "Rejected", "Skipped"]
    assert first[0].session_id == f"demo:{stable_id('f.jsonl', 1)}" and first[1].session_id == "own"
    assert (first[2].line, first[2].reason) == (3, "no text field") and first[3].line == 4
    assert first[0].agent == "demo" and first[0].source_file == "f.jsonl" and first[1].line_start == 2
    assert [e.session_id for e in parse_records(SourceFile("f.jsonl", data), "demo", convert)
            if isinstance(e, Session)] == [e.session_id for e in first if isinstance(e, Session)]


def test_helpers():
    assert stable_id("a", 1) == stable_id("a", 1) != stable_id("a1") and len(stable_id("x")) == 16
    assert repo_from_instance_id("django__django-11039") == "django/django"
    assert repo_from_instance_id("sympy__sympy-20590") == "sympy/sympy" and repo_from_instance_id("nope") is None
    assert iso_from_epoch_ms(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert iso_from_epoch_ms("1700") is None and iso_from_epoch_ms(True) is None
    assert starts_with_json("  \n [1]", "[") and not starts_with_json("text {", "{")
    assert text_lines("a\r\nb\x0bc\n") == ["a", "b\x0bc"]
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        loads("[" * 100_000 + "]" * 100_000)
    items = iter([1, Rejected("h.json", 2, "bad"), 3])
    assert list(skip_all(SourceFile("h.json", b""), items, "holdout")) == [
        Rejected("h.json", 2, "bad"), Skipped("h.json", 0, "holdout", records=2)]
