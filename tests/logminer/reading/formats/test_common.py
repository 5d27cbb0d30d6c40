"""Shared message mappings, checked on hand-built messages: OpenAI chat messages (typed parts, tool calls, legacy
function_call, reasoning fields), Anthropic blocks (thinking, tool_use, tool_result), Responses items, tool
definitions and the positional linking of id-less tool results."""

from __future__ import annotations

from logminer.reading.formats.common import (
    NON_TEXT_DROPPED,
    ResponsesTurns,
    anthropic_turns,
    link_tool_results,
    normal_role,
    openai_message_turn,
    parts_text,
    session_flags,
    tool_definitions,
)
from logminer.schema import BROKEN_TOOL_JSON, ToolCall, Turn


def test_roles_and_parts():
    assert [normal_role(r) for r in ("developer", "human", "model", "function", "observer", 3)] == [
        "system", "user", "assistant", "tool", None, None]
    flags: set[str] = set()
    parts = [{"type": "text", "text": "a"}, {"type": "input_text", "text": "b"}, {"type": "image_url", "url": "x"}]
    assert parts_text(parts, flags) == "a\nb" and flags == {NON_TEXT_DROPPED}


def test_openai_message_with_every_kind_of_call_and_reasoning():
    flags: set[str] = set()
    message = {"role": "assistant", "content": [{"type": "text", "text": "let me look"},
                                                {"type": "reasoning", "value": "the file is big"}],
               "reasoning_content": "first thought",
               "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": '{"p": 1}'}},
                              {"id": "c2", "function": {"name": "bad", "arguments": "{oops"}}],
               "function_call": {"name": "legacy", "arguments": {"z": 1, "a": 2}}}
    turn = openai_message_turn(message, flags)
    assert (turn.role, turn.text, turn.reasoning) == ("assistant", "let me look", "first thought\n\nthe file is big")
    assert [(c.name, c.arguments, c.id, c.arguments_valid) for c in turn.tool_calls] == [
        ("read", '{"p": 1}', "c1", True), ("bad", "{oops", "c2", False), ("legacy", '{"a": 2, "z": 1}', None, True)]
    assert flags == {BROKEN_TOOL_JSON}
    tool = openai_message_turn({"role": "tool", "content": "42", "tool_call_id": "c1", "name": "read"}, set())
    assert (tool.role, tool.text, tool.tool_call_id, tool.name, tool.tool_calls) == ("tool", "42", "c1", "read", [])
    assert openai_message_turn({"role": "narrator", "content": "x"}, set()) is None


def test_anthropic_blocks():
    flags: set[str] = set()
    names: dict[str, str] = {}
    [assistant] = anthropic_turns("assistant", [
        {"type": "thinking", "thinking": "plan"}, {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "running it"}, {"type": "tool_use", "id": "t1", "name": "bash", "input": {"c": "ls"}}],
        flags, names)
    assert (assistant.text, assistant.reasoning, assistant.tool_calls) == (
        "running it", "plan", [ToolCall("bash", '{"c": "ls"}', "t1")])
    user = anthropic_turns("user", [{"type": "text", "text": "before"},
                                    {"type": "tool_result", "tool_use_id": "t1", "content": "a.py", "is_error": True},
                                    {"type": "text", "text": "after"}], flags, names)
    assert [(t.role, t.text, t.name, t.is_error) for t in user] == [
        ("user", "before", None, False), ("tool", "a.py", "bash", True), ("user", "after", None, False)]
    assert flags == set()


def test_responses_items():
    builder = ResponsesTurns()
    items = [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
             {"type": "message", "role": "user", "content": "fix it"},
             {"type": "reasoning", "summary": [{"type": "summary_text", "text": "look first"}]},
             {"type": "function_call", "name": "shell", "arguments": '{"cmd": ["ls"]}', "call_id": "k1"},
             {"type": "function_call_output", "call_id": "k1", "output": {"output": "a.py", "metadata": {}}},
             {"type": "custom_tool_call", "name": "apply_patch", "input": "*** patch", "call_id": "k2"},
             {"type": "ghost_snapshot"}]
    assert [builder.add(item) for item in items] == [None] * len(items)
    assert builder.add({"type": "hologram"}) == "unknown Responses item type 'hologram'"
    turns = builder.turns
    assert [(t.role, t.text) for t in turns] == [("system", "rules"), ("user", "fix it"), ("assistant", ""),
                                                ("tool", "a.py"), ("assistant", "")]
    assert turns[2].reasoning == "look first" and turns[3].name == "shell"
    assert turns[4].tool_calls == [ToolCall("apply_patch", '{"input": "*** patch"}', "k2")]


def test_tool_definitions_and_linking():
    flat = {"name": "f", "description": "d", "input_schema": {"type": "object"}}
    nested = {"type": "function", "function": {"name": "g", "parameters": {}}}
    assert tool_definitions([flat, nested, "junk"]) == [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}, nested]
    assert tool_definitions('[{"name": "h"}]')[0]["function"]["name"] == "h" and tool_definitions("{bad") == []
    turns = [Turn("assistant", tool_calls=[ToolCall("a", "{}"), ToolCall("b", "{}")]), Turn("tool", "ra"),
             Turn("tool", "rb"), Turn("assistant", tool_calls=[ToolCall("c", "{}", id="x")]),
             Turn("tool", "rc", tool_call_id="x")]
    link_tool_results(turns)
    assert [(t.tool_call_id, t.name) for t in turns if t.role == "tool"] == [
        ("call_1", "a"), ("call_2", "b"), ("x", "c")]
    assert session_flags([Turn("assistant", tool_calls=[ToolCall("a", "{", arguments_valid=False)])], {"z"}) == [
        BROKEN_TOOL_JSON, "z"]
