"""Planted secrets in the Pi / OpenClaw, Gemini CLI, Codex 0.144+ and Claude Code 2026 formats never reach ingest's
outputs, and every input record lands in one bucket of report.json."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from logminer.ingest.pipeline import IngestOptions, ingest
from tests.logminer.ingest.test_pipeline import SECRETS
from tests.logminer.ingest.test_redact import PLANTED, PRIVATE_KEY

TEXT = ("\n".join(context.format(value) for _, value, context in PLANTED) + "\n" + PRIVATE_KEY
        + "\nworking in /home/alice/src and /Users/alice/x, mail bob.jones@example.com")
T = "2026-03-01T10:00:00.000Z"


def jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def pi_rows(session_id: str, custom_type: str) -> list[dict]:
    def msg(entry_id, parent, role, content, **extra):
        return {"type": "message", "id": entry_id, "parentId": parent, "timestamp": T,
                "message": {"role": role, "content": content, **extra}}

    return [{"type": "session", "version": 3, "id": session_id, "timestamp": T, "cwd": "/home/alice/src"},
            msg("a", None, "user", [{"type": "text", "text": TEXT}]),
            msg("b", "a", "assistant", [{"type": "thinking", "thinking": TEXT}, {"type": "text", "text": TEXT},
                                        {"type": "toolCall", "id": "c1", "name": "bash",
                                         "arguments": {"command": TEXT}}], stopReason="toolUse"),
            msg("c", "b", "toolResult", [{"type": "text", "text": TEXT}], toolCallId="c1", toolName="bash"),
            msg("d", "c", "bashExecution", None, command=TEXT, output=TEXT, exitCode=0, cancelled=False,
                truncated=False),
            {"type": "compaction", "id": "e", "parentId": "d", "timestamp": T, "summary": TEXT,
             "firstKeptEntryId": "c", "tokensBefore": 1},
            {"type": "custom_message", "customType": custom_type, "content": TEXT, "display": False, "id": "f",
             "parentId": "e", "timestamp": T},
            msg("g", "f", "assistant", [{"type": "text", "text": "done"}], stopReason="stop")]


def gemini_messages() -> list[dict]:
    return [{"id": "m1", "timestamp": T, "type": "user", "content": [{"text": TEXT}]},
            {"id": "m2", "timestamp": T, "type": "gemini", "content": TEXT,
             "thoughts": [{"subject": TEXT, "description": TEXT}],
             "toolCalls": [{"id": "t1", "name": "run_shell_command", "args": {"command": TEXT}, "status": "success",
                            "result": [{"functionResponse": {"id": "t1", "name": "run_shell_command",
                                                             "response": {"output": TEXT}}}]}]}]


def write_logs(folder: Path) -> dict[str, int]:
    """One file per format; returns file → its record count, counted from the file."""
    jsonl(folder / "pi" / "s.jsonl", pi_rows("pi-1", "note"))
    jsonl(folder / "openclaw" / "oc-1.jsonl", pi_rows("oc-1", "openclaw.sessions_yield"))
    header = {"sessionId": "g-1", "projectHash": "ab" * 32, "startTime": T, "lastUpdated": T, "kind": "main"}
    messages = gemini_messages()
    jsonl(folder / "gemini" / "session-a.jsonl", [header, messages[0], {"$set": {"summary": TEXT}}, messages[1],
                                                  messages[1]])
    document = dict(header, sessionId="g-2", messages=messages)
    (folder / "gemini" / "session-b.json").write_text(json.dumps(document, indent=2))
    envelope = [{"timestamp": T, "type": kind, "payload": payload} for kind, payload in [
        ("world_state", {"full": True, "state": {"agents_md": {"text": TEXT}}}),
        ("session_meta", {"id": "cx-1", "cwd": "/home/alice/src"}),
        ("response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": TEXT}]}),
        ("response_item", {"type": "agent_message", "author": "/root/a", "recipient": "/root",
                           "content": [{"type": "input_text", "text": TEXT}]}),
        ("inter_agent_communication", {"author": "/root/b", "recipient": "/root", "content": TEXT}),
        ("response_item", {"type": "image_generation_call", "id": "ig", "revised_prompt": TEXT, "result": TEXT}),
        ("response_item", {"type": "tool_search_call", "call_id": "ts", "arguments": {"query": TEXT}}),
        ("response_item", {"type": "function_call_output", "call_id": "ts", "output": TEXT}),
        ("event_msg", {"type": "item_completed", "item": {"type": "AgentMessage", "text": TEXT}})]]
    jsonl(folder / "codex" / "rollout.jsonl", envelope)
    base = {"sessionId": "cc-1", "isSidechain": False, "timestamp": T, "cwd": "/home/alice/src"}
    jsonl(folder / "claude" / "cc-1.jsonl", [
        {"type": "mode", "mode": "normal", "sessionId": "cc-1"},
        dict(base, type="user", uuid="u1", parentUuid=None, message={"role": "user", "content": TEXT}),
        dict(base, type="attachment", uuid="t1", parentUuid="u1", attachment={
            "type": "file", "filename": "a", "content": {"type": "text", "file": {"filePath": "a", "content": TEXT}}}),
        dict(base, type="attachment", uuid="t2", parentUuid="t1", attachment={"type": "queued_command",
                                                                              "prompt": TEXT}),
        dict(base, type="assistant", uuid="a1", parentUuid="t2", message={
            "role": "assistant", "id": "m1", "content": [{"type": "text", "text": TEXT}]}),
        {"type": "ai-title", "aiTitle": TEXT, "sessionId": "cc-1"}])
    counts = {}
    for path in folder.rglob("*"):
        if path.is_file():
            counts[str(path)] = 2 if path.suffix == ".json" else len(path.read_text().splitlines())
    return counts


def test_planted_secrets_never_reach_any_output_and_records_add_up(tmp_path):
    counts = write_logs(tmp_path / "logs")
    out = tmp_path / "out"
    report = ingest([str(tmp_path / "logs")], out / "sessions.parquet", IngestOptions())
    raw = (out / "sessions.parquet").read_bytes() + (out / "report.json").read_bytes()
    text = pl.read_parquet(out / "sessions.parquet").write_ndjson() + (out / "report.json").read_text()
    assert text.count("<SECRET:aws_access_key>") >= 20  # the planted text was read (redacted), not lost
    for value in SECRETS:
        assert value not in text, value
        assert value.encode() not in raw, value
    data = json.loads((out / "report.json").read_text())
    assert {stats["format"] for stats in data["files"].values()} == {"pi", "gemini-cli", "codex", "claude-code"}
    assert {path: stats["records"] for path, stats in data["files"].items()} == counts
    totals = data["totals"]
    assert totals["records"] == sum(counts.values()) == (
        totals["records_kept"] + totals["records_filtered"] + totals["records_rejected"])
    assert totals["records_rejected"] == 0 and report.totals()["sessions_kept"] >= 6
    agents = set(pl.read_parquet(out / "sessions.parquet")["agent"])
    assert agents == {"pi", "openclaw", "gemini-cli", "codex", "claude-code"}
