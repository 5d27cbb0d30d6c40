"""Claude Code reader: parentUuid chains, streamed-line merging, parallel tool calls, sidechains, compaction, hooks."""

from __future__ import annotations

import gzip
import json

import pytest

from logminer.reading.formats import claude_code, claude_hooks
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Session, Skipped

SESSION_ID = "5b0e6f1c-2d7a-4c3e-9a41-7f2d8c1e0b93"


def parse(path) -> list:
    return list(claude_code.parse(SourceFile.open(path)))


def sessions(events) -> list[Session]:
    return [e for e in events if isinstance(e, Session)]


def nonblank_lines(path) -> int:
    return sum(1 for line in SourceFile.open(path).data.split(b"\n") if line.strip())


def fixture_dir(example_logs):
    return example_logs / "claude-code" / "-home-dev-projects-inventory"


def test_main_session_chain_merge_and_compaction(example_logs):
    path = fixture_dir(example_logs) / f"{SESSION_ID}.jsonl"
    assert claude_code.sniff(SourceFile.open(path))
    events = parse(path)
    main, continued = sessions(events)
    # 4 streamed lines of msg_01A7k... merge into one assistant turn (thinking + text + 2 parallel tool calls)
    assert "".join(t.role[0] for t in main.turns) == "uattatata"
    first = main.turns[1]
    assert first.reasoning.startswith("I should run the failing test")
    assert first.text == "Let me run the test and read the restock code."
    assert [c.name for c in first.tool_calls] == ["Bash", "Read"]
    assert json.loads(first.tool_calls[0].arguments)["command"] == "python -m pytest tests/test_stock.py -x -q"
    bash_result, read_result = main.turns[2], main.turns[3]
    assert bash_result.is_error and bash_result.name == "Bash"
    assert bash_result.tool_call_id == "toolu_01Qm3ZtY8wXk2VbN5cR7hJ4d"
    assert not read_result.is_error and read_result.tool_call_id == "toolu_01Hc6PwE1sLd9FgT3yUa8kMn"
    # toolUseResult repeats the output with an "Error: " prefix: it must not be copied into the text
    assert not bash_result.text.startswith("Error:") and bash_result.text.count("assert 5 == 15") == 1
    # the abandoned answer "Done. Anything else?" (a sibling branch) is not in the session
    assert all("Anything else" not in t.text for t in main.turns)
    assert "a3f9c2e1b7d04e6f8a1b2c3d4e5f60718293a4b5" in main.turns[-1].text  # SHAs survive
    assert main.session_id == SESSION_ID and main.parent_session_id is None
    assert main.model == "claude-sonnet-4-5-20250929"
    assert (main.started_at, main.ended_at) == ("2025-11-03T09:14:02.101Z", "2025-11-03T09:14:18.800Z")
    assert main.metadata["cwd"] == "/home/dev/projects/inventory" and main.metadata["relation"] == "main"
    assert main.metadata["title"] == "Fix failing stock-count test"  # the summary line's leafUuid is U(14)
    assert continued.session_id == f"{SESSION_ID}/compact-1" and continued.parent_session_id == SESSION_ID
    assert continued.turns[0].text.startswith("This session is being continued")
    assert "".join(t.role[0] for t in continued.turns) == "uuata"
    reasons = {e.reason: e.records for e in events if isinstance(e, Skipped)}
    assert reasons[claude_code.OFF_CHAIN] == 1
    assert reasons[claude_code.SKIP_REASONS["system"]] == 2  # stop hook summary + compact boundary
    assert reasons[claude_code.SKIP_REASONS["progress"]] == 1
    assert sum(e.records for e in events) == nonblank_lines(path) == 23
    assert (main.line_start, main.line_end, continued.line_start, continued.line_end) == (3, 17, 19, 23)
    data = SourceFile.open(path).data
    assert data[main.byte_start:main.byte_end].startswith(b'{"parentUuid": null')


