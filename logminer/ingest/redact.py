"""Secrets and personal data → typed placeholders, in every text field of a Session, counted per kind.

Detection is kingfisher's maintained rule set (`kingfisher-secret-scanner`: the Betterleaks/gitleaks and Veles
provider rules, ~490 of them, compiled to one Rust/Vectorscan scan) plus our own rules for what it misses
(`secret_rules.py` lists them and why). Chosen by measured recall on the planted corpus and speed:
benchmarks/redaction_recall.py compares it with detect-secrets, Betterleaks' Go bindings and Microsoft's masker.

Every text is scanned as written AND as its decoded views (`secret_views.py`: JSON-unescaped (twice for JSON in
JSON), URL-decoded with one query parameter per line, base64 `.env` blocks, keys wrapped across two lines, tokens
glued to a name by `_`, and for kingfisher a copy with punctuation as spaces, since its rules end a key only at
whitespace, a quote or `;`); a finding in a view is mapped back to the span it was decoded from. This replaces
the old word-start fix-ups: a key after `\n` or `%3D` starts a word in the decoded view. Overlapping findings merge; each span becomes
<SECRET:kind>, <EMAIL> or <HOME>. Only key-shaped text is touched: UUIDs, git SHAs, `sha256:` digests and lockfile
hashes have no provider prefix and no secret-named key in front of them, so they survive (tests check every one of
them in the real logs).

Speed: work is batched. `redact_texts` takes many texts (a whole ingest batch of sessions): one polars pass finds
which views and which of our rules' trigger words each text needs, one kingfisher scan covers every text and view,
and Python regexes run only on the texts whose triggers they need.
"""

from __future__ import annotations

import gc
import json
import re
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import polars as pl

from logminer.ingest.secret_rules import (ASSIGNMENT_MARKER, SECRET_WORDS, TRIGGERS, rule_spans, secret_name,
                                         stated_secret)
from logminer.ingest.secret_scanner import kingfisher_spans
from logminer.ingest.secret_views import BASE64_RUN, MARKERS, View, delimited_view, views_of
from logminer.schema import Session

EMAIL = "<EMAIL>"
HOME = "<HOME>"
CACHED_TEXT = 2048
SECRET_WORD_SET = frozenset(SECRET_WORDS)
SMALL_BATCH = 16384  # characters; smaller batches are gated in Python
SMALL_MARKERS = {name: re.compile(pattern) for name, pattern in MARKERS.items()}
SMALL_BASE64 = re.compile(BASE64_RUN)
SMALL_ASSIGNMENT = re.compile(ASSIGNMENT_MARKER)
SURROGATE = re.compile("[\ud800-\udfff]")
Span = tuple[int, int, str, "str | None"]  # start, end, kind, placeholder (None: <SECRET:kind>)


def secret(kind: str) -> str:
    return f"<SECRET:{kind}>"


def _scannable(texts: list[str]) -> tuple[list[str], pl.Series | None]:
    """The texts as polars and kingfisher can take them (and as a polars Series unless the batch is small): a
    lone surrogate (JSON allows `\\ud800`) cannot be encoded, so it is scanned as U+FFFD (same length: the spans
    still fit the original)."""
    small = sum(map(len, texts)) <= SMALL_BATCH
    try:
        if small:
            for text in texts:
                text.encode("utf-8")
            return texts, None
        return texts, pl.Series(texts, dtype=pl.Utf8)
    except UnicodeEncodeError:
        texts = [SURROGATE.sub("\ufffd", text) for text in texts]
        return texts, None if small else pl.Series(texts, dtype=pl.Utf8)


