"""Aider chat history (`.aider.chat.history.md`) and aider's published website transcripts.

Read from Aider-AI/aider (aider/io.py: `# aider chat started at <time>` opens a run; user input is written with a
`#### ` prefix per line, aider's own output as `> ` block-quote lines ending in two spaces, the model's reply as plain
markdown). Consecutive lines of one kind form one turn: `#### ` → user, `> ` → tool (aider's output; it answers no
model tool call, so `tool_call_id` is None and `name` is "aider"), anything else → assistant. Each header starts a
session; a run with no user or assistant line (only aider's start-up output) is Skipped, and so are lines before the
first header (an editor mode line such as `-*- mode: fundamental -*-`, stray notes). The header is looked for in the
first KBs of the file, not only on line 1. The website examples
(aider/website/examples/*.md) hold the same lines inside `<div class="chat-transcript">` blocks: one session per file,
only the text inside those blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from logminer.reading.formats.jsondoc import content_hash, stable_id, text_lines
from logminer.reading.registry import Format
from logminer.reading.sources import SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "aider"
RECORD_UNIT = "line"  # every line of the file belongs to exactly one session (or Skipped run)

_HEADER = re.compile(r"^# aider chat started at (\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)")
_HEADER_ANYWHERE = re.compile(r"(?m)^# aider chat started at \d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
PREAMBLE = "aider history lines before the first `# aider chat started` header"
_MODEL = re.compile(r"^> Main model: (\S+)")
_DIV_OPEN = re.compile(r'^<div class="chat-transcript"')
_USER = "#### "


@dataclass
class _Run:
    first_line: int
    started_at: str | None = None
    lines: list[str] = field(default_factory=list)
    last_line: int = 0
    preamble: bool = False  # lines before the first header: not a run


def sniff(source: SourceFile) -> bool:
    head = source.head
    if source.is_binary:
        return False
    if _HEADER_ANYWHERE.search(head):
        return True
    return bool(_DIV_OPEN.search(head) or re.search(r'(?m)^<div class="chat-transcript"', head)) and bool(
        re.search(r"(?m)^#### \S", head)
    )


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    try:
        lines = text_lines(source.text)
    except SourceError as error:  # every line of the file is lost with it
        yield Rejected(source.path, 0, error.reason, records=len(text_lines(source.data.decode("latin-1"))))
        return
    digest = content_hash(source)
    if any(_HEADER.match(line) for line in lines):
        runs = _history_runs(lines)
    else:
        runs = [_website_run(lines)]
    for index, run in enumerate(runs):
        records = run.last_line - run.first_line + 1
        if run.preamble:
            yield Skipped(source.path, run.first_line, PREAMBLE, records=records)
            continue
        turns = _turns(run.lines)
        if not any(turn.role in ("user", "assistant") for turn in turns):
            yield Skipped(source.path, run.first_line, "aider run without chat messages", records=records)
            continue
        model = next((m.group(1) for line in run.lines if (m := _MODEL.match(line))), None)
        yield Session(
            session_id=stable_id(NAME, digest, index),
            agent=NAME,
            source_file=source.path,
            turns=turns,
            line_start=run.first_line,
            line_end=run.last_line,
            records=records,
            model=model,
            started_at=run.started_at,
        )


def _history_runs(lines: list[str]) -> list[_Run]:
    runs: list[_Run] = []
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match and len(runs) == 1 and runs[0].started_at is None and not "".join(runs[0].lines).strip():
            runs[0].started_at = f"{match.group(1)}T{match.group(2)}"  # blank lines before the first header
            runs[0].last_line, runs[0].preamble = number, False
            continue
        if match or not runs:
            started = f"{match.group(1)}T{match.group(2)}" if match else None
            runs.append(_Run(first_line=number, started_at=started, preamble=not match))
            if match:
                runs[-1].last_line = number
                continue
        runs[-1].lines.append(line)
        runs[-1].last_line = number
    return runs


def _website_run(lines: list[str]) -> _Run:
    run = _Run(first_line=1, last_line=len(lines))
    inside = False
    for line in lines:
        if _DIV_OPEN.match(line):
            inside = True
        elif line.startswith("</div>"):
            inside = False
            run.lines.append("")
        elif inside:
            run.lines.append(line)
    return run


def _kind(line: str) -> str | None:
    if line.startswith(_USER) or line.rstrip() == "####":
        return "user"
    if line.startswith("> ") or line.rstrip() == ">":
        return "tool"
    return None if not line.strip() else "assistant"


def _turns(lines: list[str]) -> list[Turn]:
    turns: list[Turn] = []
    kind = None
    buffer: list[str] = []

    def flush() -> None:
        text = "\n".join(buffer).strip("\n")
        if kind and text.strip():
            turns.append(Turn(role=kind, text=text, name="aider" if kind == "tool" else None))
        buffer.clear()

    for line in lines:
        line_kind = _kind(line)
        if line_kind is None:  # blank: part of an assistant reply, a separator otherwise
            if kind == "assistant":
                buffer.append("")
            continue
        if line_kind != kind:
            flush()
            kind = line_kind
        if line_kind == "user":
            buffer.append(line[len(_USER):].rstrip() if line.startswith(_USER) else "")
        elif line_kind == "tool":
            buffer.append(line[2:].rstrip() if line.startswith("> ") else "")
        else:
            buffer.append(line.rstrip())
    flush()
    return turns


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
