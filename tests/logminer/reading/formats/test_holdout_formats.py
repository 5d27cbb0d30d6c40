"""SWE-bench instance lists and BFCL files: recognised as holdout sources, Skipped with every record counted."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import bfcl, swebench
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped


def test_normalise_id():
    image = "swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest"
    assert swebench.normalise_id(image) == "astropy__astropy-12907"
    assert swebench.normalise_id("sweb.eval.x86_64.django_1776_django-11039") == "django__django-11039"
    assert swebench.normalise_id("Project-MONAI__MONAI-1010") == "Project-MONAI__MONAI-1010"
    assert swebench.normalise_id("hello world") is None


def test_examples(example_logs):
    holdout = example_logs.parent / "holdout"
    cases = [("swebench_instances.jsonl", swebench, 2), ("swebench_instance_images.txt", swebench, 3),
             ("bfcl_simple.json", bfcl, 2)]
    for name, module, records in cases:
        source = SourceFile.open(holdout / name)
        assert module.sniff(source)
        [event] = list(module.parse(source))
        assert isinstance(event, Skipped) and event.records == records
        assert event.reason == f"holdout source: {module.NAME}"


# records: `jq length` for JSON lists, `grep -c .` for id/image lists and JSONL files
REAL = [
    ("swebench-instances/swe-agent_swe-bench-lite-test.json", swebench, 5),
    ("swebench-instances/swe-agent_swe-bench-dev-easy.json", swebench, 5),
    ("swebench-instances/openhands_swegym_verified_instances.json", swebench, 2119),
    ("swebench-instances/openhands_swebench-lite_instance-images.txt", swebench, 300),
    ("swebench-instances/openhands_swebench-verified_instance-images.txt", swebench, 500),
    ("swebench-instances/openhands_swebench-full_instance-images.txt", swebench, 2294),
    ("swebench-predictions/openhands_swebench_example_model_output.json", swebench, 30),
    ("bfcl/bfcl_v4_simple_python.jsonl", bfcl, 400),
    ("bfcl/bfcl_v4_simple_python.possible_answer.jsonl", bfcl, 400),
]


@pytest.mark.parametrize(("name", "module", "records"), REAL)
def test_real_holdout_files(real_logs, name, module, records):
    source = SourceFile.open(real_logs / name)
    assert module.sniff(source)
    assert [(type(e).__name__, e.records) for e in module.parse(source)] == [("Skipped", records)]


def test_bad_records_are_rejected_with_lines(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("astropy__astropy-12907\nnot an id\n\ndjango__django-11039\n")
    events = list(swebench.parse(SourceFile.open(ids)))
    assert [(type(e).__name__, e.line, e.records) for e in events] == [("Rejected", 2, 1), ("Skipped", 0, 2)]
    questions = tmp_path / "bfcl.json"
    entry = {"id": "simple_0", "question": [[{"role": "user", "content": "hi"}]], "function": []}
    questions.write_text(json.dumps(entry) + "\n{oops\n" + json.dumps({"id": "x"}) + "\n")
    events = list(bfcl.parse(SourceFile.open(questions)))
    assert [e.line for e in events if isinstance(e, Rejected)] == [2, 3]
    assert events[-1].records == 1


def test_transcripts_are_not_holdout(example_logs):
    for path in [example_logs / "openhands" / "eval_output.jsonl",
                 example_logs / "mini-swe-agent" / "acme__widgets-42.traj.json",
                 example_logs / "plain-text" / "release_notes.txt"]:
        source = SourceFile.open(path)
        assert not swebench.sniff(source) and not bfcl.sniff(source)
