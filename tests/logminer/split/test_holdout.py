"""Holdout loading for decontamination: SWE-bench instances and id lists, BFCL questions, text corpora."""

from __future__ import annotations

import json

import pytest

from logminer.schema import Session
from logminer.split.holdout import HoldoutError, added_lines, instance_id_of, load_holdout


def test_examples(example_logs):
    items = load_holdout([str(example_logs.parent / "holdout")])
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.source_file.rsplit("/", 1)[1], []).append(item)
    assert {name: len(group) for name, group in by_file.items()} == {
        "bfcl_simple.json": 2, "swebench_instance_images.txt": 3, "swebench_instances.jsonl": 2}
    widgets = by_file["swebench_instances.jsonl"][0]
    assert (widgets.benchmark, widgets.instance_id, widgets.repo) == ("swe-bench", "acme__widgets-42", "acme/widgets")
    statement, patch = widgets.texts
    assert statement.startswith("parse_duration() rejects '1h30m'")
    assert patch == ("    total = 0\n    for value, unit in _PART.findall(text):\n"
                     "        total += int(value) * UNITS[unit]\n    return total")
    assert [i.instance_id for i in by_file["swebench_instance_images.txt"]] == [
        "acme__widgets-42", "acme__gizmo-7", "acme__widgets-51"]
    assert [i.repo for i in by_file["swebench_instance_images.txt"]] == ["acme/widgets", "acme/gizmo", "acme/widgets"]
    assert by_file["bfcl_simple.json"][1].texts == ["What is the median of 3, 9, 4, 1 and 7?"]
    assert all(i.instance_id is None for i in by_file["bfcl_simple.json"])


def test_added_lines_ignores_headers_and_removals():
    patch = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-old\n+new\n context\n+\n+second\n"
    assert added_lines(patch) == "new\nsecond"
    assert added_lines(None) == ""


def test_dict_of_columns_and_text_corpus(tmp_path):
    columns = tmp_path / "verified.json"
    columns.write_text(json.dumps({"instance_id": ["a__b-1", "c__d-2"], "repo": ["a/b", "c/d"],
                                   "problem_statement": ["first", "second"], "patch": ["+x\n", "+y\n"]}))
    corpus = tmp_path / "eval.txt"
    corpus.write_text("An evaluation paragraph that must not be calibrated on.\n")
    text, first, second = load_holdout([str(columns), str(corpus)])  # files in sorted order
    assert (text.benchmark, text.texts) == ("text", ["An evaluation paragraph that must not be calibrated on.\n"])
    assert [(i.instance_id, i.repo, i.texts) for i in (first, second)] == [
        ("a__b-1", "a/b", ["first", "x"]), ("c__d-2", "c/d", ["second", "y"])]


def test_bad_holdout_fails_loudly(tmp_path):
    bad = tmp_path / "ids.txt"
    bad.write_text("astropy__astropy-12907\ndjango__django-11039\nnot an id\nsympy__sympy-19954\npsf__requests-2317\n")
    with pytest.raises(HoldoutError, match="line 3"):
        load_holdout([str(bad)])
    with pytest.raises(HoldoutError, match="no such file"):
        load_holdout([str(tmp_path / "missing.json")])
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(HoldoutError, match="binary"):
        load_holdout([str(binary)])


def test_real_holdout(real_logs):
    items = load_holdout([str(real_logs / "swebench-instances"), str(real_logs / "bfcl")])
    ids = {i.instance_id for i in items if i.instance_id}
    # grep -c . on the image lists / jq length on the JSON files: 300 lite, 500 verified, 2294 full, 2119 SWE-Gym
    assert sum(i.benchmark == "swe-bench" for i in items) == 300 + 500 + 2294 + 2119 + 5 + 5
    assert sum(i.benchmark == "bfcl" for i in items) == 400  # questions only; answer files add no text
    assert {"astropy__astropy-12907", "django__django-11039", "pydicom__pydicom-1458"} <= ids
    full = [i for i in items if i.instance_id == "pydicom__pydicom-1458" and i.texts]
    assert full and full[0].repo == "pydicom/pydicom" and len(full[0].texts) == 2


def test_instance_id_of():
    def session(path: str, **metadata) -> Session:
        return Session(session_id="s", agent="x", source_file=path, metadata=metadata)

    assert instance_id_of(session("/r/run.traj", instance_id="astropy__astropy-12907")) == "astropy__astropy-12907"
    assert instance_id_of(session("/r/x.json", instance_id="sweb.eval.x86_64.django_1776_django-11039")) == (
        "django__django-11039")
    assert instance_id_of(session("/r/sympy__sympy-19954.traj.json")) == "sympy__sympy-19954"
    assert instance_id_of(session("/r/sympy__sympy-19954.json")) is None
    assert instance_id_of(session("/r/notes.traj")) is None


def test_instance_ids_of_real_runs(real_logs):
    from logminer.reading.detect import read_inputs

    found = {instance_id_of(e) for _, _, e in read_inputs([str(real_logs / "mini-swe-agent-traj")])
             if isinstance(e, Session)}
    # the instance_id fields of the 5 SWE-bench runs (jq -r .instance_id); the bare-list fixture has none
    assert found == {"astropy__astropy-12907", "django__django-15731", "sympy__sympy-19954",
                     "django__django-11039", "pydicom__pydicom-901", None}