def _markers(texts: list[str], series: pl.Series | None) -> list[tuple[list[str], list[str]]]:
    """Which decoded views each text needs, and its base64-shaped runs: polars (Rust regex) over the whole batch,
    all patterns in one `select`; for a small batch, Python's `re` (polars' per-call cost would dominate)."""
    if series is None:
        return [([name for name, pattern in SMALL_MARKERS.items() if pattern.search(text)],
                 SMALL_BASE64.findall(text)) for text in texts]
    frame = pl.DataFrame({"text": series}).select(
        *(pl.col("text").str.contains(pattern).alias(name) for name, pattern in MARKERS.items()),
        pl.col("text").str.extract_all(BASE64_RUN).alias("blobs"))
    flags = {name: frame[name].to_list() for name in MARKERS}
    blobs = frame["blobs"].to_list()
    return [([name for name in MARKERS if flags[name][index]], blobs[index] or []) for index in range(len(series))]


def _triggers(texts: list[str]) -> list[set[str]]:
    """The trigger words of our rules in each text (one Aho-Corasick pass over all of them, by polars; `in`
    tests for a small batch); the key words only where ASSIGNMENT_MARKER says a key/value pair can follow them."""
    if sum(map(len, texts)) <= SMALL_BATCH:
        triggers = []
        for text in texts:
            lowered = text.lower()
            words = {trigger for trigger in TRIGGERS if trigger in lowered}
            if words and not SMALL_ASSIGNMENT.search(text):
                words -= SECRET_WORD_SET
            triggers.append(words)
        return triggers
    frame = pl.DataFrame({"text": pl.Series(texts, dtype=pl.Utf8)}).select(
        pl.col("text").str.extract_many(list(TRIGGERS), overlapping=True, ascii_case_insensitive=True)
        .list.unique().alias("found"),
        pl.col("text").str.contains(ASSIGNMENT_MARKER).alias("assigned"))
    triggers = []
    for hits, assignment in zip(frame["found"].to_list(), frame["assigned"].to_list()):
        words = {hit.lower() for hit in hits} if hits else set()
        if words and not assignment:
            words -= SECRET_WORD_SET
        triggers.append(words)
    return triggers


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters grow when lowered; the key words are ASCII
        lowered = "".join(c.lower() if c.isascii() else c for c in text)
    return lowered


def find_spans(texts: list[str], decoded_views: bool = True, kingfisher: bool = True) -> list[list[Span]]:
    """Every secret / personal-data span of each text, from the text itself and from its decoded views (the two
    switches are for benchmarks/redaction_recall.py, which measures what each part adds)."""
    texts, series = _scannable(texts)
    units: list[str] = list(texts)  # texts, then views
    owners: list[tuple[int, View | None]] = [(index, None) for index in range(len(texts))]
    for index, (needed, blobs) in enumerate(_markers(texts, series) if decoded_views else ()):
        for view in views_of(texts[index], needed, blobs) if needed or blobs else ():
            units.append(view.text)
            owners.append((index, view))
    ours = len(units)  # the views after these are delimited copies, for kingfisher only: of each text's most
    # decoded JSON / URL views (a view's decoding holds the text's words too), or of the text where it has none
    if decoded_views and kingfisher:
        decoded = [(index, view) for index, view in owners if view is not None and view.decoded]
        parents = {id(view.parent) for _, view in decoded if view.parent is not None}
        leaves: dict[int, list[View]] = {}
        for index, view in decoded:
            if id(view) not in parents:
                leaves.setdefault(index, []).append(view)
        for index, text in enumerate(texts):
            for view in leaves.get(index, [None]):
                spaced = delimited_view(view.text if view else text)
                if spaced is not None:
                    units.append(spaced.text)
                    owners.append((index, view.chain(spaced) if view else spaced))
    found = _triggers(units[:ours]) + [set()] * (len(units) - ours)
    scanned = kingfisher_spans(units) if kingfisher else [[] for _ in units]
    spans: list[list[Span]] = [[] for _ in texts]
    for unit, (index, view), hits, theirs in zip(units, owners, found, scanned):
        # ours first: on the same span our kind is kept (a kingfisher kind can depend on other texts of the batch,
        # e.g. an AWS key id is reported as `aws_access_token` only with a secret key somewhere in the same scan)
        unit_spans = (rule_spans(unit, _lower(unit), hits) if hits else []) + theirs
        for start, end, kind, placeholder in unit_spans:
            if view is not None:
                start, end = view.source_span(start, end)
            spans[index].append((start, end, kind, placeholder))
    return spans


