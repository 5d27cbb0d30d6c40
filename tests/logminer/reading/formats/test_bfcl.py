"""BFCL files: JSONL (despite `.json`) or a JSON list, question and answer entries recognised as a holdout source and
skipped with their count; question text (not the assistant side) read for decontamination."""

from __future__ import annotations

import json

from logminer.reading.formats import bfcl
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped

QUESTION = {"id": "simple_1", "question": [[{"role": "user", "content": "Find the area of a circle of radius 3."},
                                            {"role": "assistant", "content": "calling area()"}]],
            "function": [{"name": "area", "parameters": {}}]}
ANSWER = {"id": "simple_1", "ground_truth": [{"area": {"radius": [3]}}]}


def test_jsonl_and_list_files_are_skipped_with_their_entry_count():
    lines = SourceFile("BFCL_v3_simple.json", (json.dumps(QUESTION) + "\n" + json.dumps(ANSWER) + "\n").encode())
    listed = SourceFile("bfcl.json", json.dumps([QUESTION, ANSWER], indent=1).encode())
    for source in (lines, listed):
        assert bfcl.sniff(source)
        [event] = list(bfcl.parse(source))
        assert isinstance(event, Skipped) and event.reason == bfcl.SKIP_REASON and event.records == 2


def test_question_text_is_the_user_side():
    assert bfcl.question_texts(QUESTION) == ["Find the area of a circle of radius 3."]
    assert bfcl.question_texts({"id": "x", "question": ["plain question"]}) == ["plain question"]


def test_other_json_is_not_bfcl_and_bad_lines_are_rejected():
    assert not bfcl.sniff(SourceFile("chat.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n'))
    source = SourceFile("b.json", (json.dumps(QUESTION) + "\n{oops\n" + json.dumps({"id": 1}) + "\n").encode())
    events = list(bfcl.parse(source))
    assert [e.line for e in events if isinstance(e, Rejected)] == [2, 3]
    assert sum(e.records for e in events) == 3
