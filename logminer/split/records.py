"""The records of `logminer split`: one `Document` per rendered session flows through every stage, and one
`Rejection` per record that cannot be used; the parquet schemas of the files built from them.

A Document is made by rendering (its session's columns, text, tokens, turn keys, task, decontamination facts);
dedup fills `representative`, `similarity` and `reason`; decontamination may turn it CONTAMINATED; assignment
gives the kept ones a `group` and a `split`; writing turns it into a row of its split or bucket file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
import xxhash

from logminer.schema import Session
from logminer.split.decontaminate import DocumentFacts

KEPT = ""  # status and reason of a document that survives dedup and decontamination
DUPLICATE = "duplicate"
CONTAMINATED = "contaminated"
SESSION_COLUMNS = ("session_id", "source_file", "agent", "model", "line_start", "turns", "metadata")

SPLIT_SCHEMA = {"session_id": pl.Utf8, "source_file": pl.Utf8, "agent": pl.Utf8, "model": pl.Utf8,
                "line_start": pl.Int64, "turns": pl.Int64, "cluster_id": pl.Utf8, "cluster_size": pl.Int64,
                "group": pl.Utf8, "tokens": pl.Int64, "text": pl.Utf8, "metadata": pl.Utf8,
                "spans": pl.List(pl.Struct({"kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64}))}
BUCKET_SCHEMA = {"session_id": pl.Utf8, "source_file": pl.Utf8, "agent": pl.Utf8, "line_start": pl.Int64,
                 "reason": pl.Utf8, "cluster_id": pl.Utf8, "representative_session_id": pl.Utf8,
                 "representative_source_file": pl.Utf8, "jaccard": pl.Float64, "tokens": pl.Int64}
REJECTED_SCHEMA = {"source_file": pl.Utf8, "session_id": pl.Utf8, "line": pl.Int64, "stage": pl.Utf8,
                   "reason": pl.Utf8, "records": pl.Int64}


@dataclass
class Document:
    """One rendered session and what each stage decided about it."""

    index: int  # position in canonical order (source file, session id, line, byte)
    session_id: str
    source_file: str
    agent: str
    model: str | None
    line_start: int
    turns: int
    metadata: str  # the session's metadata as sorted-key JSON
    records: int
    text: str
    facts: DocumentFacts
    task: str
    tokens: int = 0
    turn_keys: tuple[tuple[int, int], ...] = ()
    status: str = KEPT  # KEPT, DUPLICATE or CONTAMINATED
    reason: str = ""
    representative: int = -1  # index of its dedup cluster's representative (itself when kept)
    similarity: float = 1.0  # with the representative
    cluster: str = ""
    group: str = ""
    split: str = ""  # a split name or OVER_BUDGET, for kept documents
    spans: list[dict] | None = None  # role spans of the rendered parts (logminer.rendering.spans), None if unplaceable

    @classmethod
    def rendered(cls, index: int, session: Session, text: str, task: str, facts: DocumentFacts,
                 spans: list[dict] | None = None) -> Document:
        return cls(index, session.session_id, session.source_file, session.agent, session.model, session.line_start,
                   len(session.turns), json.dumps(session.metadata, sort_keys=True, ensure_ascii=False),
                   session.records, text, facts, task, spans=spans)

    def columns(self) -> dict[str, Any]:
        """The session's columns, as the split files and --group-by see them."""
        return {name: getattr(self, name) for name in SESSION_COLUMNS}

    def identity(self) -> str:
        """A stable id of the session (its cluster id when it represents one)."""
        return xxhash.xxh64_hexdigest(f"{self.source_file}\0{self.session_id}\0{self.line_start}".encode("utf-8"))

    def split_row(self, cluster_size: int) -> dict[str, Any]:
        return {**self.columns(), "cluster_id": self.cluster, "cluster_size": cluster_size, "group": self.group,
                "tokens": self.tokens, "text": self.text, "spans": self.spans}

    def bucket_row(self, representative: Document) -> dict[str, Any]:
        return {"session_id": self.session_id, "source_file": self.source_file, "agent": self.agent,
                "line_start": self.line_start, "reason": self.reason, "cluster_id": self.cluster,
                "representative_session_id": representative.session_id,
                "representative_source_file": representative.source_file, "jaccard": self.similarity,
                "tokens": self.tokens}


@dataclass(frozen=True)
class Rejection:
    """Records that cannot be used, with the stage that found out and why (a row of rejected.parquet)."""

    source_file: str
    session_id: str | None
    line: int
    stage: str  # "ingest", "render" or "split"
    reason: str
    records: int = 1

    @classmethod
    def of_session(cls, session: Session, stage: str, reason: str) -> Rejection:
        return cls(session.source_file, session.session_id, session.line_start, stage, reason, session.records)

    @classmethod
    def of_document(cls, document: Document, stage: str, reason: str) -> Rejection:
        return cls(document.source_file, document.session_id, document.line_start, stage, reason, 1)

    def row(self) -> dict[str, Any]:
        return {"source_file": self.source_file, "session_id": self.session_id, "line": self.line,
                "stage": self.stage, "reason": self.reason, "records": self.records}
