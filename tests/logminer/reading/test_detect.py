"""Format detection: every real-logs folder and every example folder is routed to the right reader."""

from __future__ import annotations

import os

import pytest

from logminer.reading.detect import claimed_folders, detect_format, read_inputs
from logminer.reading.registry import FORMAT_MODULES, load_formats
from logminer.reading.sources import SourceFile, expand_inputs
from logminer.schema import Rejected, Session

# real-logs folder → (module, expected NAME); every module must be in the format table
REAL_FOLDERS = [
    ("swe-agent-traj", "swe_agent", "swe-agent"),
    ("mini-swe-agent-traj", "mini_swe_agent", "mini-swe-agent"),
    ("openhands-events", "openhands", "openhands"),
    ("openhands-eval-output", "openhands", "openhands"),
    ("openhands-v1-events", "openhands_v1", "openhands-v1"),
    ("aider-chat-history", "aider", "aider"),
    ("swebench-instances", "swebench", "swe-bench"),
    ("swebench-predictions", "swebench", "swe-bench"),
    ("bfcl", "bfcl", "bfcl"),
    ("plain-text", "plain_text", "plain-text"),
    ("plain-code", "plain_text", "plain-text"),
    ("claude-code-jsonl", "claude_code", "claude-code"),
    ("codex-rollout", "codex", "codex"),
    ("llm-request-log", "llm_logs", "llm-log"),
    ("llm-completion-log", "llm_logs", "llm-log"),
    ("sharegpt-toolcall", "sharegpt", "sharegpt"),
    ("openai-messages-toolcall", "openai_chat", "openai-chat"),
    ("claude-code-jsonl-2026", "claude_code", "claude-code"),
    ("codex-rollout-2026", "codex", "codex"),
    ("pi-session", "pi", "pi"),
    ("openclaw-session", "pi", "pi"),
    ("gemini-cli-jsonl", "gemini_cli", "gemini-cli"),
    ("gemini-cli-json", "gemini_cli", "gemini-cli"),
    ("crush-sqlite", "crush", "crush"),
    ("cursor-state-vscdb", "cursor", "cursor"),
    ("copilot-cli-events", "copilot_cli", "copilot-cli"),
    ("copilot-cli-legacy-json", "copilot_cli", "copilot-cli"),
    ("kimi-code-wire", "kimi_code", "kimi-code"),
    ("grok-cli", "grok", "grok"),
    ("antigravity-cli-steps", "antigravity", "antigravity"),
]


def test_table_covers_every_real_folder(real_logs):
    folders = {p.name for p in real_logs.iterdir() if p.is_dir()}
    assert folders == {folder for folder, _, _ in REAL_FOLDERS}


@pytest.mark.parametrize(("folder", "module", "name"), REAL_FOLDERS)
def test_real_folder_detected(real_logs, folder, module, name):
    assert module in FORMAT_MODULES, f"{folder}: its reader {module} is not in the format table"
    events = list(read_inputs([str(real_logs / folder)]))  # files, folder formats and databases alike
    assert events and {format_name for _, format_name, _ in events} == {name}


# example folder → expected NAME of every event (folder formats included)
EXAMPLE_FOLDERS = [
    ("swe-agent", "swe-agent"),
    ("mini-swe-agent", "mini-swe-agent"),
    ("openhands", "openhands"),
    ("openhands-v1", "openhands-v1"),
    ("aider", "aider"),
    ("cline", "cline"),
    ("opencode", "opencode"),
    ("qwen-code", "qwen-code"),
    ("pi", "pi"),
    ("openclaw", "pi"),
    ("gemini-cli", "gemini-cli"),
    ("plain-text", "plain-text"),
]


@pytest.mark.parametrize(("folder", "name"), EXAMPLE_FOLDERS)
def test_example_folder_detected(example_logs, folder, name):
    events = list(read_inputs([str(example_logs / folder)]))
    assert events and {format_name for _, format_name, _ in events} == {name}
    assert any(isinstance(event, Session) for _, _, event in events)


def test_folder_formats_claim_their_folders(example_logs):
    formats = load_formats()
    paths = expand_inputs([str(example_logs)])
    claimed = {os.path.relpath(folder, example_logs): module.name for folder, module in
               claimed_folders(paths, formats).items()}
    assert claimed == {
        "cline/tasks/1736412345678": "cline",
        "cline-cli/sessions/1790762400000_abcde": "cline-cli",
        "copilot-cli/session-state/0b2a81da-5c1e-4f7a-9a43-2d8e5f6a7b10": "copilot-cli",
        "grok/sessions/%2Fwork%2Fparser/019f6851-7ec4-7ef0-97d3-03f3eee38755": "grok",
        "opencode/storage": "opencode",
        "openhands-v1/conversations/5b2e9c0d41f34a6c8e7d2a1b3c4d5e6f": "openhands-v1",
    }


@pytest.mark.parametrize(("folder", "records"), [
    ("cline", 6 + 2),  # 6 API messages (items) + ui_messages.json + task_metadata.json
    ("opencode", 17),  # 17 JSON files: project, session, 2 messages, 13 parts
    ("openhands-v1", 10 + 1 + 7),  # count_lines.jsonl lines + base_state.json + 7 event files
])
def test_records_add_up_in_folder_formats(example_logs, folder, records):
    events = [event for _, _, event in read_inputs([str(example_logs / folder)])]
    assert sum(event.records for event in events) == records


def test_binary_garbage_is_rejected(tmp_path):
    blob = tmp_path / "core.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    [(_, name, event)] = list(read_inputs([str(blob)]))
    assert name is None and event.reason == "binary data, not a transcript"


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe{\x00\"\x00a", "not UTF-16 text (byte 6)"),  # odd length: the byte after BOM, `{`, `"` is half a unit
    (b"\xff\xfe\x00\xd8{\x00", "not UTF-16 text (byte 2)"),  # a lone surrogate
])
def test_broken_utf16_is_rejected_with_the_byte(tmp_path, data, reason):
    path = tmp_path / "odd.json"
    path.write_bytes(data)
    [(_, name, event)] = list(read_inputs([str(path)]))
    assert isinstance(event, Rejected) and (event.line, event.reason) == (0, reason)


def test_utf16_with_bom_is_read(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("first line\nsecond line\n".encode("utf-16"))
    [(_, name, event)] = list(read_inputs([str(path)]))
    assert name == "plain-text" and isinstance(event, Session) and "second line" in event.turns[0].text
