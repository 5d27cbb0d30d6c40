"""SWE-bench-style instance files: recognised as a holdout (eval) source, never read as transcripts.

Shapes: a JSON list or JSONL of instance objects (`instance_id`, `repo`, `problem_statement`, `patch`, ...),
prediction files (`instance_id`, `model_patch`), a dict of columns (`{"instance_id": [...], ...}`, as datasets
exports it), and bare id lists: a JSON list of ids, or text with one id or docker image name per line (SWE-bench
images spell `__` as `_1776_`: `swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest`). parse() yields one
Skipped per file counting its instances; logminer.split.holdout reads the same records for decontamination.
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

NAME = "swe-bench"
RECORD_UNIT = "item"  # one instance (object, id or id line)
SKIP_REASON = "holdout source: swe-bench"

INSTANCE_ID = re.compile(r"[A-Za-z0-9][\w.-]*__[\w.-]+-\d+")
_IMAGE = re.compile(r"(?:[\w.-]+/)*sweb\.eval\.[\w-]+\.([\w.-]+?)(?::[\w.-]+)?")
_INSTANCE_KEYS = ("problem_statement", "patch", "model_patch", "repo", "base_commit")
_TRANSCRIPT_KEYS = ("history", "messages", "trajectory", "conversations", "question")


def normalise_id(text: str) -> str | None:
    """An instance id from an id or a docker image name (`_1776_` → `__`), or None if it is neither."""
    text = text.strip()
    image = _IMAGE.fullmatch(text)
    if image:
        text = image.group(1).replace("_1776_", "__")
    return text if INSTANCE_ID.fullmatch(text) else None


def _is_instance(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("instance_id"), str)
        and any(key in item for key in _INSTANCE_KEYS)
        and not any(key in item for key in _TRANSCRIPT_KEYS)
    )


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary:
        return False
    if starts_with_json(head, "{"):
        if re.match(r'\s*\{\s*"instance_id"\s*:\s*\[', head):  # dict of columns
            return True
        return _is_instance(first_json_line(head))
    if starts_with_json(head, "["):
        first_object = re.match(r"\s*\[\s*(\{.*?\"instance_id\"\s*:)", head, re.DOTALL)
        if first_object:
            return any(f'"{key}"' in head for key in _INSTANCE_KEYS) and not any(
                re.search(rf'"{key}"\s*:', head) for key in _TRANSCRIPT_KEYS
            )
        ids = re.findall(r'"([^"]*)"', head[:4000])
        return len(ids) >= 1 and all(normalise_id(i) for i in ids[:20])
    lines = [line for line in head.splitlines()[:20] if line.strip()]
    ids = sum(1 for line in lines if normalise_id(line))
    return bool(lines) and ids >= 0.8 * len(lines)  # a stray bad line is Rejected by parse(), not a reason to miss


def iter_instances(source: SourceFile) -> Iterator[tuple[int, dict[str, Any]] | Rejected]:
    """(line, instance) for every instance in the file; ids alone come as {"instance_id": id}."""
    head = source.head
    if starts_with_json(head, "["):
        try:
            yield from _document_instances(source, load_document(source))
        except DocumentError as error:
            yield rejected_document(source, error)
    elif starts_with_json(head, "{"):
        line = first_json_line(head)
        document = None
        if line is None or _is_columns(line):  # one document (a dict of columns), or damaged JSONL
            try:
                document = load_document(source)
            except DocumentError:
                pass  # damaged JSONL: each bad line is rejected on its own
        yield from _document_instances(source, document) if document is not None else _line_instances(source)
    else:
        yield from _id_lines(source)


def _is_columns(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("instance_id"), list)


def _line_instances(source: SourceFile) -> Iterator[tuple[int, dict[str, Any]] | Rejected]:
    for number, _start, _end, value in iter_json_lines(source):
        if isinstance(value, Rejected):
            yield value
        elif not isinstance(value, dict) or not isinstance(value.get("instance_id"), str):
            yield Rejected(source.path, number, "line is not an instance object with an instance_id")
        else:
            yield number, value


def _id_lines(source: SourceFile) -> Iterator[tuple[int, dict[str, Any]] | Rejected]:
    for number, _offset, raw in source.lines():
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            yield Rejected(source.path, number, f"not UTF-8 text (byte {error.start})")
            continue
        instance_id = normalise_id(line)
        if instance_id is None:
            yield Rejected(source.path, number, "not a SWE-bench instance id or image name")
        else:
            yield number, {"instance_id": instance_id}


def _document_instances(source: SourceFile, document: Any) -> Iterator[tuple[int, dict[str, Any]] | Rejected]:
    if isinstance(document, dict) and isinstance(document.get("instance_id"), list):  # columns
        columns = {key: value for key, value in document.items() if isinstance(value, list)}
        document = [
            {key: column[i] for key, column in columns.items() if i < len(column)}
            for i in range(len(document["instance_id"]))
        ]
    if not isinstance(document, list):
        yield Rejected(source.path, 0, "expected a list of instances, a list of ids or a dict of columns")
        return
    if not document:
        yield Rejected(source.path, 0, "no instances in the file")
        return
    for index, item in enumerate(document):
        if isinstance(item, str) and normalise_id(item):
            yield 0, {"instance_id": normalise_id(item)}
        elif isinstance(item, dict) and isinstance(item.get("instance_id"), str):
            yield 0, item
        else:
            yield Rejected(source.path, 0, f"item {index}: not an instance object or instance id")


def parse(source: SourceFile) -> Iterator[Skipped | Rejected]:
    return skip_all(source, iter_instances(source), SKIP_REASON)


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
