"""IngestReport: every event lands in one bucket, totals add up, merge equals one report, nothing unredacted."""

from __future__ import annotations

import json

from logminer.ingest.report import IngestReport
from logminer.schema import Rejected, Session, Skipped, ToolCall, Turn

AWS = "AKIAIOSFODNN7EXAMPLE"


def events(path: str) -> list:
    session = Session("s1", "openai-chat", path, records=3, turns=[
        Turn("user", "hi"), Turn("assistant", "", tool_calls=[ToolCall("bash", "{}", "c1")]), Turn("tool", "ok")])
    return [session, Skipped(path, 4, f"summary line {AWS}", records=2), Rejected(path, 5, f"bad key {AWS}")]


def fill(report: IngestReport, path: str) -> None:
    for event in events(path):
        session = report.read(path, "openai-chat", event)
        if session is not None:
            report.kept(path, "openai-chat", session)
    report.filtered(path, "openai-chat", f"score below {AWS}", 4)


def test_buckets_add_up_and_nothing_unredacted():
    report = IngestReport()
    fill(report, "/home/alice/logs/a.jsonl")
    totals = report.totals()
    assert (totals["records"], totals["records_kept"], totals["records_filtered"], totals["records_rejected"]) == (
        10, 3, 6, 1)
    assert (totals["sessions_read"], totals["sessions_kept"], totals["turns_kept"], totals["tool_calls_kept"]) == (
        1, 1, 3, 1)
    assert totals["filtered_by_reason"] == {"score below <SECRET:aws_access_key>": 4,
                                            "skipped: summary line <SECRET:aws_access_key>": 2}
    assert report.rejections == [
        {"file": "<HOME>/logs/a.jsonl", "line": 5, "reason": "bad key <SECRET:aws_access_key>"}]
    text = report.dumps()
    assert AWS not in text and "alice" not in text
    assert json.loads(text)["files"]["<HOME>/logs/a.jsonl"]["records"] == 10


def test_merge_equals_one_report_over_all_inputs():
    whole, first, second = IngestReport(), IngestReport(), IngestReport()
    for path in ("a.jsonl", "b.jsonl"):
        fill(whole, path)
    fill(first, "a.jsonl")
    fill(second, "b.jsonl")
    first.merge(second)
    assert first.dumps() == whole.dumps()
