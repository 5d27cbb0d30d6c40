"""Checks shared by the agent-store reader tests: what read_inputs gives for a path, and that a planted secret
never reaches ingest's outputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from logminer.ingest.pipeline import IngestOptions, ingest
from logminer.reading.detect import read_inputs
from logminer.schema import Rejected, Session, Skipped
from tests.logminer.ingest.test_redact import PLANTED

KEY = PLANTED[3][1]  # an Anthropic-shaped key
TOKEN = PLANTED[4][1]  # a GitHub-shaped token
SECRET_TEXT = f"deploy with x-api-key {KEY} and push with {TOKEN}"


@dataclass
class Read:
    """Everything read_inputs yielded for some inputs, tallied."""

    sessions: list[Session] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    formats: set[str | None] = field(default_factory=set)

    @property
    def records(self) -> int:
        return sum(e.records for e in (*self.sessions, *self.skipped, *self.rejected))

    @property
    def roles(self) -> Counter:
        return Counter(t.role for s in self.sessions for t in s.turns)

    @property
    def tool_calls(self) -> int:
        return sum(len(t.tool_calls) for s in self.sessions for t in s.turns)

    def reasons(self) -> set[str]:
        return {e.reason for e in (*self.skipped, *self.rejected)}


def read(*paths: Path | str) -> Read:
    result = Read()
    for _, fmt, event in read_inputs([str(p) for p in paths]):
        result.formats.add(fmt)
        {Session: result.sessions, Skipped: result.skipped, Rejected: result.rejected}[type(event)].append(event)
    return result


def assert_secret_never_output(inputs: Path, out: Path) -> None:
    """Ingest `inputs` (which carry SECRET_TEXT) and check no piece of the secrets is in any output byte."""
    report = ingest([str(inputs)], out / "sessions.parquet", IngestOptions())
    assert report.totals()["sessions_kept"] >= 1
    text = pl.read_parquet(out / "sessions.parquet").write_ndjson() + (out / "report.json").read_text()
    raw = (out / "sessions.parquet").read_bytes() + (out / "report.json").read_bytes()
    for value in (KEY, TOKEN):
        assert value not in text and value.encode() not in raw, value
