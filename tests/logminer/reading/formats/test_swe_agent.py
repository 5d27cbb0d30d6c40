"""SWE-agent .traj reader: own fixtures, real SWE-agent trajectories, demonstrations, rejections."""

from __future__ import annotations

import json

import pytest

from logminer.reading.formats import swe_agent
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session


def parse(path) -> list:
    return list(swe_agent.parse(SourceFile.open(path)))


def calls(session: Session) -> int:
    return sum(len(turn.tool_calls) for turn in session.turns)


def test_function_calling_run_keeps_demo_out_and_reads_instance(example_logs):
    [session] = parse(example_logs / "swe-agent" / "acme__widgets-42.traj")
    # 9 history messages: system, 1 demonstration, issue, 3 x (assistant call, tool result)
    assert [t.role for t in session.turns] == ["system", "user"] + ["assistant", "tool"] * 3
    assert calls(session) == 3 and session.records == 9
    assert session.flags == ["has_demonstration"] and session.metadata["demo_messages"] == 1
    assert "DEMONSTRATION" not in "".join(t.text for t in session.turns)
    assert session.metadata["instance_id"] == "acme__widgets-42"
    assert session.metadata["repo"] == "acme/widgets"
    assert session.model == "gpt-4o"
    first_call = session.turns[2].tool_calls[0]
    assert (first_call.name, first_call.id) == ("bash", "call_a1")
    assert json.loads(first_call.arguments) == {"command": "grep -n 'def parse_duration' -r widgets"}
    assert session.turns[3].tool_call_id == "call_a1"


def test_trajectory_only_run_maps_steps_to_calls_and_results(example_logs):
    [session] = parse(example_logs / "swe-agent" / "legacy_early_exit.traj")
    assert [t.role for t in session.turns] == ["assistant", "tool"] * 2
    assert [c.name for t in session.turns for c in t.tool_calls] == ["find_file", "open"]
    assert session.turns[1].tool_call_id == session.turns[0].tool_calls[0].id
    assert session.records == 2  # trajectory steps
    assert session.metadata["repo"] == "acme/widgets"  # from state.working_dir "/acme__widgets"


# (file, turns, tool calls, records) counted with jq: turns = `[.history[]|select(.is_demo|not)]|length`,
# calls = `[.history[]|select(.is_demo|not)|.tool_calls//[]|length]|add`, records = `.history|length`
REAL = [
    ("gpt4_sweagenttestrepo-1c2844.traj", 10, 4, 10),
    ("gpt4_pydicom-1458.traj", 25, 0, 26),
    ("demo_function_calling_simple.traj", 12, 5, 12),
    ("demo_replay_default_marshmallow-1867.traj", 29, 0, 29),
    ("demo_replay_function_calling_marshmallow-1867.traj", 24, 11, 24),
]


@pytest.mark.parametrize(("name", "turns", "tool_calls", "records"), REAL)
def test_real_trajectories(real_logs, name, turns, tool_calls, records):
    source = SourceFile.open(real_logs / "swe-agent-traj" / name)
    assert swe_agent.sniff(source)
    [session] = list(swe_agent.parse(source))
    assert (len(session.turns), calls(session), session.records) == (turns, tool_calls, records)
    call_ids = {c.id for t in session.turns for c in t.tool_calls}
    assert all(t.tool_call_id in call_ids for t in session.turns if t.role == "tool")


def test_real_instance_ids(real_logs):
    folder = real_logs / "swe-agent-traj"
    [fc] = parse(folder / "demo_replay_function_calling_marshmallow-1867.traj")
    assert fc.metadata["instance_id"] == "marshmallow-code__marshmallow-1867"
    [pydicom] = parse(folder / "gpt4_pydicom-1458.traj")
    assert pydicom.metadata["repo"] == "pydicom/pydicom" and "has_demonstration" in pydicom.flags


def test_malformed_and_unknown_shapes_are_rejected(tmp_path):
    broken = tmp_path / "broken.traj"
    broken.write_text('{"history": [\n  {"role": "user", "content": "hi"},\n  oops\n]}')
    [event] = parse(broken)
    assert isinstance(event, Rejected) and event.line == 3 and "invalid JSON" in event.reason
    odd = tmp_path / "odd.traj"
    odd.write_text(json.dumps({"history": [{"role": "narrator", "content": "x"}], "trajectory": []}))
    [event] = parse(odd)
    assert isinstance(event, Rejected) and "history item 0" in event.reason and event.records == 1


def test_broken_tool_json_is_kept_and_flagged(tmp_path):
    path = tmp_path / "run.traj"
    history = [{"role": "assistant", "content": "go", "message_type": "action",
                "tool_calls": [{"id": "c1", "function": {"name": "bash", "arguments": "{not json"}}]}]
    path.write_text(json.dumps({"history": history}))
    [session] = parse(path)
    call = session.turns[0].tool_calls[0]
    assert call.arguments == "{not json" and not call.arguments_valid and "broken_tool_json" in session.flags


def test_sniff_refuses_other_formats(example_logs):
    assert not swe_agent.sniff(SourceFile.open(example_logs / "mini-swe-agent" / "acme__widgets-42.traj.json"))
    assert not swe_agent.sniff(SourceFile.open(example_logs / "openhands" / "eval_output.jsonl"))
    assert not swe_agent.sniff(SourceFile("x.traj", b"\x00\x01binary"))
