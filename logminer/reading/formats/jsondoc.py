"""JSON reading for every JSON reader: documents, JSONL lines and top-level arrays as positioned records with
precise rejections, sniffing helpers, and stable ids.

Not a format (no NAME): load_formats() only imports the modules named in FORMAT_MODULES. `parse_records` runs a
reader's record → Session conversion over a file with the accounting every reader needs (one event per record,
precise rejections, positions, deterministic fallback ids). Turning parsed messages into Turns is `common`'s job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from logminer.reading.sources import HEAD_CHARS, MAX_LINE_BYTES, SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped

_FIRST_VALUE = re.compile(r"\s*([\[{])")
FIRST_LINE_LIMIT = 16 * 1024 * 1024  # sniffing decodes at most this much of a long first line


def loads(text: str | bytes) -> Any:
    """json.loads, with nesting deeper than Python's recursion limit reported as a JSONDecodeError (line 1)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None


class DocumentError(Exception):
    """A JSON document that cannot be read; `line` is 1-based (0: the whole file)."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


def load_document(source: SourceFile) -> Any:
    """The whole file as one JSON value; DocumentError names the line of a syntax error."""
    try:
        text = source.text
    except SourceError as error:
        raise DocumentError(0, error.reason) from error
    try:
        return loads(text)
    except json.JSONDecodeError as error:
        raise DocumentError(error.lineno, f"invalid JSON: {error.msg} (column {error.colno})") from error


def rejected_document(source: SourceFile, error: DocumentError) -> Rejected:
    return Rejected(source.path, error.line, error.reason)


def iter_json_lines(source: SourceFile) -> Iterator[tuple[int, int, int, Any | Rejected]]:
    """(line number, byte start, byte end, parsed value or Rejected) for every non-blank line."""
    for number, offset, raw in source.lines():
        if not raw.strip():
            continue
        end = offset + len(raw)
        if len(raw) > MAX_LINE_BYTES:
            yield number, offset, end, Rejected(source.path, number, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            value = loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as error:
            yield number, offset, end, Rejected(source.path, number, f"not UTF-8 text (byte {error.start})")
            continue
        except json.JSONDecodeError as error:
            yield number, offset, end, Rejected(source.path, number, f"invalid JSON: {error.msg}")
            continue
        yield number, offset, end, value


def first_json_line(head: str) -> Any:
    """The first line of `head` parsed as JSON, or None (sniffing JSONL without reading the file). A broken first
    line (a cut-off record, a stray note) does not hide the file's format: the next complete lines decide."""
    line = head.lstrip().split("\n", 1)[0]
    try:
        return loads(line)
    except (json.JSONDecodeError, ValueError):
        return later_line_object(head)


def later_line_object(head: str, lines: int = 8) -> dict[str, Any] | None:
    """The first JSON object among the complete lines after a first line that is not JSON, or None; never for a
    pretty-printed document (its first line is a lone `{` or `[`, and its inner lines are not records)."""
    text = head.lstrip()
    first, _, rest = text.partition("\n")
    if first.strip() in ("{", "[") or not rest:
        return None
    for line in rest.split("\n")[:-1][:lines]:  # the last piece may be cut by the head
        try:
            value = loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def starts_with_json(head: str, opener: str) -> bool:
    """True when the text's first non-blank character is `opener` ('{' or '[')."""
    match = _FIRST_VALUE.match(head)
    return bool(match) and match.group(1) == opener


def as_list(value: Any) -> list[Any]:
    """`value` when it is a list, else [] (a field that drifted or broke is iterated as empty, never crashes)."""
    return value if isinstance(value, list) else []


def stable_id(*parts: Any) -> str:
    """A deterministic 16-hex-digit id from the given parts (file content hash, index, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:16]


def content_hash(source: SourceFile) -> str:
    return hashlib.sha256(source.data).hexdigest()


def repo_from_instance_id(instance_id: str | None) -> str | None:
    """SWE-bench ids are `owner__repo-NUMBER`: the repository `owner/repo`, or None for other ids."""
    match = re.fullmatch(r"([\w.-]+?)__([\w.-]+)-\d+", instance_id or "")
    return f"{match.group(1)}/{match.group(2)}" if match else None


def iso_from_epoch_ms(ms: Any) -> str | None:
    """Epoch milliseconds (Cline, OpenCode) as ISO 8601 UTC, or None when not a number (or out of range)."""
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_epoch(value: Any) -> str | None:
    """An epoch time in seconds or milliseconds (SQLite stores mix both) as ISO 8601 UTC, or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None
    return iso_from_epoch_ms(value if value > 100_000_000_000 else value * 1000)  # > year 5138 in s: it is ms


