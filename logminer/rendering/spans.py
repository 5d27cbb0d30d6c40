"""Character spans of each rendered part of a session, with its kind, taken from the chat-template rendering itself.

The session is rendered twice through the same code path (`render_session`): once as is, once with every part (turn
text, reasoning, tool-result text, tool-call name) replaced by a unique ASCII marker. Everything the template adds
around the parts (turn headers, tool definitions, separators) is then the text between markers, and the real
rendering is matched against it piece by piece, so each span is exactly where the template put the part. Templates
that `trim` a part are matched with the trimmed text; a part the template leaves out (the bundled ChatML template
drops assistant tool calls) has no span. A tool call's span runs from the start of the line holding its
name to the end of its rendered arguments and closing tag (`<tool_call>{"name": …, "arguments": …}</tool_call>`), so
a model that is given the text before the span has to write the whole call.

Kinds: system, user, assistant (assistant text), tool_call, tool_result, reasoning, and template for everything in
between. The spans tile the text: sorted, contiguous, from 0 to len(text), no empty span.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from logminer.rendering.chat import RenderError, render_session
from logminer.schema import Session, ToolCall

KINDS = ("template", "system", "user", "assistant", "tool_call", "tool_result", "reasoning")
TEXT_KIND = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool_result"}
_MARKER = "@@calibkit-part-{}@@"
_MARKER_PATTERN = re.compile(r"@@calibkit-part-(\d+)@@")
_CLOSERS = re.compile(r"[\]}\"]*(?:\s*</[\w.:-]+>)?")


class SpanError(ValueError):
    """The marked rendering does not line up with the real one (a template that branches on part text);
    `text` holds the real rendering."""

    def __init__(self, message: str, text: str = ""):
        super().__init__(message)
        self.text = text


@dataclass(frozen=True)
class Span:
    kind: str
    start: int  # character offsets into the rendered text, end exclusive
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class _Part:
    kind: str
    text: str
    call: ToolCall | None = None


def render_with_spans(session: Session, tokenizer: Any = None, *,
                      include_reasoning: bool = False) -> tuple[str, list[Span]]:
    """(rendered text, spans tiling it); SpanError when the template renders the parts in a way we cannot place."""
    text = render_session(session, tokenizer, include_reasoning=include_reasoning)
    marked, parts = _marked_session(session, include_reasoning)
    try:
        skeleton = render_session(marked, tokenizer, include_reasoning=include_reasoning)
        return text, _align(text, skeleton, parts, f"{session.source_file} session {session.session_id}")
    except (SpanError, RenderError) as error:
        raise SpanError(str(error), text) from error


def clip_spans(spans: list[Span], length: int) -> list[Span]:
    """The spans of text[:length] (e.g. after the split's rstrip)."""
    return [Span(s.kind, s.start, min(s.end, length)) for s in spans if s.start < length]


def _marked_session(session: Session, include_reasoning: bool) -> tuple[Session, list[_Part]]:
    parts: list[_Part] = []

    def mark(kind: str, text: str, call: ToolCall | None = None) -> str:
        if not text:  # empty parts stay empty: templates branch on emptiness
            return text
        parts.append(_Part(kind, text, call))
        return _MARKER.format(len(parts) - 1)

    turns = []
    for turn in session.turns:
        reasoning = mark("reasoning", turn.reasoning) if include_reasoning else turn.reasoning
        text = mark(TEXT_KIND[turn.role], turn.text)
        calls = [dataclasses.replace(call, name=mark("tool_call", call.name, call)) for call in turn.tool_calls]
        turns.append(dataclasses.replace(turn, text=text, reasoning=reasoning, tool_calls=calls))
    return dataclasses.replace(session, turns=turns), parts


def _align(text: str, skeleton: str, parts: list[_Part], where: str) -> list[Span]:
    pieces = _MARKER_PATTERN.split(skeleton)  # markup, id, markup, id, ..., markup
    markup, ids = pieces[0::2], [int(i) for i in pieces[1::2]]
    if len(set(ids)) != len(ids) or any(i >= len(parts) for i in ids):
        raise SpanError(f"{where}: the template renders a part more than once")
    if not text.startswith(markup[0]):
        raise SpanError(f"{where}: rendering starts differently with marked parts")
    pos, found = len(markup[0]), []
    for k, ident in enumerate(ids):
        part, after = parts[ident], markup[k + 1]
        placed = _place(text, pos, part.text, after)
        if placed is None:
            raise SpanError(f"{where}: cannot place {part.kind} part {ident} at character {pos}")
        candidate, after = placed
        found.append((part, pos, pos + len(candidate), after))
        pos += len(candidate) + len(after)
    if pos != len(text):
        raise SpanError(f"{where}: {len(text) - pos} characters left over after the last part")
    placed, previous_end = [], 0
    for part, start, end, after in found:
        kind, start, end = _extend_call(text, part, start, end, after, previous_end)
        placed.append((kind, start, end))
        previous_end = end
    return _tile(placed, len(text))


def _place(text: str, pos: int, part: str, after: str) -> tuple[str, str] | None:
    """(the part as rendered, the markup after it as rendered) at `pos`: the part as is or trimmed; a part of only
    whitespace that a template's `trim` removed takes the leading whitespace of the markup after it along."""
    pairs = [(candidate, after) for candidate in dict.fromkeys((part, part.strip(), part.rstrip(), part.lstrip()))]
    if not part.strip():
        pairs.append(("", after.lstrip()))
    for candidate, rendered_after in pairs:
        if text.startswith(candidate, pos) and text.startswith(rendered_after, pos + len(candidate)):
            return candidate, rendered_after
    return None


def _extend_call(text: str, part: _Part, start: int, end: int, after: str,
                 previous_end: int) -> tuple[str, int, int]:
    """A part's (kind, start, end); a tool call widened from its name to the whole call (module docstring), never
    back over the part before it."""
    if part.call is None:
        return part.kind, start, end
    name_end = end
    start = max(previous_end, text.rfind("\n", previous_end, start) + 1)
    located = [(after.find(form), form) for form in _argument_forms(part.call) if form and form in after]
    if located:
        index, form = min(located)
        end += index + len(form)
        end = min(_CLOSERS.match(text, end).end(), name_end + len(after))
    else:  # arguments rendered in a form we do not know: the call ends with the line that names it
        line_end = text.find("\n", end, end + len(after))
        end = line_end if line_end >= 0 else end + len(after)
    return "tool_call", start, end


def _argument_forms(call: ToolCall) -> list[str]:
    """How templates write arguments: as stored, or re-serialised by `tojson` (with or without ASCII escapes)."""
    forms = [call.arguments]
    try:
        value = json.loads(call.arguments)
    except json.JSONDecodeError:
        return forms
    forms += [json.dumps(value, ensure_ascii=False), json.dumps(value), json.dumps(value, ensure_ascii=False,
                                                                                       separators=(",", ":"))]
    return forms


def _tile(parts: list[tuple[str, int, int]], length: int) -> list[Span]:
    """Spans for the parts plus `template` spans for every gap, in order, empty spans dropped."""
    spans, pos = [], 0
    for kind, start, end in parts:
        if start > pos:
            spans.append(Span("template", pos, start))
        if end > start:
            spans.append(Span(kind, start, end))
        pos = max(pos, end)
    if pos < length:
        spans.append(Span("template", pos, length))
    return spans


def render_document(session: Session, tokenizer: Any = None, *,
                    include_reasoning: bool = False) -> tuple[str, list[dict[str, Any]] | None]:
    """The split's document: the rendering with trailing whitespace stripped, and its spans as dicts (None when the
    template's output cannot be lined up with the parts, see SpanError; RenderError propagates)."""
    try:
        text, spans = render_with_spans(session, tokenizer, include_reasoning=include_reasoning)
    except SpanError as error:
        return error.text.rstrip(), None
    stripped = text.rstrip()
    return stripped, [span.as_dict() for span in clip_spans(spans, len(stripped))]
