"""ShareGPT reader: from/value turns, function_call / observation pairs, tools given as a JSON string."""

from __future__ import annotations

import json

from logminer.reading.formats import sharegpt
from logminer.reading.sources import SourceFile
from logminer.schema import Session


def parse(path) -> list:
    return list(sharegpt.parse(SourceFile.open(path)))


def test_fixture(example_logs):
    path = example_logs / "sharegpt" / "currency_demo.json"
    assert sharegpt.sniff(SourceFile.open(path))
    currency, octopus = parse(path)
    assert "".join(t.role[0] for t in currency.turns) == "suata"
    call = currency.turns[2].tool_calls[0]
    assert (call.name, json.loads(call.arguments)) == ("convert_currency", {"amount": 100, "from": "USD", "to": "EUR"})
    assert currency.turns[3].tool_call_id == call.id == "call_1" and currency.turns[3].name == "convert_currency"
    assert currency.tools[0]["function"]["name"] == "convert_currency"
    assert [t.text for t in octopus.turns] == ["Tell me a fun fact about octopuses.", "Octopuses have three hearts."]
    assert (currency.line_start, octopus.line_end) == (2, len(path.read_text().splitlines()) - 1)


def test_jsonl_with_bad_entries(tmp_path):
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    broken_call = {"conversations": [{"from": "human", "value": "go"}, {"from": "function_call", "value": "{oops"}]}
    unknown = {"conversations": [{"from": "narrator", "value": "..."}]}
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in (good, broken_call, unknown)) + "\n{\n")
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Session", "Session", "Rejected", "Rejected"]
    assert events[1].flags == ["broken_tool_json"] and events[1].turns[1].tool_calls[0].arguments == "{oops"
    assert (events[2].line, events[3].line) == (3, 4)


# Real file (LLaMA-Factory glaive_toolcall_en_demo.json, a JSON array), counted with jq:
#   sessions: jq length F → 300
#   turns:    jq '[.[].conversations|length]|add' F → 1914 (no `system` keys: jq '[.[]|select(.system)]|length' → 0)
#   calls:    jq '[.[].conversations[]|select(.from=="function_call")]|length' F → 211, none a list of calls
def test_real_glaive_demo(real_logs):
    path = real_logs / "sharegpt-toolcall" / "llamafactory_glaive_toolcall_en_demo.json"
    events = parse(path)
    found = [e for e in events if isinstance(e, Session)]
    assert len(found) == 300 and sum(e.records for e in events) == 300
    assert sum(len(s.turns) for s in found) == 1914
    assert sum(len(t.tool_calls) for s in found for t in s.turns) == 211
    assert sum(1 for s in found for t in s.turns if t.role == "tool") == 211
    assert all(t.tool_call_id for s in found for t in s.turns if t.role == "tool")
