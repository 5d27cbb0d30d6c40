"""Tool-call parsing and agreement counting, without a model."""

from __future__ import annotations

from imatrix.llamacpp.tool_calls import parse_tool_call


def test_parse_tool_call_reads_the_common_layouts():
    assert parse_tool_call('<tool_call>{"name": "ls", "arguments": {"path": "."}}</tool_call>') == ("ls", {"path": "."})
    assert parse_tool_call('x {"broken": 1} {"name": "f", "parameters": {"a": [1]}}') == ("f", {"a": [1]})
    assert parse_tool_call('{"name": "g", "arguments": "{\\"q\\": 2}"}') == ("g", {"q": 2})
    assert parse_tool_call('{"name": "g", "arguments": {"q": ') is None
    assert parse_tool_call("no call here") is None
