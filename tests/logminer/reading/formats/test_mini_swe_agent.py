"""mini-swe-agent reader: text actions (v1, bare lists) and tool calls (v1.1), real runs, rejections."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import mini_swe_agent
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(mini_swe_agent.parse(SourceFile.open(path)))


def calls(session: Session) -> int:
    return sum(len(turn.tool_calls) for turn in session.turns)


def test_v1_text_actions_become_calls_and_results(example_logs):
    [session] = parse(example_logs / "mini-swe-agent" / "acme__widgets-42.traj.json")
    # the 2-block answer was a format error: text only, and the complaint that follows stays a user turn
    assert "".join(t.role[0] for t in session.turns) == "suatauatat"
    assert calls(session) == 3 and session.records == 10
    first = session.turns[2]
    assert first.text == "THOUGHT: Let me look at the parser first."
    assert json.loads(first.tool_calls[0].arguments) == {"command": "sed -n '1,40p' widgets/timeparse.py"}
    assert session.turns[3].tool_call_id == first.tool_calls[0].id
    assert session.turns[-1].role == "tool" and session.turns[-1].text.startswith("diff --git")  # submission output
    assert session.metadata["instance_id"] == "acme__widgets-42" and session.metadata["repo"] == "acme/widgets"
    assert session.model == "anthropic/claude-sonnet-4-5"


def test_v11_tool_calls_reasoning_and_exit(example_logs):
    [session] = parse(example_logs / "mini-swe-agent" / "gizmo_version_flag.traj.json")
    assert "".join(t.role[0] for t in session.turns) == "suatattat"  # the `exit` message is not a turn
    assert calls(session) == 4 and session.records == 10
    assert session.turns[2].reasoning == "The CLI is probably in gizmo/cli.py."
    assert [t.tool_call_id for t in session.turns if t.role == "tool"] == ["call_m1", "call_m2", "call_m3", "call_m4"]
    assert session.metadata["exit_status"] == "Submitted" and "instance_id" not in session.metadata
    assert session.flags == ["broken_tool_json"]  # call_m4's arguments have unescaped quotes: kept verbatim
    assert not session.turns[7].tool_calls[0].arguments_valid


# (file, turns, tool calls, tool turns, messages) from jq over `.messages` (or the bare list):
# v1: calls = assistant messages with exactly one ```bash / ```mswea_bash_command block
#     (`[scan("```(bash|mswea_bash_command)")]|length == 1`), turns = all messages (every one is a turn),
#     tool turns = user messages starting `<returncode>` + the final submission output (last message, role user);
# v1.1: calls = `[.[]|.tool_calls//[]|length]|add`, turns = messages whose role is not "exit",
#     tool turns = `[.[]|select(.role=="tool")]|length` (the submit call is answered by the exit message).
REAL = [
    ("gemini3pro_v1.15_astropy__astropy-12907.traj.json", 42, 20, 19 + 1, 42, "astropy__astropy-12907"),
    ("gemini3pro_v1.15_django__django-15731.traj.json", 60, 29, 28 + 1, 60, "django__django-15731"),
    ("gemini3pro_v1.15_sympy__sympy-19954.traj.json", 50, 24, 23 + 1, 50, "sympy__sympy-19954"),
    ("pr816_deepseek_chat_test_1-100_django__django-11039.traj.json", 77, 38, 37, 78, "django__django-11039"),
    ("pr816_deepseek_lite_dev_noparallel_pydicom__pydicom-901.traj.json", 77, 38, 37, 78, "pydicom__pydicom-901"),
    ("test_github_issue.traj.json", 22, 10, 9 + 1, 22, None),
]


@pytest.mark.parametrize(("name", "turns", "tool_calls", "tool_turns", "records", "instance"), REAL)
def test_real_runs(real_logs, name, turns, tool_calls, tool_turns, records, instance):
    source = SourceFile.open(real_logs / "mini-swe-agent-traj" / name)
    assert mini_swe_agent.sniff(source)
    [session] = list(mini_swe_agent.parse(source))
    assert (len(session.turns), calls(session), session.records) == (turns, tool_calls, records)
    assert session.metadata.get("instance_id") == instance
    results = [t for t in session.turns if t.role == "tool"]
    assert len(results) == tool_turns
    call_ids = [c.id for t in session.turns for c in t.tool_calls]
    assert len(set(call_ids)) == len(call_ids) and {t.tool_call_id for t in results} <= set(call_ids)


def test_rejections(tmp_path):
    broken = tmp_path / "a.traj.json"
    broken.write_text('{"trajectory_format": "mini-swe-agent-1",\n"messages": [}')
    [event] = parse(broken)
    assert isinstance(event, Rejected) and event.line == 2
    odd = tmp_path / "b.traj.json"
    odd.write_text(json.dumps({"trajectory_format": "mini-swe-agent-1", "messages": [{"role": "robot"}]}))
    [event] = parse(odd)
    assert isinstance(event, Rejected) and "message 0" in event.reason and event.records == 1


def test_sniff_needs_the_format_marks(example_logs, tmp_path):
    plain_chat = tmp_path / "chat.json"
    plain_chat.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]))
    assert not mini_swe_agent.sniff(SourceFile.open(plain_chat))
    assert not mini_swe_agent.sniff(SourceFile.open(example_logs / "swe-agent" / "acme__widgets-42.traj"))
