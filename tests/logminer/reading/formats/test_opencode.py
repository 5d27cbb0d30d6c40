"""OpenCode storage reader: sessions spread over session/message/part files, steps, orphans, bad files."""

from __future__ import annotations

import json
import shutil

from logminer.reading.formats import opencode
from logminer.schema import Rejected, Session, Skipped


def test_storage_tree(example_logs):
    storage = example_logs / "opencode" / "storage"
    assert opencode.sniff_dir(str(storage)) and not opencode.sniff_dir(str(storage / "session"))
    events = list(opencode.parse_dir(str(storage)))
    [session] = [e for e in events if isinstance(e, Session)]
    [project] = [e for e in events if isinstance(e, Skipped)]
    assert project.reason == "opencode project record"
    # user message; assistant message of 3 steps: (text+reasoning, grep call) → result; (edit, bash calls) →
    # 2 results (bash failed); (closing text)
    assert "".join(t.role[0] for t in session.turns) == "uatatta"
    assert [c.name for t in session.turns for c in t.tool_calls] == ["grep", "edit", "bash"]
    assert session.turns[1].reasoning == "Find where the status bar is rendered."
    assert [(t.tool_call_id, t.is_error) for t in session.turns if t.role == "tool"] == [
        ("call_oc1", False), ("call_oc2", False), ("call_oc3", True)]
    assert session.turns[5].text == "Error: jest exited with code 1"
    files = sum(1 for p in storage.rglob("*.json"))
    assert session.records == files - 1 == 16  # session + 2 messages + 13 parts; the project file is Skipped
    assert session.session_id == "ses_6e9a1b2c3ffe1AbCdEfGhIjK" and session.model == "qwen3-coder-480b"
    assert session.metadata["title"] == "Add word count to status bar"


def test_orphans_and_bad_files_are_counted(example_logs, tmp_path):
    storage = tmp_path / "storage"
    shutil.copytree(example_logs / "opencode" / "storage", storage)
    (storage / "message" / "ses_gone").mkdir()
    (storage / "message" / "ses_gone" / "msg_x.json").write_text(json.dumps({"id": "msg_x", "role": "user"}))
    part = next((storage / "part").rglob("prt_91a0c1d2f004.json"))
    part.write_text("{truncated")
    (storage / "notes.md").write_text("hello")
    events = list(opencode.parse_dir(str(storage)))
    reasons = sorted(e.reason for e in events if not isinstance(e, Session))
    assert reasons == ["invalid JSON: Expecting property name enclosed in double quotes",
                       "not a file of the opencode storage layout", "opencode message of no stored session",
                       "opencode project record"]
    assert sum(e.records for e in events) == sum(1 for p in storage.rglob("*") if p.is_file())
    [session] = [e for e in events if isinstance(e, Session)]
    assert session.turns[1].text == ""  # the broken text part is lost, the rest of the step is kept
    assert isinstance(next(e for e in events if isinstance(e, Rejected)), Rejected)