def skip_all(source: SourceFile, items: Iterator[Any], reason: str) -> Iterator[Skipped | Rejected]:
    """A recognised non-transcript file (holdout lists): Rejected items as they come, all others one Skipped."""
    count = 0
    for item in items:
        if isinstance(item, Rejected):
            yield item
        else:
            count += 1
    if count:
        yield Skipped(source.path, 0, reason, records=count)


def text_lines(text: str) -> list[str]:
    """Lines split at \\n only (as SourceFile.lines counts them; str.splitlines also splits at \\v, \\f, U+2028...)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


class ShapeError(ValueError):
    """A record whose JSON is valid but whose shape the reader does not know; the message is the reason."""


@dataclass
class Record:
    """One JSON value of a file with its position: a JSONL line or one element of a top-level JSON array."""

    value: Any
    line_start: int
    line_end: int
    byte_start: int
    byte_end: int


def iter_records(source: SourceFile) -> Iterator[Record | Rejected]:
    """Every conversation-level JSON value: JSONL lines, the elements of a top-level array, or one document."""
    try:
        text = source.text
    except SourceError as error:
        yield Rejected(source.path, 0, error.reason)
        return
    stripped = text.lstrip()
    first_line = stripped.split("\n", 1)[0].strip()
    if _is_json(first_line) and stripped[len(first_line):].strip():
        yield from _jsonl_records(source)  # several values, one per line
    elif stripped.startswith("[") and not _is_message_list(source):
        yield from _array_records(source, text)
    elif stripped.startswith(("{", "[")) and not _later_lines_are_json(stripped):
        yield _document_record(source, text)  # one object, or one array of messages
    else:
        yield from _jsonl_records(source)  # JSONL whose first line is broken, or not JSON at all


def _later_lines_are_json(text: str) -> bool:
    """True when one of lines 2-6 is a JSON object or array on its own: JSONL with a broken first line."""
    lines = [line.strip() for line in text.split("\n", 6)[1:6]]
    return any(line.startswith(("{", "[")) and _is_json(line) for line in lines)


def _is_message_list(source: SourceFile) -> bool:
    """A top-level array of chat messages (`role` objects): one conversation, read as one record."""
    value = first_value(source)
    first = value[0] if isinstance(value, list) and value else value
    return isinstance(first, dict) and "role" in first and not {"messages", "conversations"} & first.keys()


def _is_json(text: str) -> bool:
    try:
        loads(text)
    except ValueError:
        return False
    return bool(text)


def _jsonl_records(source: SourceFile) -> Iterator[Record | Rejected]:
    for line, start, end, value in iter_json_lines(source):
        yield value if isinstance(value, Rejected) else Record(value, line, line, start, end)


def _document_record(source: SourceFile, text: str) -> Record | Rejected:
    """The whole file as one record; a syntax error rejects it at the error's line."""
    try:
        value = loads(text)
    except json.JSONDecodeError as error:
        return Rejected(source.path, error.lineno, f"invalid JSON document: {error.msg} (column {error.colno})")
    body = text.rstrip()
    return Record(value, 1, body.count("\n") + 1, 0, len(body.encode("utf-8")))


