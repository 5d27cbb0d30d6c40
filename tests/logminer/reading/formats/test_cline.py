"""Cline task-folder reader: Anthropic history with Cline's extra fields, companion files, bad folders."""

from __future__ import annotations

import json
import shutil

from logminer.reading.formats import cline
from logminer.schema import Rejected, Session, Skipped

TASK = ("cline", "tasks", "1736412345678")


def test_task_folder(example_logs):
    folder = example_logs.joinpath(*TASK)
    assert cline.sniff_dir(str(folder)) and not cline.sniff_dir(str(folder.parent))
    events = list(cline.parse_dir(str(folder)))
    [session] = [e for e in events if isinstance(e, Session)]
    skipped = sorted(e.source_file.rsplit("/", 1)[1] for e in events if isinstance(e, Skipped))
    assert skipped == ["task_metadata.json", "ui_messages.json"]
    # 6 API messages; the second user message holds 2 tool_result blocks → 2 tool turns
    assert "".join(t.role[0] for t in session.turns) == "uatatta"
    assert sum(len(t.tool_calls) for t in session.turns) == 3 and session.records == 6
    assert session.session_id == "1736412345678" and session.model == "claude-sonnet-4-5"
    assert session.turns[1].reasoning == "Search for usages first."
    assert [(t.tool_call_id, t.name, t.is_error) for t in session.turns if t.role == "tool"] == [
        ("toolu_c1", "search_files", False),
        ("toolu_c2", "replace_in_file", False),
        ("toolu_c3", "replace_in_file", True),
    ]
    assert session.started_at == "2025-01-09T08:45:45.700Z"
    assert "<environment_details>" in session.turns[0].text


def test_broken_history_and_stray_files(example_logs, tmp_path):
    folder = tmp_path / "1736400000000"
    shutil.copytree(example_logs.joinpath(*TASK), folder)
    (folder / "api_conversation_history.json").write_text('[{"role": "user", "content": "hi"},\n{"role": ')
    (folder / "core.dump").write_bytes(b"\x00\x01")
    events = list(cline.parse_dir(str(folder)))
    rejected = sorted((e.source_file.rsplit("/", 1)[1], e.line) for e in events if isinstance(e, Rejected))
    assert rejected == [("api_conversation_history.json", 2), ("core.dump", 0)]
    (folder / "api_conversation_history.json").write_text(json.dumps([{"role": "system", "content": "x"}]))
    [bad] = [e for e in cline.parse_dir(str(folder)) if isinstance(e, Rejected) and "message 0" in e.reason]
    assert bad.records == 1


def test_roo_and_kilo_task_folders_are_read_and_labelled(example_logs, tmp_path):
    from tests.logminer.reading.formats.agent_checks import SECRET_TEXT, assert_secret_never_output, read

    for extension, agent in (("rooveterinaryinc.roo-cline", "roo-code"), ("kilocode.kilo-code", "kilo-code"),
                             ("saoudrizwan.claude-dev", "cline")):
        folder = tmp_path / extension / "User" / "globalStorage" / extension / "tasks" / "1736412345678"
        shutil.copytree(example_logs.joinpath(*TASK), folder)
        (folder / "history_item.json").write_text(json.dumps({"id": "1736412345678", "task": "rename"}))
        result = read(folder.parent)
        assert result.formats == {"cline"} and not result.rejected
        assert [s.agent for s in result.sessions] == [agent]
        assert "task history entry (title, tokens, cost)" in result.reasons()
    roo = tmp_path / "secret" / "rooveterinaryinc.roo-cline" / "tasks" / "1"
    roo.mkdir(parents=True)
    (roo / "api_conversation_history.json").write_text(json.dumps([{"role": "user", "content": SECRET_TEXT}]))
    (roo / "ui_messages.json").write_text("[]")
    assert_secret_never_output(roo.parent, tmp_path / "out")
