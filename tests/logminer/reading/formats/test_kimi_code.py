"""Kimi Code wire.jsonl (real lab captures + own fixture) and its state.json sidecar."""

from __future__ import annotations

import json
from pathlib import Path

from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read
from tests.real_components import require_real_logs


def write_wire(folder: Path, text: str = "count the files") -> Path:
    records = [
        {"type": "metadata", "protocol_version": "1.5", "created_at": 1785615359837},
        {"type": "config.update", "systemPrompt": "You are Kimi Code.", "time": 1785615359837},
        {"type": "turn.prompt", "input": [{"type": "text", "text": text}], "time": 1785615359900},
        {"type": "context.append_message", "message": {"role": "user", "content": [{"type": "text", "text": text}],
                                                       "toolCalls": []}, "time": 1785615359901},
        {"type": "context.append_loop_event", "event": {"type": "step.begin", "uuid": "s1", "turnId": "0", "step": 1},
         "time": 1785615359902},
        {"type": "llm.request", "model": "kimi-k2.7-code", "time": 1785615359903},
        {"type": "context.append_loop_event", "event": {"type": "content.part", "part": {"type": "think", "think": "glob"}},
         "time": 1785615359904},
        {"type": "context.append_loop_event", "event": {"type": "tool.call", "toolCallId": "Glob_0", "name": "Glob",
                                                        "args": {"pattern": f"**/*.py {text}"}}, "time": 1785615359905},
        {"type": "context.append_loop_event", "event": {"type": "tool.result", "toolCallId": "Glob_0",
                                                        "result": {"output": "a.py\nb.py"}}, "time": 1785615359906},
        {"type": "context.append_loop_event", "event": {"type": "step.end", "uuid": "s1"}, "time": 1785615359907},
        {"type": "context.append_loop_event", "event": {"type": "step.begin", "uuid": "s2"}, "time": 1785615359908},
        {"type": "context.append_loop_event", "event": {"type": "content.part", "part": {"type": "text", "text": "2 files."}},
         "time": 1785615359909},
        {"type": "context.append_loop_event", "event": {"type": "step.end", "uuid": "s2"}, "time": 1785615359910},
        {"type": "hologram.sync", "time": 1785615359911},
    ]
    path = folder / "session_1234" / "agents" / "main" / "wire.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "session_1234" / "state.json").write_text(json.dumps(
        {"createdAt": "2026-08-01T00:00:00Z", "updatedAt": "2026-08-01T00:01:00Z", "title": "count",
         "agents": {"main": {"homedir": "/x", "type": "main", "parentAgentId": None}}, "workDir": "/work",
         "lastPrompt": "count"}, indent=2))
    return folder


def test_real_wire_files_match_hand_counts():
    real = require_real_logs() / "kimi-code-wire"
    small = read(real / "small")
    assert small.formats == {"kimi-code"} and not small.rejected
    assert len(small.sessions) == 1 and small.roles == {"user": 3}  # the provider answered 429: no assistant output
    assert any(s.reason.startswith("kimi-code state.json sidecar") for s in small.skipped)
    assert small.records == 36 + 1
    sub = read(real / "subagent" / "wire.jsonl")
    session, = sub.sessions
    assert sub.roles["user"] == 1 and sub.tool_calls == 2 and sub.roles["tool"] == 2
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert session.turns[-1].text.startswith("**Exact count:**") and all(t.reasoning for t in session.turns[1::2])
    assert sub.records == 28 and not any(r.startswith("unknown") for r in sub.reasons())


def test_fixture_steps_become_assistant_turns(tmp_path):
    result = read(write_wire(tmp_path))
    session, = result.sessions
    assert [t.role for t in session.turns] == ["user", "assistant", "tool", "assistant"]
    assert session.session_id == "1234" and session.model == "kimi-k2.7-code"
    assert session.turns[1].reasoning == "glob" and session.turns[2].name == "Glob"
    assert "unknown kimi-code line type hologram.sync" in result.reasons()
    assert result.records == 15  # 14 wire lines + the state.json


def test_session_folder_acknowledges_tool_results_media_and_logs(tmp_path):
    session = write_wire(tmp_path) / "session_1234"
    for relative in ("agents/main/tool-results/Glob-Glob_0-1.txt", "media/shot.png", "logs/run.log"):
        (session / relative).parent.mkdir(parents=True, exist_ok=True)
        (session / relative).write_text("long output\n" * 3)
    (session / "stray.txt").write_text("?")
    sub = session / "agents" / "agent-1" / "wire.jsonl"
    sub.parent.mkdir()
    sub.write_text((session / "agents" / "main" / "wire.jsonl").read_text())
    result = read(tmp_path)
    assert [(s.session_id, s.parent_session_id) for s in result.sessions] == [("1234/agent-1", "1234"), ("1234", None)]
    assert result.formats == {"kimi-code"}
    assert {"kimi-code media attachment", "kimi-code runtime log"} <= result.reasons()
    assert [r.reason for r in result.rejected] == ["not a file of a kimi-code session folder"]
    assert result.records == 15 + 14 + 4


def test_planted_secret_never_reaches_output(tmp_path):
    write_wire(tmp_path / "logs", text=SECRET_TEXT)
    assert_secret_never_output(tmp_path / "logs", tmp_path / "out")