def test_subagent_file_is_a_linked_sidechain(example_logs):
    path = fixture_dir(example_logs) / "subagents" / "agent-a4c9e2f.jsonl"
    (session,) = parse(path)
    assert session.session_id == f"{SESSION_ID}/agent-a4c9e2f" and session.parent_session_id == SESSION_ID
    assert session.metadata["relation"] == "sidechain" and session.metadata["subagent_file"] is True
    assert [len(t.tool_calls) for t in session.turns] == [0, 1, 0, 0]
    assert session.model == "claude-haiku-4-5-20251001" and session.records == 4


def test_malformed_line_in_the_middle_is_rejected_and_the_rest_parses(example_logs, tmp_path):
    lines = (fixture_dir(example_logs) / f"{SESSION_ID}.jsonl").read_text().splitlines()
    lines.insert(9, '{"parentUuid": "broken", "type": "user", "message": {')
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    events = parse(path)
    (rejected,) = [e for e in events if isinstance(e, Rejected)]
    assert rejected.line == 10 and rejected.reason.startswith("invalid JSON")
    assert [len(s.turns) for s in sessions(events)] == [9, 5]
    assert sum(e.records for e in events) == 24


def test_non_object_lines_are_rejected_and_unknown_line_types_counted(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"type": "summary", "summary": "t", "leafUuid": "x"}\n[1, 2]\n'
                    '{"type": "telemetry", "sessionId": "s", "uuid": "u"}\n\n')
    events = parse(path)
    assert [(type(e).__name__, e.line) for e in events] == [("Rejected", 2), ("Skipped", 1), ("Skipped", 3)]
    assert events[2].reason == "unknown claude-code line type 'telemetry'"  # format drift: counted, not rejected


def test_hook_log_is_recognised_not_a_conversation(example_logs):
    path = example_logs / "claude-code-hooks" / "hooks.jsonl"
    source = SourceFile.open(path)
    assert claude_hooks.sniff(source) and not claude_code.sniff(source)
    assert list(claude_hooks.parse(source)) == [Skipped(str(path), 1, claude_hooks.REASON, records=3)]


# Real files: counts by jq over each file (commands in the comments), compared with the reader.
# turns = distinct assistant message.id + tool_result blocks in user lines + user lines whose content is a string
#         + user lines with text blocks:
#   jq -r 'select(.type=="assistant")|.message.id' F | sort -u | wc -l
#   jq '[select(.type=="user")|.message.content|arrays|.[]|select(.type=="tool_result")]|length' F | paste -sd+ | bc
#   jq -r 'select(.type=="user")|.message.content|strings' F | wc -l   (and arrays with any text block)
# calls = jq -r 'select(.type=="assistant")|.message.content[]|select(.type=="tool_use")|.id' F | sort -u | wc -l
# spotter main: 152 + 186 + 5 + 1 = 344 turns, 186 calls; one compaction (system compact_boundary) → 2 sessions.
# fasthooks main: 12 + 10 + 9 + 0 = 31 turns, 10 calls; one compact_boundary → 2 sessions.
# acompact: 1 + 0 + 3 = 4, but two of the user lines hang off parents in the main file (not on the chain) → 2 turns.
REAL_COUNTS = {
    "spotter_258c7280_main.jsonl": (2, 344, 186),
    "spotter_258c7280_subagent_agent-a881341.jsonl": (1, 6, 2),
    "spotter_258c7280_subagent_agent-acompact-fffbd0.jsonl": (1, 2, 0),
    "spotter_short.jsonl": (1, 5, 2),
    "spotter_tool_heavy.jsonl": (1, 17, 6),
    "fasthooks_sample_main_transcript.jsonl": (2, 31, 10),
    "fasthooks_sample_agent_sidechain.jsonl": (1, 2, 0),
}


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_sessions_counts(real_logs, name):
    path = real_logs / "claude-code-jsonl" / name
    events = parse(path)
    found = sessions(events)
    assert (len(found), sum(len(s.turns) for s in found),
            sum(len(t.tool_calls) for s in found for t in s.turns)) == REAL_COUNTS[name]
    assert sum(e.records for e in events) == nonblank_lines(path)
    assert not [e for e in events if isinstance(e, Rejected)]
    for session in found:  # every call answered inside its session, no call twice (parallel branches merged)
        calls = [c.id for t in session.turns for c in t.tool_calls]
        assert len(calls) == len(set(calls))
        assert set(calls) == {t.tool_call_id for t in session.turns if t.role == "tool"}


