"""Small helpers the agent-transcript readers share: JSON loading with precise rejections, stable ids, content text.

Not a format (no NAME): load_formats() only imports the modules named in FORMAT_MODULES.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from logminer.schema import Rejected, ToolCall, canonical_arguments
from logminer.sources import MAX_LINE_BYTES, SourceError, SourceFile

_FIRST_VALUE = re.compile(r"\s*([\[{])")


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
        return json.loads(text)
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
            value = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as error:
            yield number, offset, end, Rejected(source.path, number, f"not UTF-8 text (byte {error.start})")
            continue
        except json.JSONDecodeError as error:
            yield number, offset, end, Rejected(source.path, number, f"invalid JSON: {error.msg}")
            continue
        yield number, offset, end, value


def first_json_line(head: str) -> Any:
    """The first line of `head` parsed as JSON, or None (sniffing JSONL without reading the file)."""
    line = head.lstrip().split("\n", 1)[0]
    try:
        return json.loads(line)
    except (json.JSONDecodeError, ValueError):
        return None


def starts_with_json(head: str, opener: str) -> bool:
    """True when the text's first non-blank character is `opener` ('{' or '[')."""
    match = _FIRST_VALUE.match(head)
    return bool(match) and match.group(1) == opener


def stable_id(*parts: Any) -> str:
    """A deterministic 16-hex-digit id from the given parts (file content hash, index, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:16]


def content_hash(source: SourceFile) -> str:
    return hashlib.sha256(source.data).hexdigest()


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text of a list of typed parts (images and unknown parts dropped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def make_tool_call(name: Any, arguments: Any, call_id: Any = None) -> ToolCall:
    """A ToolCall with canonical JSON arguments (broken JSON kept verbatim, marked invalid)."""
    text, valid = canonical_arguments(arguments if arguments is not None else {})
    return ToolCall(name=str(name or ""), arguments=text, id=str(call_id) if call_id else None, arguments_valid=valid)


def openai_tool_calls(raw_calls: Any) -> list[ToolCall]:
    """OpenAI `tool_calls` ([{id, type, function{name, arguments}}]) as ToolCalls."""
    calls = []
    for raw in raw_calls or []:
        if not isinstance(raw, dict):
            continue
        function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
        calls.append(make_tool_call(function.get("name"), function.get("arguments"), raw.get("id")))
    return calls


def repo_from_instance_id(instance_id: str | None) -> str | None:
    """SWE-bench ids are `owner__repo-NUMBER`: the repository `owner/repo`, or None for other ids."""
    match = re.fullmatch(r"([\w.-]+?)__([\w.-]+)-\d+", instance_id or "")
    return f"{match.group(1)}/{match.group(2)}" if match else None


def iso_from_epoch_ms(ms: Any) -> str | None:
    """Epoch milliseconds (Cline, OpenCode) as ISO 8601 UTC, or None when not a number."""
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def text_lines(text: str) -> list[str]:
    """Lines split at \\n only (as SourceFile.lines counts them; str.splitlines also splits at \\v, \\f, U+2028...)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
