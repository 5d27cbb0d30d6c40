"""Detection over every bundled example and real log: each folder of helper-A formats goes to its reader, and no
other folder's file is mistaken for one of them (files inside folders a folder format claims are that format's)."""

from __future__ import annotations

import os

import pytest

from logminer.reading.detect import claimed_folders, detect_format
from logminer.reading.registry import load_formats
from logminer.reading.sources import SourceFile, expand_inputs

EXAMPLE_FOLDERS = {
    "claude-code": "claude-code", "claude-code-hooks": "claude-code-hooks", "codex": "codex",
    "openai-chat": "openai-chat", "openai-responses": "openai-responses", "anthropic-messages": "anthropic-messages",
    "sharegpt": "sharegpt", "llm-log": "llm-log",
}
REAL_FOLDERS = {
    "claude-code-jsonl": "claude-code", "codex-rollout": "codex",
    "claude-code-jsonl-2026": "claude-code", "codex-rollout-2026": "codex", "openai-messages-toolcall": "openai-chat",
    "sharegpt-toolcall": "sharegpt", "llm-completion-log": "llm-log", "llm-request-log": "llm-log",
}
OURS = set(EXAMPLE_FOLDERS.values())
NOT_LOGS = {"MANIFEST.tsv", "README.md"}


def detected(root) -> dict[str, list[tuple[str, str | None]]]:
    """Top folder → [(file, detected format name)], files in folder-format folders excluded."""
    formats = load_formats()
    paths = [p for p in expand_inputs([str(root)]) if os.path.basename(p) not in NOT_LOGS]
    claimed = claimed_folders(paths, formats)
    found: dict[str, list[tuple[str, str | None]]] = {}
    for path in paths:
        if any(path.startswith(folder + os.sep) for folder in claimed):
            continue
        fmt = detect_format(SourceFile.open(path), formats)
        top = os.path.relpath(path, root).split(os.sep)[0]
        found.setdefault(top, []).append((path, fmt.name if fmt else None))
    return found


def check(found, expected) -> None:
    for folder, name in expected.items():
        assert found[folder] and all(got == name for _, got in found[folder]), (folder, found[folder])
    for folder, files in found.items():
        if folder not in expected:
            assert not [(p, got) for p, got in files if got in OURS], folder


def test_example_logs(example_logs):
    check(detected(example_logs), EXAMPLE_FOLDERS)


def test_real_logs(real_logs):
    found = detected(real_logs)
    check(found, REAL_FOLDERS)
    assert len(found["claude-code-jsonl"]) == 66  # 7 sessions + 59 one-entry extracts


@pytest.mark.parametrize("payload", [b"\x00\x01\x02binary" * 64, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b""])
def test_binary_and_empty_files_are_not_claimed(payload):
    source = SourceFile("blob.bin", payload)
    for module in load_formats():
        if module.name in OURS | {"claude-code-hooks"}:
            assert module.sniff is None or not module.sniff(source), module.name
