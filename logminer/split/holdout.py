"""Holdout sources for decontamination: benchmark instances, id lists, BFCL questions and plain text corpora.

`load_holdout(paths)` reads every file under the given paths into HoldoutItems: the instance id and repository (for
id / repository matches) and the texts whose n-grams must not reach calibration (problem statements, the lines a gold
patch adds, BFCL questions, or a whole text file). File shapes are recognised by the readers in logminer.reading.formats
(swebench, bfcl); any other text file is a corpus. `instance_id_of(session)` is where transcripts keep their id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from logminer.reading.formats import bfcl, plain_text, swebench
from logminer.reading.formats.jsondoc import repo_from_instance_id
from logminer.reading.sources import SourceError, SourceFile, expand_inputs
from logminer.schema import Rejected, Session

BENCHMARK_SWE_BENCH = "swe-bench"
BENCHMARK_BFCL = "bfcl"
BENCHMARK_TEXT = "text"


@dataclass
class HoldoutItem:
    source_file: str
    benchmark: str  # "swe-bench", "bfcl" or "text"
    instance_id: str | None = None
    repo: str | None = None
    texts: list[str] = field(default_factory=list)


class HoldoutError(Exception):
    """A holdout file that cannot be used: named with line and reason (decontamination must not run half-blind)."""


def load_holdout(paths: list[str]) -> list[HoldoutItem]:
    """Every holdout item in the files, folders or globs given; any unreadable record raises HoldoutError."""
    items: list[HoldoutItem] = []
    try:
        files = expand_inputs(paths)
    except SourceError as error:
        raise HoldoutError(str(error)) from error
    for path in files:
        try:
            source = SourceFile.open(path)
        except SourceError as error:
            raise HoldoutError(str(error)) from error
        items.extend(_items_of(source))
    return items


def _items_of(source: SourceFile) -> list[HoldoutItem]:
    if swebench.sniff(source):
        return [_swebench_item(source.path, record) for record in _records(swebench.iter_instances(source))]
    if bfcl.sniff(source):
        return [
            HoldoutItem(source.path, BENCHMARK_BFCL, texts=bfcl.question_texts(entry))
            for entry in _records(bfcl.iter_entries(source))
            if "question" in entry
        ]
    if plain_text.sniff(source):
        try:
            text = source.text
        except SourceError as error:
            raise HoldoutError(str(error)) from error
        return [HoldoutItem(source.path, BENCHMARK_TEXT, texts=[text])] if text.strip() else []
    raise HoldoutError(f"{source.path}: binary data, not a holdout source")


def _records(events: Any) -> list[dict[str, Any]]:
    records = []
    for event in events:
        if isinstance(event, Rejected):
            raise HoldoutError(f"{event.source_file}: line {event.line}: {event.reason}")
        records.append(event[1])
    return records


def _swebench_item(path: str, record: dict[str, Any]) -> HoldoutItem:
    instance_id = swebench.normalise_id(record["instance_id"]) or record["instance_id"]
    repo = record.get("repo") if isinstance(record.get("repo"), str) else repo_from_instance_id(instance_id)
    texts = []
    if isinstance(record.get("problem_statement"), str) and record["problem_statement"].strip():
        texts.append(record["problem_statement"])
    added = added_lines(record.get("patch"))  # the gold patch; predictions' model_patch is not gold
    if added:
        texts.append(added)
    return HoldoutItem(path, BENCHMARK_SWE_BENCH, instance_id=instance_id, repo=repo, texts=texts)


def added_lines(patch: Any) -> str:
    """The lines a unified diff adds (without the `+`), joined by newlines; '' for no patch."""
    if not isinstance(patch, str):
        return ""
    lines = [
        line[1:]
        for line in patch.replace("\r\n", "\n").split("\n")
        if line.startswith("+") and not line.startswith("+++")
    ]
    return "\n".join(line for line in lines if line.strip())


def instance_id_of(session: Session) -> str | None:
    """The SWE-bench instance id a transcript ran on: readers store it as metadata "instance_id"
    (swe-agent, mini-swe-agent, openhands); a bare file name `<instance_id>.traj[.json]` is the fallback."""
    value = session.metadata.get("instance_id")
    if isinstance(value, str) and value:
        return swebench.normalise_id(value) or value
    stem = os.path.basename(session.source_file).split(".traj")[0]
    return stem if session.source_file.endswith((".traj", ".traj.json")) and swebench.normalise_id(stem) else None
