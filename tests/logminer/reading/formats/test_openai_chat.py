"""OpenAI chat / Hugging Face dataset reader: JSONL, JSON documents, bare message lists, parquet."""

from __future__ import annotations

import json

from logminer.reading.formats import openai_chat
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(openai_chat.parse(SourceFile.open(path)))


def test_jsonl_conversations(example_logs):
    path = example_logs / "openai-chat" / "conversations.jsonl"
    assert openai_chat.sniff(SourceFile.open(path))
    first, typed, broken = parse(path)
    assert first.session_id == "conv-7f3a9c21" and first.model == "gpt-4o-2024-08-06"
    assert "".join(t.role[0] for t in first.turns) == "suatta"
    assert [c.id for c in first.turns[2].tool_calls] == ["call_Xk81vQm2", "call_Pz93nRt4"]
    assert first.turns[3].name == "run_tests" and first.turns[4].name == "read_file"  # named from their calls
    assert [t["function"]["name"] for t in first.tools] == ["read_file", "run_tests"]
    # typed parts: reasoning apart, tool_call part {name, arguments}, id-less result linked by position
    call = typed.turns[1].tool_calls[0]
    assert typed.turns[1].reasoning == "A directory listing needs the shell tool." and typed.turns[1].text == ""
    assert (call.name, json.loads(call.arguments), call.id) == ("shell", {"cmd": "ls src"}, "call_1")
    assert typed.turns[2].tool_call_id == "call_1" and typed.tools[0]["function"]["name"] == "shell"
    assert broken.flags == ["broken_tool_json"]
    assert broken.turns[1].tool_calls[0].arguments == '{"path": "pyproject.toml", "find": "2.4.0"'
    assert [(s.line_start, s.records) for s in (first, typed, broken)] == [(1, 1), (2, 1), (3, 1)]
    assert len({s.session_id for s in (first, typed, broken)}) == 3


def test_parquet_dataset(example_logs):
    path = example_logs / "openai-chat" / "hf_chat_dataset.parquet"
    source = SourceFile.open(path)
    assert source.is_binary and openai_chat.sniff(source)
    calculator, capital = parse(path)
    assert "".join(t.role[0] for t in calculator.turns) == "uata"
    assert json.loads(calculator.turns[1].tool_calls[0].arguments) == {"expression": "17 * 23"}
    assert calculator.turns[2].name == "calculator" and calculator.turns[2].tool_call_id == "call_1"
    assert [t.text for t in capital.turns] == ["Answer briefly.", "Capital of Australia?", "Canberra."]
    assert (calculator.line_start, capital.line_start) == (1, 2)


def test_malformed_line_json_document_and_bare_list(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    path = tmp_path / "chat.jsonl"
    path.write_text(f"{good}\n{{\"messages\": [\n{good}\n{json.dumps({'messages': [{'role': 'wizard'}]})}\n")
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Session", "Rejected", "Session", "Rejected"]
    assert (events[1].line, events[3].line) == (2, 4) and "unknown role 'wizard'" in events[3].reason
    document = tmp_path / "one.json"
    document.write_text(json.dumps({"messages": json.loads(good)["messages"]}, indent=2))
    (session,) = parse(document)
    assert (session.line_start, session.line_end, session.records) == (1, len(document.read_text().splitlines()), 1)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(json.loads(good)["messages"], indent=1))
    assert openai_chat.sniff(SourceFile.open(bare))
    (session,) = parse(bare)
    assert [t.text for t in session.turns] == ["hi", "hello"]


def test_binary_garbage_is_not_claimed():
    assert not openai_chat.sniff(SourceFile("junk.bin", b"\x00\x01PAR1\x00" * 100))
    assert not openai_chat.sniff(SourceFile("fake.parquet", b"PAR1" + b"\x00" * 50))


# Real file (LLaMA-Factory reason_tool_use_demo_50.jsonl), counted with jq:
#   sessions: grep -c . F → 50 lines, one conversation each
#   turns:    jq '.messages|length' F | paste -sd+ | bc → 274
#   calls:    jq '[.messages[].content|arrays|.[]|select(.type=="tool_call")]|length' F | paste -sd+ | bc → 68
def test_real_typed_parts_dataset(real_logs):
    path = real_logs / "openai-messages-toolcall" / "llamafactory_reason_tool_use_demo_50.jsonl"
    events = parse(path)
    found = [e for e in events if isinstance(e, Session)]
    assert len(found) == 50 and not [e for e in events if isinstance(e, Rejected)]
    assert sum(len(s.turns) for s in found) == 274
    assert sum(len(t.tool_calls) for s in found for t in s.turns) == 68
    assert sum(e.records for e in events) == 50
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert [len(s.tools) for s in found] == [len(json.loads(r["tools"])) for r in raw]  # `tools` is a JSON string
    assert sum(1 for s in found for t in s.turns if t.reasoning) == sum(
        1 for r in raw for m in r["messages"] if any(p.get("type") == "reasoning" for p in m["content"]))


def test_first_record_longer_than_the_sniffing_head(tmp_path):
    long_text = "x" * 200_000  # the head holds 65536 characters: the first line must still be recognised
    rows = [{"messages": [{"role": "user", "content": long_text}, {"role": "assistant", "content": "ok"}]}] * 2
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert openai_chat.sniff(SourceFile.open(path))
    assert [len(s.turns[0].text) for s in parse(path)] == [200_000, 200_000]


def test_line_longer_than_the_limit_is_rejected(tmp_path, monkeypatch):
    from logminer.reading.formats import jsondoc

    monkeypatch.setattr(jsondoc, "MAX_LINE_BYTES", 1000)
    short = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    long = json.dumps({"messages": [{"role": "user", "content": "y" * 2000}]})
    path = tmp_path / "mixed.jsonl"
    path.write_text(f"{short}\n{long}\n{short}\n")
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Session", "Rejected", "Session"]
    assert events[1].line == 2 and "longer than 1000 bytes" in events[1].reason
