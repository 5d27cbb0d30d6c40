"""Gemini CLI reader: the JSONL recording (last copy wins, $set, $rewindTo, notices, sub-agents) and the JSON session."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from logminer.reading.detect import detect_format
from logminer.reading.formats import gemini_cli
from logminer.reading.registry import load_formats
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

MAIN = "8e2f4a6c-1b3d-4e5f-8a7b-9c0d1e2f3a4b"


def parse(path) -> list:
    return list(gemini_cli.parse(SourceFile.open(path)))


def sessions(events) -> list[Session]:
    return [e for e in events if isinstance(e, Session)]


def skipped(events) -> dict[str, int]:
    return {e.reason: e.records for e in events if isinstance(e, Skipped)}


def nonblank_lines(path) -> int:
    return sum(1 for line in SourceFile.open(path).data.split(b"\n") if line.strip())


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def chats(example_logs):
    return example_logs / "gemini-cli" / "tmp" / "c3f9c3f9" / "chats"


def test_example_recording(example_logs):
    path = next(chats(example_logs).glob("session-*.jsonl"))
    assert gemini_cli.sniff(SourceFile.open(path))
    events = parse(path)
    [session] = sessions(events)
    assert session.session_id == MAIN and session.agent == "gemini-cli" and session.model == "gemini-3-flash-preview"
    assert "".join(t.role[0] for t in session.turns) == "uatatuat"
    first = session.turns[1]  # the last copy of g2 (with its tool call) replaced the first
    assert first.reasoning == "Locating: Find every use of --city." and first.tool_calls[0].name == "grep_search"
    assert session.turns[2].text.startswith("src/cli.py:12") and session.turns[2].tool_call_id == "grep_1"
    failed = session.turns[4]
    assert failed.is_error and failed.text == "old_string matched 0 times"
    assert session.metadata["summary"] == "Rename --city to --location"
    assert skipped(events) == {gemini_cli.SKIP_SET: 4, gemini_cli.SKIP_OLD_COPY: 1,
                               gemini_cli.notice_reason("info"): 1}
    assert sum(e.records for e in events) == nonblank_lines(path)


def test_sub_agent_recording_names_its_parent(example_logs):
    path = next((chats(example_logs) / MAIN).glob("*.jsonl"))
    [session] = sessions(parse(path))
    assert session.parent_session_id == MAIN and session.metadata["relation"] == "subagent"


def test_single_json_session(example_logs):
    path = next(chats(example_logs).glob("session-*.json"))
    source = SourceFile.open(path)
    assert gemini_cli.sniff(source) and detect_format(source, load_formats()).name == "gemini-cli"
    events = parse(path)
    [session] = sessions(events)
    assert [t.role for t in session.turns] == ["user", "assistant"] and session.records == 2
    assert session.turns[1].reasoning == "Reading: fetch() parses the API JSON."
    assert skipped(events) == {gemini_cli.notice_reason("error"): 1}  # 3 messages = 2 read + 1 notice


def test_qwen_written_json_session_is_labelled_qwen_code(example_logs):
    path = next((example_logs / "gemini-cli" / "qwen-tmp").rglob("session-*.json"))
    events = parse(path)
    [session] = sessions(events)
    assert session.agent == "qwen-code" and "".join(t.role[0] for t in session.turns) == "uata"
    assert session.turns[1].reasoning == "Searching: A grep over the tree will find them."
    assert session.turns[2].tool_call_id == "call_o1" and session.turns[2].text.startswith("Found 2 matches")
    assert sum(e.records for e in events) == 4  # 3 messages read + the info notice


def test_rewind_checkpoint_unknown_types_and_bad_lines(tmp_path):
    rows = [{"sessionId": "s", "projectHash": "h", "startTime": "t0", "lastUpdated": "t0", "kind": "main"},
            {"id": "m1", "timestamp": "t1", "type": "user", "content": "first try"},
            {"id": "m2", "timestamp": "t2", "type": "gemini", "content": "wrong answer"},
            {"$rewindTo": "m1"},
            {"id": "m3", "timestamp": "t3", "type": "user", "content": [{"text": "second try"}]},
            {"id": "m4", "timestamp": "t4", "type": "hologram", "content": "?"},
            {"id": "m5", "timestamp": "t5", "type": "warning", "content": "slow"},
            {"kind": "future-line"},
            {"type": "future-line"},
            {"id": "m6", "timestamp": "t6", "type": "gemini", "content": "right answer",
             "toolCalls": [{"id": "c1", "name": "ls", "args": {}, "status": "cancelled", "result": None}]}]
    path = write(tmp_path / "session-x.jsonl", rows)
    with open(path, "a") as handle:
        handle.write("{broken\n[]\n")
    events = parse(path)
    [session] = sessions(events)
    assert [t.text for t in session.turns] == ["second try", "right answer"]
    assert session.turns[1].tool_calls[0].name == "ls"  # a cancelled call without a result has no tool turn
    assert skipped(events) == {gemini_cli.SKIP_REWOUND: 2, gemini_cli.SKIP_REWIND: 1,
                               "unknown gemini-cli line type 'message:hologram'": 1,
                               gemini_cli.notice_reason("warning"): 1, "unknown gemini-cli line type '(no type)'": 1,
                               "unknown gemini-cli line type 'future-line'": 1}
    assert sorted(e.line for e in events if isinstance(e, Rejected)) == [11, 12]
    assert sum(e.records for e in events) == len(rows) + 2


def test_set_checkpoint_replaces_the_history(tmp_path):
    rows = [{"sessionId": "s", "projectHash": "h"},
            {"id": "m1", "type": "user", "content": "old"},
            {"$set": {"messages": [{"id": "n1", "type": "user", "content": "new"},
                                   {"id": "n2", "type": "gemini", "content": "reply"}]}},
            {"id": "n3", "type": "user", "content": "more"}]
    events = parse(write(tmp_path / "c.jsonl", rows))
    [session] = sessions(events)
    assert [t.text for t in session.turns] == ["new", "reply", "more"] and session.records == 3
    assert skipped(events) == {gemini_cli.SKIP_REWOUND: 1}


def test_sniff_reads_several_lines_and_refuses_look_alikes(tmp_path):
    messages = [{"id": "a", "timestamp": "t", "type": "user", "content": "hi"},
                {"id": "b", "timestamp": "t", "type": "gemini", "content": "hello"}]
    assert gemini_cli.sniff(SourceFile.open(write(tmp_path / "headless.jsonl", messages)))  # header cut off
    qwen = {"uuid": "u", "parentUuid": None, "sessionId": "s", "type": "user", "message": {"parts": []}}
    assert not gemini_cli.sniff(SourceFile.open(write(tmp_path / "qwen.jsonl", [qwen])))
    ids = [{"id": "a", "type": "user", "content": "x"}, {"id": "b", "type": "assistant", "content": "y"}]
    assert not gemini_cli.sniff(SourceFile.open(write(tmp_path / "other.jsonl", ids)))


# Hand counts (MANIFEST.tsv): 35 lines = 1 header + 12 $set + 22 message lines = 12 unique messages (1 user + 11
# gemini); 10 toolCalls, 1 with status error, one of them the invoke_agent sub-agent call.
def test_real_recording(real_logs):
    path = real_logs / "gemini-cli-jsonl" / "toolpath_feature-elicit_2026-05-07.jsonl"
    events = parse(path)
    [session] = sessions(events)
    roles = Counter(t.role for t in session.turns)
    assert (roles["user"], roles["assistant"], roles["tool"]) == (1, 11, 10)
    calls = [c for t in session.turns for c in t.tool_calls]
    assert len(calls) == 10 and "invoke_agent" in {c.name for c in calls}
    assert {c.id for c in calls} == {t.tool_call_id for t in session.turns if t.role == "tool"}
    assert sum(t.is_error for t in session.turns) == 1
    assert skipped(events) == {gemini_cli.SKIP_SET: 12, gemini_cli.SKIP_OLD_COPY: 10}
    assert session.records == 1 + 12 and sum(e.records for e in events) == nonblank_lines(path) == 35


def test_real_small_capture_and_json_session(real_logs):
    [small] = sessions(parse(real_logs / "gemini-cli-jsonl" / "agentsessions_jsonl_v040.jsonl"))
    assert [t.role for t in small.turns] == ["user", "assistant", "tool", "assistant"]
    assert sum(len(t.tool_calls) for t in small.turns) == 1
    path = real_logs / "gemini-cli-json" / "vct_gemini_2025-10-11.json"
    [legacy] = sessions(parse(path))
    assert legacy.agent == "gemini-cli" and Counter(t.role for t in legacy.turns) == {"user": 1, "assistant": 13}
    assert legacy.records == 14 and not [c for t in legacy.turns for c in t.tool_calls]


def test_source_folder(tmp_path):
    from logminer.reading.registry import default_folders

    assert default_folders("gemini", home=tmp_path, env={}) == [tmp_path / ".gemini" / "tmp"]
    assert default_folders("gemini", home=tmp_path, env={"GEMINI_CLI_HOME": "/h"}) == [
        Path("/h/.gemini/tmp")]
