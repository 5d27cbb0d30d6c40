"""Tool-call parsing and agreement counting, without a model."""

from __future__ import annotations

import pytest

from imatrix.llamacpp.scoring import Document
from imatrix.llamacpp.tool_calls import (
    CallResult,
    CallSite,
    agreement,
    call_sites,
    parse_tool_call,
)


def test_parse_tool_call_reads_the_common_layouts():
    assert parse_tool_call('<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call>') == ("ls", {"path": "."})
    assert parse_tool_call('x {"broken": 1} {"name": "f", "parameters": {"a": [1]}}') == ("f", {"a": [1]})
    assert parse_tool_call('{"name": "g", "arguments": "{\\"q\\": 2}"}') == ("g", {"q": 2})
    assert parse_tool_call('{"name": "g", "arguments": {"q": ') is None
    assert parse_tool_call("no call here") is None


def test_call_sites_come_from_tool_call_spans_with_the_logged_call_parsed():
    text = 'hi\n{"name": "ls", "arguments": {"p": "."}}\nthen\nbash: not json'
    first = text.index("{")
    spans = (("user", 0, 3), ("tool_call", first, text.index("\nthen")), ("tool_call", text.index("bash"), len(text)))
    sites = call_sites([Document(text, spans, "s0"), Document("plain", (), "s1")])
    assert sites == [CallSite(0, first, text.index("\nthen"), ("ls", {"p": "."})),
                     CallSite(0, text.index("bash"), len(text), None)]


def test_agreement_counts_same_calls_and_shared_silence_against_the_reference_and_the_log():
    logged, unparsed = CallSite(0, 0, 1, ("ls", {"p": "."})), CallSite(0, 2, 3, None)
    results = [CallResult(logged, {"ref": ("ls", {"p": "."}), "q": ("ls", {"p": ".."})}),
               CallResult(unparsed, {"ref": None, "q": None}),
               CallResult(logged, {"ref": ("cat", {}), "q": ("ls", {"p": "."})})]
    assert agreement(results, "ref", "q") == {
        "calls": 3, "parsed": 2, "agree_reference": 1, "agree_reference_pct": pytest.approx(100 / 3),
        "logged_parseable": 2, "match_logged": 1, "match_logged_pct": 50.0}
    assert agreement([], "ref", "q")["agree_reference_pct"] is None
