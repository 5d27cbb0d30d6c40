"""Role spans come out of the rendering exactly: for every bundled template, the plain fallback and a Hugging Face
template with native tool calls, on every example log and the real logs, the spans tile the text and each span's
text is its part."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from logminer.reading.detect import read_inputs
from logminer.rendering.spans import (
    KINDS,
    SpanError,
    render_document,
    render_with_spans,
)
from logminer.rendering.templates import TEMPLATES_BY_NAME
from logminer.schema import Session, ToolCall, Turn
from tests.logminer.rendering.test_chat import sample_session, tiny_tokenizer

# A Hugging Face style template written for this test (Hermes / Qwen layout): system+tools block, native
# `tool_calls` with `tojson` arguments, consecutive tool results in one user turn.
HF_TOOL_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\n' }}{% if messages[0].role == 'system' %}"
    "{{ messages[0].content + '\\n\\n' }}{% endif %}{{ '# Tools\\n<tools>' }}{% for tool in tools %}"
    "{{ '\\n' + (tool | tojson) }}{% endfor %}{{ '\\n</tools><|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{ '<|im_start|>assistant' }}"
    "{% if message.content %}{{ '\\n' + message.content }}{% endif %}"
    "{%- for call in message.tool_calls or [] %}{{ '\\n<tool_call>\\n{\"name\": \"' + call.function.name + "
    "'\", \"arguments\": ' }}{% if call.function.arguments is string %}{{ call.function.arguments }}"
    "{% else %}{{ call.function.arguments | tojson }}{% endif %}{{ '}\\n</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}"
    "{{ '<|im_start|>user' }}{% endif %}{{ '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\\n' }}{% endif %}"
    "{%- endif %}{%- endfor %}"
)
TEMPLATES = {"plain": None, **{name: name for name in TEMPLATES_BY_NAME}, "hf-tool-calls": HF_TOOL_TEMPLATE}


def _tokenizer(template):
    if template is None:
        return None
    return tiny_tokenizer(TEMPLATES_BY_NAME.get(template, template))


def _sessions(folder) -> list[Session]:
    return [event for _, _, event in read_inputs([str(folder)]) if isinstance(event, Session)]


def _parsed(call: ToolCall):
    return call.name, json.loads(call.arguments)


def assert_spans_exact(session: Session, tokenizer, include_reasoning: bool = False) -> dict[str, int]:
    """The spans tile the text; text, reasoning and tool-result spans are their parts (or the part trimmed, for
    templates that trim); each tool-call span holds exactly the logged call; returns span counts by kind."""
    from imatrix.llamacpp.tool_calls import parse_tool_call

    text, spans = render_with_spans(session, tokenizer, include_reasoning=include_reasoning)
    assert spans[0].start == 0 and spans[-1].end == len(text)
    assert all(a.end == b.start for a, b in pairwise(spans)) and all(s.end > s.start for s in spans)
    assert {s.kind for s in spans} <= set(KINDS)
    content = [s for s in spans if s.kind not in ("template", "tool_call")]
    expected = [(kind, part) for turn in session.turns for kind, part in (
        ("reasoning", turn.reasoning if include_reasoning else ""),
        ({"tool": "tool_result"}.get(turn.role, turn.role), turn.text)) if part]
    remaining = list(content)
    for kind, part in expected:
        span = remaining[0] if remaining else None
        if span and span.kind == kind and text[span.start:span.end] in (part, part.strip(), part.rstrip(),
                                                                        part.lstrip()):
            remaining.pop(0)
        else:  # only a part of whitespace may vanish (a template's trim)
            assert not part.strip(), (kind, part[:80], span)
    assert not remaining
    calls = [call for turn in session.turns for call in turn.tool_calls]
    call_spans = [s for s in spans if s.kind == "tool_call"]
    if call_spans:  # a template may leave tool calls out entirely (the bundled ChatML does)
        assert len(call_spans) == len(calls)
        for call, span in zip(calls, call_spans):
            if call.arguments_valid:
                assert parse_tool_call(text[span.start:span.end]) == _parsed(call)
            assert call.name in text[span.start:span.end]
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.kind] = counts.get(span.kind, 0) + 1
    return counts


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_spans_tile_every_example_session(name, example_logs):
    tokenizer = _tokenizer(TEMPLATES[name])
    sessions = _sessions(example_logs)
    assert len(sessions) >= 30
    totals: dict[str, int] = {}
    for session in sessions:
        for kind, count in assert_spans_exact(session, tokenizer).items():
            totals[kind] = totals.get(kind, 0) + count
    assert totals["user"] and totals["assistant"] and totals["tool_result"] and totals["system"]
    if name != "chatml":
        assert totals["tool_call"] >= 50


def test_reasoning_spans_for_both_reasoning_paths():
    session = sample_session()
    own = "{% for m in messages %}<{{ m.role }}>{{ m.reasoning_content }}|{{ m.content }}{% endfor %}"
    for template in (None, "gemma", own):
        counts = assert_spans_exact(session, _tokenizer(template), include_reasoning=True)
        assert counts["reasoning"] == 1


def test_parts_that_look_like_markup_are_placed_where_the_template_put_them():
    """A user text equal to template markup ('user') must not be matched inside `<start_of_turn>user`."""
    session = Session("s", "test", "f", turns=[Turn("user", "user"), Turn("assistant", "model"),
                                              Turn("user", "<end_of_turn>")])
    text, spans = render_with_spans(session, _tokenizer("gemma"))
    user = [s for s in spans if s.kind == "user"]
    assert [text[s.start:s.end] for s in user] == ["user", "<end_of_turn>"]
    assert text[user[0].start - len("<start_of_turn>user\n"):user[0].start] == "<start_of_turn>user\n"


def test_document_spans_are_clipped_to_the_stripped_text():
    session = Session("s", "test", "f", turns=[Turn("user", "hello  \n\n")])
    text, spans = render_document(session, None)
    assert text == render_with_spans(session, None)[0].rstrip()
    assert spans[-1]["end"] == len(text) and all(s["end"] <= len(text) for s in spans)


def test_a_template_that_renders_a_part_twice_gives_no_spans():
    twice = "{% for m in messages %}{{ m.content }}|{{ m.content }}{% endfor %}"
    session = Session("s", "test", "f", turns=[Turn("user", "hello")])
    with pytest.raises(SpanError):
        render_with_spans(session, _tokenizer(twice))
    assert render_document(session, _tokenizer(twice)) == ("hello|hello", None)


@pytest.mark.slow
def test_spans_tile_the_real_logs(real_logs):
    sessions = _sessions(real_logs)
    assert len(sessions) > 50
    for name in ("plain", "gemma", "hf-tool-calls"):
        tokenizer = _tokenizer(TEMPLATES[name])
        for session in sessions:
            assert_spans_exact(session, tokenizer)


def test_calls_written_back_to_back_get_one_span_each():
    glued = ("{% for m in messages %}{{ m.content }}{% for c in m.tool_calls or [] %}"
             "{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}"
             "{% endfor %}{% endfor %}")
    calls = [ToolCall("a", json.dumps({"x": 1})), ToolCall("b", json.dumps({"y": [2]}))]
    session = Session("s", "test", "f", turns=[Turn("user", "go"), Turn("assistant", "", tool_calls=calls)])
    text, spans = render_with_spans(session, _tokenizer(glued))
    call_spans = [text[s.start:s.end] for s in spans if s.kind == "tool_call"]
    assert call_spans == ['{"name": "a", "arguments": {"x": 1}}', '{"name": "b", "arguments": {"y": [2]}}']
    assert all(a.end == b.start for a, b in pairwise(spans))
