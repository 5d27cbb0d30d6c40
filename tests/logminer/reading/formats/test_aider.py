"""Aider chat history reader: sessions per header, turn kinds, website transcripts, real histories."""

from __future__ import annotations

import pytest

from logminer.reading.formats import aider
from logminer.reading.sources import SourceFile
from logminer.schema import Session, Skipped


def parse(path) -> list:
    return list(aider.parse(SourceFile.open(path)))


def test_history_file(example_logs):
    path = example_logs / "aider" / ".aider.chat.history.md"
    assert aider.sniff(SourceFile.open(path))
    skipped, session = parse(path)
    assert isinstance(skipped, Skipped) and skipped.records == 5  # a run with only aider's start-up output
    assert "".join(t.role[0] for t in session.turns) == "tutuatuat"
    assert session.turns[3].text == ("Make pop() on an empty stack raise IndexError with a clear message\n"
                                     "instead of returning None.")
    assert session.turns[5].text == (
        "Applied edit to src/stack.py\nCommit 1a2b3c4 fix: Raise IndexError when popping from an empty stack")
    assert "<<<<<<< SEARCH" in session.turns[4].text and session.turns[4].role == "assistant"
    assert session.model == "gpt-4o" and session.started_at == "2025-05-14T09:15:47"
    line_count = len(path.read_text().splitlines())
    assert skipped.records + session.records == line_count
    assert (session.line_start, session.line_end) == (6, line_count)


# Real files. zen-mcp-server: 4 `# aider chat started` headers (grep -c); runs 1 and 3 hold only `> ` lines
# (grep -n -v '^>' shows no `#### ` in lines 1-5 and 25-42) → 2 sessions, 2 Skipped. Turn kinds counted by hand
# from `grep -n -v '^> '`: run 2 = `>` start-up block, `#### /add **`, `>` ^C block; run 4 = `>` start-up block,
# then 7 `####` prompts (lines 54, 73, 80, 103, 106, 109, 115) each followed by a `>` block.
def test_real_history_with_interrupted_runs(real_logs):
    path = real_logs / "aider-chat-history" / "zen-mcp-server_aider.chat.history.md"
    events = parse(path)
    assert [type(e).__name__ for e in events] == ["Skipped", "Session", "Skipped", "Session"]
    sessions = [e for e in events if isinstance(e, Session)]
    assert ["".join(t.role[0] for t in s.turns) for s in sessions] == ["tut", "tu" * 7 + "t"]
    assert sum(e.records for e in events) == 119  # wc -l
    assert all(s.model == "gemini/gemini-2.5-pro-preview-06-05" for s in sessions)


# website examples: user turns = maximal runs of `#### ` lines inside the chat-transcript divs
# (grep -n "^#### ": 3 non-adjacent lines in each file, so 3 prompts)
@pytest.mark.parametrize(("name", "users"), [("website_example_2048-game.md", 3), ("website_example_add-test.md", 3)])
def test_real_website_transcripts(real_logs, name, users):
    path = real_logs / "aider-chat-history" / name
    [session] = parse(path)
    assert sum(t.role == "user" for t in session.turns) == users
    assert session.records == len(path.read_text().splitlines())
    assert "parent: Example chat transcripts" not in "".join(t.text for t in session.turns)  # front matter dropped


def test_sniff(tmp_path, example_logs):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\n#### Install\n\n> note\n")
    assert not aider.sniff(SourceFile.open(readme))
    assert not aider.sniff(SourceFile.open(example_logs / "plain-text" / "release_notes.txt"))


def test_mode_line_before_the_first_header(tmp_path):
    """Real histories can start with an editor mode line: the header is found further down, each run is a session,
    and the lines before the first header are Skipped, not a session of their own."""
    path = tmp_path / ".aider.chat.history.md"
    path.write_text("-*- mode: fundamental -*-\n\n# aider chat started at 2025-01-02 10:00:00\n\n> Aider v0.70\n\n"
                    "#### fix the bug\n\nSure, here is the fix.\n\n# aider chat started at 2025-01-03 11:00:00\n\n"
                    "#### add a test\n\nDone.\n")
    source = SourceFile.open(path)
    assert aider.sniff(source)
    events = parse(path)
    assert [(type(e).__name__, e.line_start if isinstance(e, Session) else e.line) for e in events] == [
        ("Skipped", 1), ("Session", 3), ("Session", 11)]
    assert events[0].reason == aider.PREAMBLE and events[0].records == 2
    assert ["".join(t.role[0] for t in e.turns) for e in events[1:]] == ["tua", "ua"]
    assert events[1].started_at == "2025-01-02T10:00:00"
    assert sum(e.records for e in events) == len(path.read_text().splitlines())
