"""Decoded views of a text, each mapping its offsets back to the text, so a secret hidden by an encoding is found
and replaced where it is written.

A log quotes text inside other text: JSON strings with `\\n`/`\\t`/`\\"` escapes, URL-encoded query strings
(`%3D`, `%22`), base64 `.env` blobs, keys wrapped across two lines, keys glued to a file name by `_`. Scanners (ours
and kingfisher's) look for a key at a word boundary, which the escape hides (`\\nsk-…`: the `n` is a letter). Each
view here is the decoded text plus the pieces that changed, so a finding in the view maps back to a span of the
original. Views are built only for texts that contain their marker (MARKERS, checked by polars over a batch).
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from dataclasses import dataclass, field

JSON_ESCAPE = re.compile(r'\\(?:u[0-9a-fA-F]{4}|[nrtbf"/\\])')
JSON_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "/": "/", "\\": "\\"}
URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|[?&#]")
BREAK = re.compile(r"\n[ \t]*(?=[A-Za-z0-9_+/=.-]{4})")
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/=.-:")
HEAD = re.compile(r"[A-Za-z0-9_+/=.:-]{8}")
TOKEN_RUN = re.compile(r"[A-Za-z0-9_+/=.-]+")
BASE64_RUN = r"[A-Za-z0-9+/]{32,}={0,2}"  # Rust regex, run by polars over a batch
HEX_DIGITS = "0123456789abcdefABCDEF"
ENV_LINE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*[=:]", re.MULTILINE)
NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NAME_TAIL = re.compile(r"_(?=[A-Za-z0-9][A-Za-z0-9_+=.-]{15})")
EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")  # a file name's extension is not part of the key before it
KEEP_IN_DELIMITED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-. \t\n\r")
DELIMITERS = str.maketrans({chr(c): " " for c in range(128) if chr(c) not in KEEP_IN_DELIMITED})
NOT_ASCII = re.compile(r"[^\x00-\x7f]")
MAX_BASE64 = 65536  # longer base64 runs are images or archives, not .env files
MAX_TOKEN = 512

# Marker regexes (Rust regex, run by polars over a whole batch at once) that say which views a text needs.
MARKERS = {
    "json": r'\\[nrtbf"/\\u]',
    "url": r"%[0-9A-Fa-f]{2}|[?&][A-Za-z0-9_.-]+=",
    "joined": r"[A-Za-z0-9_+/=.-]{8}\\?\r?\n[ \t]*[A-Za-z0-9_+/=.-]{4}",
    "tail": r"_[A-Za-z0-9][A-Za-z0-9_+=.-]{15}",
}


@dataclass
class View:
    """`text` decoded from the span [start, end) of a source text; `pieces` are the changed spans, each
    (view_start, view_end, source_start, source_end), in order; unchanged text between them maps one to one."""

    text: str
    start: int
    end: int
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)
    whole: bool = False  # a finding anywhere in the view stands for the whole source span (base64 blobs)
    kingfisher_only: bool = False  # our rules already handle what this view shows (delimited_view)
    decoded: bool = False  # a JSON- or URL-decoded view of the whole text
    parent: View | None = None  # a view of a view (JSON inside a JSON string): offsets map through the parent
    _starts: list[int] | None = field(default=None, repr=False)

    def chain(self, same_length: View) -> View:
        """This view with its text replaced by `same_length` (a delimited copy of it): offsets map the same."""
        return View(same_length.text, self.start, self.end, self.pieces, self.whole, True, self.decoded, self.parent)

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        if self.whole:
            span = self.start, self.end
        else:
            span = self._to_source(start, end_side=False), self._to_source(end, end_side=True)
        return self.parent.source_span(*span) if self.parent is not None else span

    def _to_source(self, position: int, end_side: bool) -> int:
        if self._starts is None:
            self._starts = [piece[0] for piece in self.pieces]
        # last piece that starts before `position` (or at it, for a start)
        index = bisect_right(self._starts, position - 1 if end_side else position) - 1
        if index < 0:
            return self.start + position
        view_start, view_end, source_start, source_end = self.pieces[index]
        if position < view_end or (end_side and position == view_end):  # inside a changed piece
            return source_end if end_side else source_start
        return source_end + (position - view_end)


def _decoded(text: str, pattern: re.Pattern[str], decode, start: int = 0, end: int | None = None) -> View | None:
    """The view of text[start:end] with every `pattern` match replaced by decode(match); None if nothing changed."""
    end = len(text) if end is None else end
    parts: list[str] = []
    pieces = []
    last = start
    size = 0
    for match in pattern.finditer(text, start, end):
        replacement = decode(match)
        if replacement is None:
            continue
        parts.append(text[last:match.start()])
        size += match.start() - last
        pieces.append((size, size + len(replacement), match.start(), match.end()))
        parts.append(replacement)
        size += len(replacement)
        last = match.end()
    if not pieces:
        return None
    parts.append(text[last:end])
    return View("".join(parts), start, end, pieces, decoded=True)


def _json_char(match: re.Match[str]) -> str:
    escape = match.group()
    if escape[1] == "u":
        code = int(escape[2:], 16)
        return "\ufffd" if 0xD800 <= code < 0xE000 else chr(code)  # a lone surrogate cannot be encoded
    return JSON_SIMPLE[escape[1]]


def _url_char(match: re.Match[str]) -> str | None:
    escape = match.group()
    if escape in "?&#":
        return "\n"  # one parameter per line: scanners end a key at a line end, not at `&`
    code = int(escape[1:], 16)
    if code >= 0x80:
        return None
    return "\n" if chr(code) in "?&#" else chr(code)


def delimited_view(text: str) -> View | None:
    """For kingfisher only: its provider rules end a key at whitespace, a quote or `;`, so a key followed by `.`,
    `/`, `&`, `)`, `,`, `=` or any other character is missed; here every character that is not a letter, digit,
    `_`, `-`, `.` or whitespace is a space, and so is a `.` that ends a sentence (same length: offsets unchanged;
    base64 keys with `+`/`=` are found in the text itself)."""
    spaced = text.translate(DELIMITERS)
    if not spaced.isascii():
        spaced = NOT_ASCII.sub(" ", spaced)
    # `.` stays inside keys (`hvs.…`, `dp.pt.…`, JWTs) but not at a sentence's end
    spaced = spaced.replace(". ", "  ").replace(".\n", " \n")
    if spaced.endswith("."):
        spaced = spaced[:-1] + " "
    return None if spaced == text else View(spaced, 0, len(text), kingfisher_only=True)


def json_views(text: str) -> list[View]:
    """The JSON-unescaped text, and that unescaped once more where it still has escapes (JSON quoted inside a
    JSON string, as tool results often are: `\\\\n`)."""
    first = _decoded(text, JSON_ESCAPE, _json_char)
    if first is None:
        return []
    second = _decoded(first.text, JSON_ESCAPE, _json_char)
    if second is None:
        return [first]
    second.parent = first
    return [first, second]


def url_view(text: str) -> View | None:
    return _decoded(text, URL_ESCAPE, _url_char)


def joined_views(text: str) -> list[View]:
    """Keys wrapped across two lines: where the token ending a line looks like a key's half (8+ key characters,
    an upper-case letter or a digit among them), the two lines as one, the break (with a shell `\\`
    continuation and indentation) removed. Whole lines, so a rule that wants a name before the key sees it."""
    views = []
    for match in BREAK.finditer(text):
        cut = match.start()
        if cut > 0 and text[cut - 1] == "\r":
            cut -= 1
        if cut > 0 and text[cut - 1] == "\\":
            cut -= 1
        if cut < 8 or not HEAD.fullmatch(text, cut - 8, cut):
            continue
        left = cut
        while left > 0 and cut - left < MAX_TOKEN and text[left - 1] in TOKEN_CHARS:
            left -= 1
        head = text[left:cut]
        if len(head) < 8 or head.lower() == head and not any(c.isdigit() for c in head):
            continue  # a key's half has an upper-case letter or a digit; a word at a line's end rarely does
        start = max(text.rfind("\n", max(0, left - MAX_TOKEN), left) + 1, left - MAX_TOKEN, 0)
        end = text.find("\n", match.end(), match.end() + MAX_TOKEN)
        end = end if end != -1 else min(len(text), match.end() + MAX_TOKEN)
        joined = text[start:cut] + text[match.end():end]
        views.append(View(joined, start, end, [(cut - start, cut - start, cut, match.end())]))
    return views


def base64_views(text: str, blobs: list[str]) -> list[View]:
    """base64 blocks (`blobs`: the BASE64_RUN matches of `text`, found by polars) whose decoded bytes are
    `.env`-like text (KEY=value or key: value lines). Hex digests are base64-shaped but never such text: skipped
    before decoding."""
    views = []
    for blob in dict.fromkeys(blobs):
        if len(blob) > MAX_BASE64 or len(blob) % 4 or not blob.strip(HEX_DIGITS):
            continue
        try:
            decoded = base64.b64decode(blob, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if NOT_TEXT.search(decoded) or not ENV_LINE.search(decoded):
            continue
        at = text.find(blob)
        while at != -1:
            views.append(View(decoded, at, at + len(blob), whole=True))
            at = text.find(blob, at + len(blob))
    return views


def name_tail_views(text: str) -> list[View]:
    """A key glued to a name by `_` (`backup_sk-ant-….json`): the token after each inner `_` as a view of its
    own, where it starts at a word boundary. Only tokens that look random (upper, lower and 2 digits) qualify."""
    views = []
    for match in NAME_TAIL.finditer(text):
        at = match.end()
        value = EXTENSION.sub("", TOKEN_RUN.match(text, at).group()[:MAX_TOKEN])
        digits = sum(c.isdigit() for c in value)
        if len(value) < 16 or not (digits >= 2 and len(value) - digits >= 2 or value.lower() != value != value.upper()):
            continue
        views.append(View(value, at, at + len(value)))
    return views


BUILDERS = {
    "json": json_views,
    "url": lambda text: [v for v in (url_view(text),) if v],
    "joined": joined_views,
    "tail": name_tail_views,
}


def views_of(text: str, markers: list[str], blobs: list[str]) -> list[View]:
    """The decoded views of `text` for the markers it has (see MARKERS) and its base64 `blobs`."""
    views: list[View] = base64_views(text, blobs) if blobs else []
    for marker in markers:
        views.extend(BUILDERS[marker](text))
    return views