def test_real_sidechain_links_and_uuids_survive(real_logs):
    folder = real_logs / "claude-code-jsonl"
    (subagent,) = sessions(parse(folder / "spotter_258c7280_subagent_agent-a881341.jsonl"))
    assert subagent.parent_session_id == "258c7280-ae70-4798-800f-63464d01a85d"
    (compactor,) = sessions(parse(folder / "spotter_258c7280_subagent_agent-acompact-fffbd0.jsonl"))
    assert compactor.metadata["relation"] == "compaction-agent"
    main = sessions(parse(folder / "spotter_short.jsonl"))[0]
    raw_ids = {b["id"] for line in (folder / "spotter_short.jsonl").read_text().splitlines()
               for b in (json.loads(line).get("message") or {}).get("content") or [] if isinstance(b, dict) and "id" in b}
    assert raw_ids == {c.id for t in main.turns for c in t.tool_calls}


def test_real_devdocs_one_entry_files(real_logs):
    """59 one-line extracts: every line is a session turn or a Skipped bookkeeping line, none rejected."""
    folder = real_logs / "claude-code-jsonl" / "claude-code-log-devdocs"
    paths = sorted(folder.glob("*.jsonl"))
    events = [e for path in paths for e in parse(path)]
    assert len(paths) == 59 and sum(e.records for e in events) == 59
    assert not [e for e in events if isinstance(e, Rejected)]
    # 4 files hold bookkeeping only: file_history_snapshot, queue_operation, summary, system_info
    assert len([e for e in events if isinstance(e, Skipped)]) == 4 and len(sessions(events)) == 55
    thinking = sessions(parse(folder / "assistant_thinking.jsonl"))[0]
    assert thinking.turns[0].reasoning and thinking.turns[0].role == "assistant"
    error = sessions(parse(folder / "tools_Bash-tool_result_error.jsonl"))[0]
    assert error.turns[0].is_error and error.turns[0].text == "please add transformer.js too first"


def test_old_in_file_sidechain_becomes_its_own_session(tmp_path):
    def line(uuid, parent, kind, content, sidechain=False, mid=None):
        message = {"role": kind, "content": content, **({"id": mid, "model": "claude-3-5-sonnet"} if mid else {})}
        return json.dumps({"parentUuid": parent, "isSidechain": sidechain, "sessionId": "s-1", "type": kind,
                           "uuid": uuid, "message": message, "timestamp": f"2025-01-01T00:00:0{len(uuid)}Z"})
    rows = [line("a", None, "user", "main question"),
            line("side-1", None, "user", "sub task", sidechain=True),
            line("side-2", "side-1", "assistant", [{"type": "text", "text": "sub answer"}], True, "msg_s"),
            line("b", "a", "assistant", [{"type": "text", "text": "main answer"}], mid="msg_m")]
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(rows) + "\n")
    main, side = sessions(parse(path))
    assert [t.text for t in main.turns] == ["main question", "main answer"] and main.session_id == "s-1"
    assert [t.text for t in side.turns] == ["sub task", "sub answer"]
    assert side.session_id == "s-1/sidechain-side-1" and side.parent_session_id == "s-1"
    assert (main.records, side.records, main.line_start, main.line_end) == (2, 2, 1, 4)


def entry(kind, uuid, parent, **fields):
    return {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "s26", "isSidechain": False,
            "timestamp": "2026-01-01T00:00:00.000Z", "cwd": "/w", **fields}


