"""Inputs of `logminer split`: sessions.parquet files written by `logminer ingest`, or raw logs ingested in-process.

A file is a sessions table when it is parquet (magic bytes `PAR1`) with every SESSION_SCHEMA column; every other
input (other parquet too, such as a Hugging Face chat dataset) goes through `logminer.ingest.pipeline` with its default
options, so redaction and cleaning happen exactly as in `logminer ingest`. Ingest rejections are carried along
(stage "ingest") so the split's accounting covers them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import polars as pl

from logminer.reading.sources import SourceError, expand_inputs
from logminer.schema import SESSION_SCHEMA, Session, frame_to_sessions, row_to_session
from logminer.split.records import Rejection

PARQUET_MAGIC = b"PAR1"


class InputError(Exception):
    """An input that cannot be used, named with the reason."""


@dataclass
class LoadedInputs:
    files: list[str]  # every input file, sorted (their sha256s go into the manifest)
    sessions: list[Session] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)  # stage "ingest"


def is_sessions_table(path: str) -> bool:
    """Parquet with every SESSION_SCHEMA column (other parquet, e.g. a Hugging Face chat dataset, is a raw log)."""
    with open(path, "rb") as handle:
        if handle.read(4) != PARQUET_MAGIC:
            return False
    try:
        columns = pl.read_parquet_schema(path)
    except Exception:  # unreadable parquet: let the ingest readers report it with their reason
        return False
    return all(name in columns for name in SESSION_SCHEMA)


def read_sessions_table(path: str) -> list[Session]:
    """Sessions from a parquet file that `logminer ingest` wrote."""
    try:
        frame = pl.scan_parquet(path).select(list(SESSION_SCHEMA)).collect()
    except Exception as error:  # polars raises ComputeError / OSError variants for unreadable parquet
        raise InputError(f"{path}: cannot read sessions table: {error}") from error
    return frame_to_sessions(frame)


def load_inputs(inputs: list[str], *, include_reasoning: bool = False, progress: bool = False) -> LoadedInputs:
    """Every session of the inputs: parquet tables read directly, the other files through the ingest pipeline."""
    try:
        files = expand_inputs(inputs)
    except SourceError as error:
        raise InputError(str(error)) from error
    loaded = LoadedInputs(files)
    raw = []
    for path in files:
        if is_sessions_table(path):
            loaded.sessions.extend(read_sessions_table(path))
        else:
            raw.append(path)
    if raw:
        sessions, rejected = ingest_raw(raw, include_reasoning=include_reasoning, progress=progress)
        loaded.sessions.extend(sessions)
        loaded.rejected.extend(rejected)
    return loaded


def ingest_raw(
    paths: list[str], *, include_reasoning: bool = False, progress: bool = False
) -> tuple[list[Session], list[Rejection]]:
    """Run `logminer.ingest.pipeline` in-process (read → redact → clean → score, default filters) on raw log files.

    Returns (sessions, rejected rows): ingest's filtered and rejected records, per file and reason, stage "ingest".
    """
    from tqdm import tqdm

    from logminer.ingest.pipeline import IngestOptions, ingest_rows
    from logminer.ingest.report import IngestReport

    report = IngestReport()
    options = IngestOptions(include_reasoning=include_reasoning)
    with tqdm(total=len(paths), desc="ingest", unit="file", disable=not progress, file=sys.stderr) as bar:
        sessions = [row_to_session(row) for row in ingest_rows(paths, options, report, lambda _: bar.update(1))]
    rejected = []
    for path, stats in sorted(report.files.items()):
        for kind, reasons in (("filtered", stats.filtered), ("rejected", stats.rejected)):
            for reason, records in sorted(reasons.items()):
                rejected.append(Rejection(path, None, 0, "ingest", f"{kind}: {reason}", records))
    return sessions, rejected
