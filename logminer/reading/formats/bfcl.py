"""Berkeley Function-Calling Leaderboard files: recognised as a holdout (eval) source, never read as transcripts.

Read from ShishirPatil/gorilla (berkeley-function-call-leaderboard/bfcl_eval/data): JSON Lines despite the `.json`
name; question files have `{id, question: [[{role, content}, ...], ...], function: [tool docs]}`, answer files
(`possible_answer/`) `{id, ground_truth}`. A JSON list of the same objects is accepted too. parse() yields one
Skipped per file counting its entries; logminer.split.holdout reads the question text for decontamination.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from logminer.reading.formats.jsondoc import (
    DocumentError,
    first_json_line,
    iter_json_lines,
    load_document,
    rejected_document,
    skip_all,
    starts_with_json,
)
from logminer.reading.registry import Format
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped

NAME = "bfcl"
RECORD_UNIT = "line"  # one benchmark entry per line (per item for a JSON list)
SKIP_REASON = "holdout source: bfcl"


def is_entry(item: Any) -> bool:
    """A BFCL question (`question` + `function`) or answer (`ground_truth`) object."""
    return (
        isinstance(item, dict)
        and "id" in item
        and (("question" in item and "function" in item) or "ground_truth" in item)
    )


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary:
        return False
    if starts_with_json(head, "{"):
        return is_entry(first_json_line(head))
    if starts_with_json(head, "["):
        return bool(re.match(r'\s*\[\s*\{\s*"id"\s*:\s*"[^"]*"\s*,\s*"(question|ground_truth)"\s*:', head))
    return False


def iter_entries(source: SourceFile) -> Iterator[tuple[int, dict[str, Any]] | Rejected]:
    """(line, entry) for every BFCL entry; anything else is Rejected with its line."""
    if starts_with_json(source.head, "["):
        try:
            document = load_document(source)
        except DocumentError as error:
            yield rejected_document(source, error)
            return
        for index, item in enumerate(document if isinstance(document, list) else [document]):
            yield (0, item) if is_entry(item) else Rejected(source.path, 0, f"item {index}: not a BFCL entry")
        return
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif is_entry(value):
            yield number, value
        else:
            yield Rejected(source.path, number, "not a BFCL entry (id + question/function or ground_truth)")


def question_texts(entry: dict[str, Any]) -> list[str]:
    """The user-side text of a BFCL question (turns are lists of {role, content} messages)."""
    texts: list[str] = []
    stack = [entry.get("question")]
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        elif isinstance(item, dict) and isinstance(item.get("content"), str) and item.get("role") != "assistant":
            texts.append(item["content"])
        elif isinstance(item, str):
            texts.append(item)
    return texts


def parse(source: SourceFile) -> Iterator[Skipped | Rejected]:
    return skip_all(source, iter_entries(source), SKIP_REASON)


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
