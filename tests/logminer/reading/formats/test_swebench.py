"""SWE-bench instance lists: JSONL, JSON lists, dicts of columns, id lists and docker image names all give the
instance ids; transcripts that only mention an instance are not instance lists; bad items are rejected."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import swebench
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped

INSTANCE = {"instance_id": "django__django-11039", "repo": "django/django", "problem_statement": "x", "patch": "y"}


@pytest.mark.parametrize("text, expected", [
    ("django__django-11039", "django__django-11039"),
    ("  astropy__astropy-12907 ", "astropy__astropy-12907"),
    ("swebench/sweb.eval.x86_64.django_1776_django-11039:latest", "django__django-11039"),
    ("not an id", None),
    ("django-11039", None),
])
def test_ids_and_image_names(text, expected):
    assert swebench.normalise_id(text) == expected


def _ids(source: SourceFile) -> list[str]:
    return [pair[1]["instance_id"] for pair in swebench.iter_instances(source) if not isinstance(pair, Rejected)]


@pytest.mark.parametrize("name, data", [
    ("test.jsonl", (json.dumps(INSTANCE) + "\n" + json.dumps({**INSTANCE, "instance_id": "a__b-2"}) + "\n")),
    ("test.json", json.dumps([INSTANCE, {**INSTANCE, "instance_id": "a__b-2"}])),
    ("columns.json", json.dumps({"instance_id": ["django__django-11039", "a__b-2"], "repo": ["django/django", "a/b"]})),
    ("ids.txt", "django__django-11039\na__b-2\n"),
    ("ids.json", json.dumps(["django__django-11039", "a__b-2"])),
])
def test_every_layout_gives_the_instance_ids(name, data):
    source = SourceFile(name, data.encode())
    assert swebench.sniff(source)
    assert _ids(source) == ["django__django-11039", "a__b-2"]
    [event] = list(swebench.parse(source))
    assert isinstance(event, Skipped) and event.records == 2 and event.reason == swebench.SKIP_REASON


def test_a_transcript_is_not_an_instance_list():
    transcript = {"instance_id": "django__django-11039", "problem_statement": "x", "trajectory": []}
    assert not swebench.sniff(SourceFile("run.jsonl", (json.dumps(transcript) + "\n").encode()))


def test_bad_items_are_rejected_and_counted():
    source = SourceFile("ids.txt", b"django__django-11039\nhello world\na__b-2\n")
    events = list(swebench.parse(source))
    assert [(e.line, e.reason) for e in events if isinstance(e, Rejected)] == [
        (2, "not a SWE-bench instance id or image name")]
    assert sum(e.records for e in events) == 3
    [empty] = list(swebench.parse(SourceFile("e.json", b"[]")))
    assert isinstance(empty, Rejected) and empty.reason == "no instances in the file"