def _replace(text: str, spans: list[Span], counts: Counter[str]) -> str:
    """`text` with the union of `spans` replaced, one placeholder (of the earliest, longest span) per merged run.
    An e-mail-shaped span that overlaps a secret is the secret's (`://user:pw@host`: the password, not a mail)."""
    if not spans:
        return text
    secrets = [span for span in spans if span[3] != EMAIL]
    if len(secrets) < len(spans):
        spans = secrets + [e for e in spans if e[3] == EMAIL and not any(s[0] < e[1] and e[0] < s[1] for s in secrets)]
        if not spans:
            return text
    spans.sort(key=lambda span: (span[0], -span[1]))
    pieces: list[str] = []
    last = 0
    run_start, run_end, kind, placeholder = spans[0]
    for start, end, next_kind, next_placeholder in spans[1:] + [(len(text) + 1, len(text) + 1, "", None)]:
        if start < run_end:
            run_end = max(run_end, end)
            continue
        pieces += [text[last:run_start], placeholder or secret(kind)]
        counts[kind] += 1
        last = run_end
        run_start, run_end, kind, placeholder = start, end, next_kind, next_placeholder
    return "".join(pieces) + text[last:]


def redact_texts(texts: list[str], counts: Counter[str] | None = None, **parts: bool) -> list[str]:
    """Every text with every secret and personal datum replaced; `counts` gains one per replacement. `parts`
    (decoded_views, kingfisher: both on by default) switch parts off for measuring them."""
    tally: Counter[str] = counts if counts is not None else Counter()
    if not texts:
        return []
    with _no_gc_pauses():
        return [_replace(text, spans, tally) for text, spans in zip(texts, find_spans(texts, **parts))]


def redact_text(text: str, counts: Counter[str] | None = None) -> str:
    """`text` with every secret and personal datum replaced; `counts` (if given) gains one per replacement.
    Short texts are remembered: reports redact the same paths and reasons once per record."""
    if not text:
        return text
    if len(text) > CACHED_TEXT:
        return redact_texts([text], counts)[0]
    out, found = _redact_short(text)
    if counts is not None:
        counts.update(dict(found))
    return out


