"""Claude Code hook logs: recognised and counted as one Skipped, never read as a conversation; a stray line is
rejected with its line number and the counts add up."""

from __future__ import annotations

import json

from logminer.reading.formats import claude_hooks
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped

HOOK_LINES = [{"ts": "2026-01-01T00:00:00Z", "event": "PreToolUse", "tool": "Bash"},
              {"ts": "2026-01-01T00:00:01Z", "event": "Stop"}]


def _source(lines: list[str]) -> SourceFile:
    return SourceFile("hooks.jsonl", ("\n".join(lines) + "\n").encode())


def test_hook_log_is_one_skip_counting_every_line():
    source = _source([json.dumps(line) for line in HOOK_LINES * 3])
    assert claude_hooks.sniff(source)
    assert list(claude_hooks.parse(source)) == [Skipped("hooks.jsonl", 1, claude_hooks.REASON, records=6)]


def test_conversation_lines_are_not_hook_logs():
    message = {"ts": "x", "event": "y", "message": {"role": "user", "content": "hi"}}
    assert not claude_hooks.sniff(_source([json.dumps(message)]))
    assert not claude_hooks.sniff(_source(["plain text, not JSON"]))


def test_stray_lines_are_rejected_and_everything_adds_up(example_logs):
    source = _source([json.dumps(HOOK_LINES[0]), "{broken", json.dumps({"other": 1}), json.dumps(HOOK_LINES[1])])
    events = list(claude_hooks.parse(source))
    rejected = [e for e in events if isinstance(e, Rejected)]
    assert [e.line for e in rejected] == [2, 3] and "expected a JSON object with `ts` and `event`" in rejected[1].reason
    assert sum(e.records for e in events) == 4
    bundled = [p for p in (example_logs / "claude-code-hooks").iterdir() if p.is_file()]
    assert bundled and all(claude_hooks.sniff(SourceFile.open(p)) for p in bundled)
