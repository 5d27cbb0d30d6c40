"""Pi / OpenClaw reader: v1 lists and v2/v3 trees (active branch), roles, compaction, OpenClaw extras, sub-agents."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from logminer.reading.formats import pi
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

SESSION = "5b8c2e1a-3d4f-4a6b-9c7d-2e1f0a9b8c7d"


def parse(path) -> list:
    return list(pi.parse(SourceFile.open(path)))


def sessions(events) -> list[Session]:
    return [e for e in events if isinstance(e, Session)]


def skipped(events) -> dict[str, int]:
    return {e.reason: e.records for e in events if isinstance(e, Skipped)}


def nonblank_lines(path) -> int:
    return sum(1 for line in SourceFile.open(path).data.split(b"\n") if line.strip())


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def message(entry_id, parent, role, content, **extra):
    return {"type": "message", "id": entry_id, "parentId": parent, "timestamp": "2026-03-01T10:00:00.000Z",
            "message": {"role": role, "content": content, **extra}}


def test_example_v3_tree_branch_and_compaction(example_logs):
    path = next((example_logs / "pi").rglob("*.jsonl"))
    assert pi.sniff(SourceFile.open(path))
    events = parse(path)
    before, after = sessions(events)
    assert (before.session_id, after.session_id) == (SESSION, f"{SESSION}/compact-1")
    assert after.parent_session_id == SESSION and before.agent == "pi" and before.model == "claude-sonnet-4-5"
    # the abandoned reply (e0000006, a sibling of e0000007) is not a turn
    assert all("Fahrenheit" not in t.text for s in (before, after) for t in s.turns)
    assert "".join(t.role[0] for t in before.turns) == "uatatu"  # ... then the `!cmd` run as a user message
    assert before.turns[1].reasoning.startswith("The unit flag") and before.turns[1].tool_calls[0].name == "read"
    assert before.turns[-1].text == "Ran `python -m weather --city Oslo`\n```\n4.2\n\n```"
    # after the compaction: summary, the kept bash entry again, the custom message, then the new messages
    assert after.turns[0].text.startswith("The conversation history before this point was compacted")
    assert after.turns[1].text == before.turns[-1].text and after.turns[2].text.startswith("Remember: tests")
    assert "".join(t.role[0] for t in after.turns) == "uuuuata"
    assert skipped(events) == {pi.OFF_BRANCH: 1, pi.SKIP_REASONS["model_change"]: 1,
                               pi.SKIP_REASONS["thinking_level_change"]: 1, pi.SKIP_REASONS["session_info"]: 1}
    assert sum(e.records for e in events) == nonblank_lines(path)


def test_openclaw_example_is_labelled_and_names_its_sub_agent(example_logs):
    path = next((example_logs / "openclaw").rglob("*.jsonl"))
    [session] = sessions(parse(path))
    assert session.agent == "openclaw"
    assert session.metadata["spawned_sessions"] == ["agent:main:subagent:7a1b2c3d-0000-4000-8000-000000000001"]
    assert [t.text for t in session.turns if t.role == "user"][1] == "Waiting for the todos sub-agent."


def test_v1_linear_session_with_index_compaction(tmp_path):
    rows = [{"type": "session", "id": "v1", "timestamp": "t", "cwd": "/w", "modelId": "m1"},
            {"type": "message", "timestamp": "t", "message": {"role": "user", "content": "one"}},
            {"type": "message", "timestamp": "t", "message": {"role": "assistant", "content": [
                {"type": "text", "text": "two"}, {"type": "toolCall", "id": "c1", "name": "ls", "arguments": {}}]}},
            {"type": "message", "timestamp": "t", "message": {"role": "toolResult", "toolCallId": "c1",
                                                              "toolName": "ls", "content": "a.txt", "isError": True}},
            {"type": "compaction", "timestamp": "t", "summary": "S", "firstKeptEntryIndex": 3, "tokensBefore": 9},
            {"type": "message", "timestamp": "t", "message": {"role": "user", "content": "three"}}]
    events = parse(write(tmp_path / "v1.jsonl", rows))
    before, after = sessions(events)
    assert [t.text for t in before.turns] == ["one", "two", "a.txt"] and before.turns[2].is_error
    assert before.model == "m1" and before.metadata["version"] == 1
    # firstKeptEntryIndex counts the header as entry 0: entry 3 is the tool result
    assert [t.text for t in after.turns][1:] == ["a.txt", "three"] and after.turns[0].text.endswith("S\n</summary>")
    assert sum(e.records for e in events) == len(rows)


def test_roles_unknown_types_and_bad_lines(tmp_path):
    rows = [{"type": "session", "version": 3, "id": "s", "timestamp": "t", "cwd": "/w",
             "parentSession": "/h/.pi/agent/sessions/--w--/2026-01-01T00-00-00-000Z_parent-uuid.jsonl"},
            message("a", None, "user", [{"type": "text", "text": "hi"}, {"type": "image", "data": "AAAA"}]),
            message("b", "a", "bashExecution", None, command="ls", output="", exitCode=2, cancelled=False,
                    truncated=False),
            message("c", "b", "bashExecution", None, command="env", output="X=1", exitCode=0, cancelled=False,
                    truncated=False, excludeFromContext=True),
            message("d", "c", "hookMessage", "from a v2 hook"),
            message("e", "d", "hologram", "?"),
            {"type": "branch_summary", "id": "f", "parentId": "e", "timestamp": "t", "fromId": "x", "summary": "B"},
            {"type": "telepathy", "id": "g", "parentId": "f", "timestamp": "t"},
            {"type": "telepathy", "id": "h", "parentId": "g", "timestamp": "t"},
            {"type": "label", "id": "i", "parentId": "h", "timestamp": "t", "targetId": "a", "label": "start"},
            {"type": "message", "id": "j", "parentId": "i", "timestamp": "t"}]
    path = write(tmp_path / "s.jsonl", rows)
    with open(path, "a") as handle:
        handle.write("{broken\n[1]\n")
    events = parse(path)
    [session] = sessions(events)
    assert session.parent_session_id == "parent-uuid" and session.metadata["relation"] == "fork"
    assert [t.text for t in session.turns] == [
        "hi", "Ran `ls`\n(no output)\n\nCommand exited with code 2", "from a v2 hook",
        f"{pi.BRANCH_PREFIX}B</summary>"]
    assert session.flags == ["non_text_content_dropped"]
    assert skipped(events) == {pi.EXCLUDED_BASH: 1, pi.SKIP_REASONS["label"]: 1,
                               "unknown pi line type 'message:hologram'": 1, "unknown pi line type 'telepathy'": 2}
    assert sorted(e.line for e in events if isinstance(e, Rejected)) == [11, 12, 13]
    assert sum(e.records for e in events) == len(rows) + 2


def test_openclaw_index_links_a_sub_agent_to_its_parent(tmp_path):
    folder = tmp_path / ".openclaw" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    index = {"agent:main:main": {"sessionId": "parent-1", "updatedAt": 1},
             "agent:main:subagent:k1": {"sessionId": "child-1", "spawnedBy": "agent:main:main", "label": "todos"}}
    (folder / "sessions.json").write_text(json.dumps(index, indent=2))
    child = write(folder / "child-1.jsonl", [{"type": "session", "version": 3, "id": "child-1", "timestamp": "t",
                                              "cwd": "/w"}, message("a", None, "user", "count TODOs")])
    [session] = sessions(parse(child))
    assert (session.agent, session.parent_session_id, session.metadata["relation"]) == ("openclaw", "parent-1",
                                                                                        "subagent")
    source = SourceFile.open(folder / "sessions.json")
    assert pi.sniff(source)
    assert [(type(e).__name__, e.reason) for e in pi.parse(source)] == [("Skipped", pi.INDEX)]


def test_header_without_messages_is_skipped(tmp_path):
    events = parse(write(tmp_path / "empty.jsonl", [{"type": "session", "version": 3, "id": "e", "timestamp": "t"}]))
    assert [(type(e).__name__, e.reason) for e in events] == [("Skipped", pi.NO_MESSAGES)]


def test_sniff_looks_at_several_lines(tmp_path):
    """A file cut before its header is still Pi: entries of its own shape further down the head decide."""
    rows = [message("a", None, "user", "hi"),
            message("b", "a", "assistant", [{"type": "text", "text": "x"}], stopReason="stop"),
            message("c", "b", "toolResult", "out", toolCallId="c1", toolName="ls")]
    assert pi.sniff(SourceFile.open(write(tmp_path / "cut.jsonl", rows)))
    claude = {"type": "user", "sessionId": "s", "uuid": "u", "parentUuid": None, "message": {"role": "user"}}
    assert not pi.sniff(SourceFile.open(write(tmp_path / "claude.jsonl", [claude])))


# Hand counts from MANIFEST.tsv: 990 messages = 55 user + 484 assistant + 448 toolResult + 3 bashExecution;
# 454 toolCall blocks (12 results isError); 2 compaction entries (firstKeptEntryIndex 293 and 551), 5 model_change,
# 5 thinking_level_change. The 2 compactions cut the file into 3 sessions; each later one starts with the summary and
# repeats the kept entries, so every message is read once and some are also context again.
def test_real_pi_session(real_logs):
    path = real_logs / "pi-session" / "pimono_before-compaction.jsonl"
    events = parse(path)
    found = sessions(events)
    assert [s.session_id.rsplit("/", 1)[-1] for s in found] == ["ffae836b-9420-4060-ac13-7745215f90ff",
                                                               "compact-1", "compact-2"]
    assert not [e for e in events if isinstance(e, Rejected)]
    assert sum(e.records for e in events) == nonblank_lines(path) == 1003
    assert skipped(events) == {pi.SKIP_REASONS["model_change"]: 5, pi.SKIP_REASONS["thinking_level_change"]: 5}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    lines = {number: row for number, row in enumerate(rows, start=1)}

    def messages(first, last):  # message entries on file lines first..last, counted straight from the JSON
        return sum(1 for n in range(first, last + 1) if lines[n]["type"] == "message")

    # compactions on lines 360 and 629 keep entries from index 293 (line 294) and 551 (line 552)
    expected = [messages(2, 359), 1 + messages(294, 359) + messages(361, 628),
                1 + messages(552, 628) + messages(630, len(rows))]
    assert [len(s.turns) for s in found] == expected
    first_seen = [t for s, start in zip(found, (0, 1 + messages(294, 359), 1 + messages(552, 628)))
                  for t in s.turns[start:]]
    summaries = [t for s in found[1:] for t in s.turns[:1]]
    roles = Counter(t.role for t in first_seen)
    assert (roles["user"], roles["assistant"], roles["tool"]) == (55 + 3, 484, 448)  # bash runs are user turns
    assert len(summaries) == 2 and sum(t.text.startswith("Ran `") for t in first_seen) == 3
    calls = [c for t in first_seen for c in t.tool_calls]
    assert len(calls) == 454 == len({c.id for s in found for t in s.turns for c in t.tool_calls})
    assert sum(t.is_error for t in first_seen) == 12


# Hand counts: 1 user + 11 assistant + 11 toolResult messages, 11 toolCalls (1 result isError); plus 1
# custom_message (sessions_yield context, a user message for the model), 2 custom, 1 model_change, 1 thinking change.
def test_real_openclaw_session(real_logs):
    path = real_logs / "openclaw-session" / "toolpath_feature-elicit_2026-07-08.jsonl"
    events = parse(path)
    [session] = sessions(events)
    assert session.agent == "openclaw" and session.model == "claude-opus-4-8"
    roles = Counter(t.role for t in session.turns)
    assert (roles["user"], roles["assistant"], roles["tool"]) == (1 + 1, 11, 11)
    assert sum(len(t.tool_calls) for t in session.turns) == 11 and sum(t.is_error for t in session.turns) == 1
    calls = {c.id for t in session.turns for c in t.tool_calls}
    assert calls == {t.tool_call_id for t in session.turns if t.role == "tool"}
    assert session.metadata["spawned_sessions"] == ["agent:main:subagent:e1b075db-1f72-4148-a846-bc5b9d4c2ede"]
    assert skipped(events) == {pi.SKIP_REASONS["custom"]: 2, pi.SKIP_REASONS["model_change"]: 1,
                               pi.SKIP_REASONS["thinking_level_change"]: 1}
    assert sum(e.records for e in events) == nonblank_lines(path)


def test_source_folders(tmp_path):
    from logminer.reading.registry import default_folders, source_folders

    assert default_folders("pi", home=tmp_path, env={}) == [tmp_path / ".pi" / "agent" / "sessions"]
    assert default_folders("pi", home=tmp_path, env={"PI_CODING_AGENT_DIR": "/x"}) == [Path("/x/sessions")]
    assert default_folders("openclaw", home=tmp_path, env={}) == [tmp_path / ".openclaw/agents/main/sessions"]
    for agent in ("main", "coder"):
        (tmp_path / ".openclaw" / "agents" / agent / "sessions").mkdir(parents=True)
    assert source_folders("openclaw", home=tmp_path, env={}) == [
        str(tmp_path / ".openclaw/agents/coder/sessions"), str(tmp_path / ".openclaw/agents/main/sessions")]
    state = tmp_path / "state"
    (state / "agents" / "a" / "sessions").mkdir(parents=True)
    assert default_folders("openclaw", home=tmp_path, env={"OPENCLAW_STATE_DIR": str(state)}) == [
        state / "agents" / "a" / "sessions"]