@lru_cache(maxsize=8192)
def _redact_short(text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    counts: Counter[str] = Counter()
    out = redact_texts([text], counts)[0]
    return out, tuple(counts.items())


class _Batch:
    """Strings gathered from many values (sessions, JSON documents), redacted in one `redact_texts` call, then
    written back: `add` returns a slot, `get` its redacted string after `run`."""

    def __init__(self, counts: Counter[str]) -> None:
        self.total = counts  # gains this batch's counts only once it has run (a failed batch counts nothing)
        self.counts: Counter[str] = Counter()
        self.texts: list[str] = []
        self.done: list[str] = []

    def add(self, text: str) -> int:
        self.texts.append(text)
        return len(self.texts) - 1

    def add_value(self, value: Any) -> Any:
        """A JSON-like value's strings queued (dict keys too); returns a template to `fill` after `run`. A string
        under a secret-named key (`"password": …`, `"OPENAI_API_KEY": …`) is replaced whatever its shape."""
        if isinstance(value, str):
            return _Slot(self.add(value))
        if isinstance(value, list):
            return [self.add_value(item) for item in value]
        if isinstance(value, dict):
            template = {}
            for key, item in value.items():
                key = str(key)
                if isinstance(item, str) and secret_name(key) and stated_secret(item):
                    self.counts["password" if "pass" in key.lower() else "secret_value"] += 1
                    item = secret("password" if "pass" in key.lower() else "secret_value")
                template[_Slot(self.add(key))] = self.add_value(item)
            return _Template(template)
        return value

    def run(self) -> None:
        self.done = redact_texts(self.texts, self.counts)
        self.total.update(self.counts)

    def get(self, slot: int) -> str:
        return self.done[slot]

    def fill(self, template: Any) -> Any:
        if isinstance(template, _Slot):
            return self.done[template.index]
        if isinstance(template, list):
            return [self.fill(item) for item in template]
        if isinstance(template, _Template):
            return {self.done[key.index]: self.fill(item) for key, item in template.items.items()}
        return template


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Template:
    __slots__ = ("items",)

    def __init__(self, items: dict) -> None:
        self.items = items


def redact_value(value: Any, counts: Counter[str]) -> Any:
    """Strings inside JSON-like values (dict keys included), structure kept."""
    batch = _Batch(counts)
    template = batch.add_value(value)
    batch.run()
    return batch.fill(template)


def redact_json(value: Any) -> Any:
    """A report or manifest with every string it quotes redacted (keys too); hashes and counts survive. The last
    pass before such a file is written, so a name taken from a path, a recipe or an option cannot leak."""
    return redact_value(value, Counter())


def _arguments_template(batch: _Batch, arguments: str, valid: bool) -> tuple[str, Any]:
    """Tool-call arguments: valid JSON is redacted inside its keys and string values and stays valid JSON."""
    if valid:
        try:
            return "json", batch.add_value(json.loads(arguments))
        except json.JSONDecodeError:
            pass
    return "text", _Slot(batch.add(arguments))


def _fill_arguments(batch: _Batch, template: tuple[str, Any]) -> str:
    how, value = template
    if how == "text":
        return batch.fill(value)
    return json.dumps(batch.fill(value), sort_keys=True, ensure_ascii=False)


def redact_arguments(arguments: str, valid: bool, counts: Counter[str]) -> str:
    batch = _Batch(counts)
    template = _arguments_template(batch, arguments, valid)
    batch.run()
    return _fill_arguments(batch, template)


@contextmanager
def _no_gc_pauses():
    """The cyclic garbage collector off while a batch allocates its many small, acyclic objects: with a batch of
    sessions alive, each collection walks all of them, which doubled redaction's time (measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def redact_sessions(sessions: Iterable[Session], counts: Counter[str] | None = None) -> None:
    """Redact every text field of every session in place (turns, reasoning, tool calls, tools, metadata, paths,
    ids), all of them in one batch (see the module doc)."""
    with _no_gc_pauses():
        _redact_sessions(sessions, counts)


def _redact_sessions(sessions: Iterable[Session], counts: Counter[str] | None) -> None:
    batch = _Batch(counts if counts is not None else Counter())
    plans = []
    for session in sessions:
        turns = [(batch.add(t.text), batch.add(t.reasoning), batch.add(t.name) if t.name else None,
                  [(batch.add(c.name), _arguments_template(batch, c.arguments, c.arguments_valid))
                   for c in t.tool_calls]) for t in session.turns]
        fields = {name: batch.add(getattr(session, name)) for name in
                  ("source_file", "session_id", "parent_session_id", "model") if getattr(session, name)}
        plans.append((session, turns, fields, batch.add_value(session.tools), batch.add_value(session.metadata)))
    batch.run()
    for session, turns, fields, tools, metadata in plans:
        for turn, (text, reasoning, name, calls) in zip(session.turns, turns):
            turn.text, turn.reasoning = batch.get(text), batch.get(reasoning)
            if name is not None:
                turn.name = batch.get(name)
            for call, (call_name, arguments) in zip(turn.tool_calls, calls):
                call.name = batch.get(call_name)
                call.arguments = _fill_arguments(batch, arguments)
        for name, slot in fields.items():
            setattr(session, name, batch.get(slot))
        session.tools, session.metadata = batch.fill(tools), batch.fill(metadata)


def redact_session(session: Session, counts: Counter[str] | None = None) -> Session:
    """Redact one session in place (for many, `redact_sessions` is faster: one batch)."""
    redact_sessions([session], counts)
    return session
