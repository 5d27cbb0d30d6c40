"""kingfisher's maintained provider rules (`kingfisher-secret-scanner`: Betterleaks/gitleaks and Veles rules, ~490,
one Rust/Vectorscan scan) as character spans, for many texts in one scan."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

SCAN_SEPARATOR = b"\n\x00\n"  # no rule's context (`\s`, `[\w.-]`) reaches across a NUL into the next text
KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
INVISIBLE_NOT_SECRET = ("id", "url", "host", "name", "domain", "address", "repository")
Span = tuple[int, int, str, "str | None"]  # start, end, kind, placeholder (None: <SECRET:kind>)

_SCANNER: list[Any] = []


def _kingfisher():
    """The kingfisher scanner, built once per process (the compiled rules are cached on disk by kingfisher:
    ~5 s the first time on a machine, ~0.5 s after)."""
    if not _SCANNER:
        import kingfisher_sdk

        _SCANNER.append(kingfisher_sdk.Scanner(kingfisher_sdk.Rules(), base64=True))
    return _SCANNER[0]


def _kind(rule_id: str) -> str:
    name = rule_id.split("/")[-1].removeprefix("betterleaks.").removeprefix("kingfisher.")
    head, _, tail = name.rpartition(".")
    if head and tail.isdigit():
        name = head
    return name.replace("-", "_").replace(".", "_")


def _redacts(finding: Any) -> bool:
    """Visible findings, and hidden ones that are secrets themselves (kingfisher hides the parts it pairs, e.g. an
    AWS secret key found without its key id), not the ids, hosts and URLs it pairs them with."""
    if finding.visible:
        return True
    return not _kind(finding.rule_id).endswith(INVISIBLE_NOT_SECRET)


def kingfisher_spans(texts: list[str]) -> list[list[Span]]:
    """Findings of one kingfisher scan over all `texts` (joined by SCAN_SEPARATOR), as character spans per text."""
    encoded = [text.encode("utf-8") for text in texts]
    starts = []
    offset = 0
    for data in encoded:
        starts.append(offset)
        offset += len(data) + len(SCAN_SEPARATOR)
    spans: list[list[Span]] = [[] for _ in texts]
    if not texts:
        return spans
    for finding in _kingfisher().scan(SCAN_SEPARATOR.join(encoded)):
        if not _redacts(finding):
            continue
        location = finding.location
        index = bisect_right(starts, location["start_offset"]) - 1
        data = encoded[index]
        begin = location["start_offset"] - starts[index]
        end = min(location["end_offset"] - starts[index], len(data))
        if end <= begin:
            continue
        if not texts[index].isascii():  # byte offsets → character offsets
            begin, end = len(data[:begin].decode("utf-8", "ignore")), len(data[:end].decode("utf-8", "ignore"))
        text = texts[index]
        while end < len(text) and text[end] in KEY_CHARS:  # a rule of one exact length: the rest of the key too
            end += 1
        spans[index].append((begin, end, _kind(finding.rule_id), None))
    return spans