def _array_records(source: SourceFile, text: str) -> Iterator[Record | Rejected]:
    """Elements of a top-level JSON array decoded one by one, so a syntax error rejects only the rest of the file."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    line, byte = 1 + text.count("\n", 0, position), len(text[:position].encode("utf-8"))
    while True:
        skipped_to = _skip_separators(text, position)
        line += text.count("\n", position, skipped_to)
        byte += len(text[position:skipped_to].encode("utf-8"))
        position = skipped_to
        if position >= len(text) or text[position] == "]":
            if text[position + 1:].strip():
                yield Rejected(source.path, line, "unexpected text after the top-level JSON array")
            elif position >= len(text):
                yield Rejected(source.path, line, "truncated JSON array: no closing ']'")
            return
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            yield Rejected(source.path, error.lineno, f"invalid JSON in array element: {error.msg}")
            return
        except RecursionError:
            yield Rejected(source.path, line, "invalid JSON in array element: nested too deeply")
            return
        chunk = text[position:end]
        end_line = line + chunk.count("\n")
        end_byte = byte + len(chunk.encode("utf-8"))
        yield Record(value, line, end_line, byte, end_byte)
        line, byte, position = end_line, end_byte, end


def _skip_separators(text: str, position: int) -> int:
    """Index of the next value: whitespace and at most one comma skipped."""
    while position < len(text) and text[position] in " \t\r\n,":
        position += 1
    return position


def first_value(source: SourceFile) -> Any:
    """The first JSON value of the file (first JSONL line, first array element, or the document), or None.

    For sniffing: decodes the first line of the head; a first line longer than the head (long JSONL records,
    one-line documents) is read whole from the data when it is at most FIRST_LINE_LIMIT bytes.
    """
    if source.is_binary:
        return None
    head = source.head.lstrip()
    first_line, newline, _ = head.partition("\n")
    if not newline and len(source.head) >= HEAD_CHARS:  # the head ends inside the first line
        end = source.data.find(b"\n")
        if end < 0 or end > FIRST_LINE_LIMIT:
            end = len(source.data) if len(source.data) <= FIRST_LINE_LIMIT else -1
        first_line = source.data[:end].decode("utf-8-sig", errors="replace") if end >= 0 else first_line
    try:
        return loads(first_line)
    except ValueError:
        pass
    try:
        if head.startswith("["):
            return json.JSONDecoder().raw_decode(head, _skip_separators(head, 1))[0]
        return json.JSONDecoder().raw_decode(head)[0]
    except (ValueError, IndexError, RecursionError):
        return later_line_object(head)


def first_dict(source: SourceFile) -> dict[str, Any] | None:
    """The first JSON object of the file (see first_value), or None when it is not an object."""
    value = first_value(source)
    if isinstance(value, list):  # a one-line JSON array document: its first element
        value = value[0] if value else None
    return value if isinstance(value, dict) else None


def head_objects(source: SourceFile, limit: int = 8) -> list[dict[str, Any]]:
    """The JSON objects on the first `limit` complete non-blank lines of the head (JSONL sniffing). A broken first
    line (a cut-off record, a stray note; not the lone `{` of a pretty-printed document) is passed over."""
    if source.is_binary:
        return []
    found: list[dict[str, Any]] = []
    lines = source.head.split("\n")
    seen = 0
    for line in lines[:-1] if len(lines) > 1 else lines:
        if not line.strip():
            continue
        seen += 1
        try:
            value = loads(line)
        except ValueError:
            if seen == 1 and line.strip() not in ("{", "["):
                continue
            return found
        if not isinstance(value, dict):
            return found
        found.append(value)
        if len(found) >= limit:
            break
    return found


def position(session: Session, record: Record) -> Session:
    """Copy a record's line and byte span onto the session."""
    session.line_start, session.line_end = record.line_start, record.line_end
    session.byte_start, session.byte_end = record.byte_start, record.byte_end
    return session


def parse_records(source: SourceFile, name: str,
                  convert: Callable[[Any], Session | Skipped]) -> Iterator[Session | Skipped | Rejected]:
    """Every record of the file through `convert`: ShapeError → Rejected with the record's line; Sessions get the
    reader's name, the file, the record's position and, without an own id, `<name>:<hash of path and line>`."""
    for record in iter_records(source):
        if isinstance(record, Rejected):
            yield record
            continue
        try:
            event = convert(record.value)
        except ShapeError as error:
            yield Rejected(source.path, record.line_start, str(error))
            continue
        if isinstance(event, Skipped):
            event.source_file, event.line = source.path, record.line_start
            yield event
            continue
        event.agent, event.source_file = name, source.path
        event.session_id = event.session_id or f"{name}:{stable_id(source.path, record.line_start)}"
        yield position(event, record)