def test_2026_attachments_and_line_types(tmp_path):
    rows = [{"type": "mode", "mode": "normal", "sessionId": "s26"},
            {"type": "permission-mode", "permissionMode": "ask", "sessionId": "s26"},
            entry("user", "u1", None, message={"role": "user", "content": "Fix @src/a.py"}),
            entry("attachment", "t1", "u1", attachment={"type": "file", "filename": "src/a.py", "content": {
                "type": "text", "file": {"filePath": "src/a.py", "content": "def a():\n    return 1\n"}}}),
            entry("attachment", "t2", "t1", attachment={"type": "todo_reminder", "content": [], "itemCount": 0}),
            entry("attachment", "t3", "t2", attachment={"type": "queued_command", "prompt": "also add a test"}),
            entry("assistant", "a1", "t3", message={"role": "assistant", "id": "msg_1", "model": "claude-x",
                                                    "content": [{"type": "text", "text": "Done."}]}),
            {"type": "ai-title", "aiTitle": "Fix a", "sessionId": "s26"},
            {"type": "worktree-state", "worktreeSession": {}, "sessionId": "s26"},
            {"type": "hyperdrive", "sessionId": "s26"}]
    path = tmp_path / "s26.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert claude_code.sniff(SourceFile.open(path))
    events = parse(path)
    (session,) = sessions(events)
    assert [(t.role, t.text) for t in session.turns] == [
        ("user", "Fix @src/a.py"), ("user", "def a():\n    return 1"), ("user", "also add a test"),
        ("assistant", "Done.")]
    reasons = {e.reason: e.records for e in events if isinstance(e, Skipped)}
    assert reasons == {
        claude_code.SKIP_REASONS["mode"]: 1, claude_code.SKIP_REASONS["permission-mode"]: 1,
        claude_code.SKIP_REASONS["ai-title"]: 1, claude_code.SKIP_REASONS["worktree-state"]: 1,
        "claude-code attachment todo_reminder: no text for the model in the file (UI state, or a reminder Claude "
        "Code writes)": 1,
        "unknown claude-code line type 'hyperdrive'": 1}
    assert sum(e.records for e in events) == len(rows)


# Composite fixture of 2.1.80-2.1.220 line shapes (MANIFEST.tsv): 20 message lines (10 user + 10 assistant), 3
# tool_use, 38 attachments and 15 new line types. Its trimmed values give most lines the same uuid
# "[trimmed for fixture]", so that conversation has no chain to follow and is read in file order; the sidechain of
# ses_stage0_small keeps its chain (u1 → a1 → u2 → a3 → u3): a2 (a sibling reply) and u2b (a result for a call
# without an id) are off it. Sessions: the sidechain and the trimmed conversation = 2; 18 of the 20 messages read.
def test_real_2026_composite_every_line_has_a_named_reason(real_logs):
    path = real_logs / "claude-code-jsonl-2026" / "agentsessions_small_composite.jsonl"
    events = parse(path)
    found = sessions(events)
    assert len(found) == 2 and sum(len(t.tool_calls) for s in found for t in s.turns) == 3
    reasons = {e.reason: e.records for e in events if isinstance(e, Skipped)}
    assert not [r for r in reasons if r.startswith("unknown")] and not [e for e in events if isinstance(e, Rejected)]
    assert reasons[claude_code.OFF_CHAIN] == 2
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    messages = sum(r["type"] in ("user", "assistant") for r in rows)
    attachments = sum(r["type"] == "attachment" for r in rows)
    attachments_skipped = sum(n for r, n in reasons.items() if r.startswith("claude-code attachment"))
    assert (messages, attachments) == (20, 38) and attachments_skipped < attachments
    assert sum(s.records for s in found) == (messages - 2) + (attachments - attachments_skipped)
    assert sum(e.records for e in events) == nonblank_lines(path) == len(rows)
