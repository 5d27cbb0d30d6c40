"""Inputs of `logminer split`: sessions.parquet files written by `logminer ingest`, or raw logs ingested in-process.

A file is a sessions table when it is parquet (magic bytes `PAR1`) with every SESSION_SCHEMA column; every other
input (other parquet too, such as a Hugging Face chat dataset) goes through `logminer.ingest.pipeline` with its default
options, so redaction and cleaning happen exactly as in `logminer ingest`. Ingest rejections are carried along
(stage "ingest") so the split's accounting covers them.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field

import polars as pl

from logminer.reading.sources import SourceError, expand_inputs
from logminer.schema import SESSION_SCHEMA, Session, frame_to_sessions, row_to_session
from logminer.split.records import Rejection

PARQUET_MAGIC = b"PAR1"
PARALLEL_MIN_BYTES = 4_000_000  # below this, starting worker processes (~1 s each) costs more than it saves


class InputError(Exception):
    """An input that cannot be used, named with the reason."""


@dataclass
class LoadedInputs:
    files: list[str]  # every input file, sorted (their sha256s go into the manifest)
    sessions: list[Session] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)  # stage "ingest"


def is_sessions_table(path: str) -> bool:
    """Parquet with every SESSION_SCHEMA column (other parquet, e.g. a Hugging Face chat dataset, is a raw log).
    Anything that is not a readable regular file is not one: the ingest readers reject it with the reason."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            if handle.read(4) != PARQUET_MAGIC:
                return False
    except OSError:
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


def load_inputs(inputs: list[str], *, include_reasoning: bool = False, progress: bool = False,
                jobs: int = 1) -> LoadedInputs:
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
        sessions, rejected = ingest_raw(raw, include_reasoning=include_reasoning, progress=progress, jobs=jobs)
        loaded.sessions.extend(sessions)
        loaded.rejected.extend(rejected)
    return loaded


def ingest_raw(
    paths: list[str], *, include_reasoning: bool = False, progress: bool = False, jobs: int = 1
) -> tuple[list[Session], list[Rejection]]:
    """Run `logminer.ingest.pipeline` in-process (read → redact → clean → score, default filters) on raw log files,
    in a pool of `jobs` worker processes as `logminer ingest -j` does once the files hold PARALLEL_MIN_BYTES.

    Returns (sessions, rejections): ingest's filtered records per file and reason (line 0), and its rejected
    records with the line report.json names (one row each, as far as the report lists them; the rest of a reason's
    records in one row with line 0), all stage "ingest".
    """
    from tqdm import tqdm

    from logminer.ingest.pipeline import IngestOptions, ingest_rows, input_sizes, parallel_rows
    from logminer.ingest.report import IngestReport

    report = IngestReport()
    options = IngestOptions(include_reasoning=include_reasoning, jobs=jobs, parallel_min_bytes=PARALLEL_MIN_BYTES)
    parallel = jobs > 1 and sum(input_sizes(paths).values()) >= PARALLEL_MIN_BYTES
    produce = parallel_rows if parallel else ingest_rows
    with tqdm(total=len(paths), desc="ingest", unit="file", disable=not progress, file=sys.stderr) as bar:
        sessions = [row_to_session(row) for row in produce(paths, options, report, lambda _: bar.update(1))]
    listed: dict[tuple[str, str], list[int]] = {}
    for item in report.rejections:
        listed.setdefault((item["file"], item["reason"]), []).append(item["line"])
    rejected = []
    for path, stats in sorted(report.files.items()):
        for reason, records in sorted(stats.filtered.items()):
            rejected.append(Rejection(path, None, 0, "ingest", f"filtered: {reason}", records))
        for reason, records in sorted(stats.rejected.items()):
            lines = listed.get((path, reason), [])[:records]
            rejected += [Rejection(path, None, line, "ingest", f"rejected: {reason}", 1) for line in lines]
            if records > len(lines):
                rejected.append(Rejection(path, None, 0, "ingest", f"rejected: {reason}", records - len(lines)))
    return sessions, rejected
