"""Files no reader takes are rejected with the reason, never ingested as plain text."""

from __future__ import annotations

from logminer.reading.detect import read_inputs
from logminer.schema import Rejected, Session


def _events(folder):
    return {path.rsplit("/", 1)[1]: (fmt, event) for path, fmt, event in read_inputs([str(folder)])}


def test_broken_and_unknown_json_are_rejected_with_reason(tmp_path):
    (tmp_path / "truncated.json").write_text('{"messages": [{"role": "user", "content": "hi"')
    (tmp_path / "unknown.json").write_text('{"foo": 1, "bar": 2}')
    (tmp_path / "notes.txt").write_text("hello world\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    events = _events(tmp_path)
    fmt, event = events["truncated.json"]
    assert fmt is None and isinstance(event, Rejected)
    assert event.reason.startswith("malformed or truncated JSON (line 1, column 47")
    assert events["unknown.json"][1].reason == "JSON of an unknown shape (keys: bar, foo)"
    assert events["blob.bin"][1].reason == "binary data, not a transcript"
    assert isinstance(events["notes.txt"][1], Session)
