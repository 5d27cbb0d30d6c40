"""The ingest pipeline: read → redact → clean → infer tools → count tokens (truncate) → score → filter → write.

Parallel: with jobs > 1, input units (files, and folders of folder formats) are processed by a pool of worker
processes ("spawn": polars' thread pool does not survive fork) in input order (`imap`), so the output does not depend
on the number of jobs. Streaming: sessions are written in batches of `batch_size` rows to parquet parts in a
temporary folder beside the output; the parts are concatenated by polars' streaming engine
(`scan_parquet(parts).sink_parquet`) into the output, published under a lock with report.json beside it
(see `ingest`). Memory is bounded by one batch plus one input file being parsed, not by the corpus; in parallel
runs a worker hands back a whole unit's rows, and finished units wait in `imap`'s queue until they are written.

Row order is the input order, which is deterministic: folder formats first (sorted), then files sorted by path,
each in file order; no run timestamps are written, so the same inputs and options give byte-identical outputs.
The output table is INGEST_SCHEMA: SESSION_SCHEMA plus the score and metric columns named below.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from calibkit.atomic import OutputBusy, output_lock, remove_leftovers, sha256_file, write_atomic, write_with
from logminer.ingest.clean import clean_session, truncate_to_tokens
from logminer.ingest.redact import redact_session, redact_sessions, redact_text
from logminer.ingest.report import IngestReport
from logminer.ingest.score import infer_tools, score_session
from logminer.reading.detect import claimed_folders, read_inputs
from logminer.reading.registry import load_formats
from logminer.reading.sources import SourceError, expand_inputs, safe_name
from logminer.rendering.chat import RenderError, count_tokens, render_session
from logminer.schema import SESSION_SCHEMA, Rejected, Session, session_to_row

# SESSION_SCHEMA extended with what ingest computes; readers of sessions.parquet may ignore these columns
INGEST_SCHEMA: dict[str, pl.DataType] = {
    **SESSION_SCHEMA,
    "score": pl.Float64,
    "score_reasons": pl.List(pl.Utf8),
    "tokens": pl.Int64,
    "n_turns": pl.Int64,
    "n_tool_calls": pl.Int64,
    "n_tool_errors": pl.Int64,
    "tool_error_rate": pl.Float64,
    "chars": pl.Int64,
    "code_share": pl.Float64,
    "non_latin_share": pl.Float64,
}
REPORT_NAME = "report.json"
REDACT_BATCH = 512  # sessions redacted together (see ingest_rows)
REDACT_BATCH_CHARS = 4_000_000
OUTPUT_ROW_GROUP = 64  # sessions per row group of the output parquet


class OutputError(Exception):
    """The output cannot be written where it was asked for; the message names the path and the reason."""


@dataclass
class IngestOptions:
    """Filters and rendering choices of one ingest run (recorded in report.json)."""

    strict: bool = False
    min_score: float = 0.0
    min_turns: int = 1
    min_tokens: int = 0
    max_tokens: int | None = None
    include_reasoning: bool = False
    tokenizer: Any = field(default=None, repr=False)  # a loaded tokenizer, or None for the plain fallback
    tokenizer_name: str | None = None
    batch_size: int = 2000
    batch_chars: int = 8_000_000  # a part is also written once its sessions hold this many characters
    jobs: int = 1  # worker processes; 1 runs everything in this process
    parallel_min_bytes: int = 32_000_000  # smaller inputs run in-process (starting workers costs ~1 s each)

    def describe(self) -> dict[str, Any]:
        return {"strict": self.strict, "min_score": self.min_score, "min_turns": self.min_turns,
                "min_tokens": self.min_tokens, "max_tokens": self.max_tokens,
                "include_reasoning": self.include_reasoning, "tokenizer": self.tokenizer_name}


def session_tokens(session: Session, options: IngestOptions) -> int:
    text = render_session(session, options.tokenizer, include_reasoning=options.include_reasoning)
    return count_tokens([text], options.tokenizer)[0]


def process_session(session: Session, options: IngestOptions, report: IngestReport,
                    redacted: bool = False) -> tuple[dict | None, str | None]:
    """One session through redact (unless `redacted` already) → clean → score → filters: (output row, None) or
    (None, filter reason)."""
    if not redacted:
        redact_session(session, report.redactions)
    clean_session(session, report.cleaning)
    if not session.turns:
        return None, "no turns after cleaning"
    if not session.tools:
        session.tools = infer_tools(session)

    def count(candidate: Session) -> int:
        return session_tokens(candidate, options)

    try:
        if options.max_tokens is not None:
            truncate_to_tokens(session, options.max_tokens, count, report.cleaning)
            if not session.turns:
                return None, f"longer than --max-tokens {options.max_tokens} at its first boundary"
        if len(session.turns) < options.min_turns:
            return None, f"fewer than --min-turns {options.min_turns} turns"
        tokens = count(session)
    except RenderError as error:  # the --tokenizer's chat template refuses this session
        return None, f"chat template cannot render it: {error.detail}"
    if tokens < options.min_tokens:
        return None, f"fewer than --min-tokens {options.min_tokens} tokens"
    score = score_session(session, tokens)
    if score.value < options.min_score:
        return None, f"score below --min-score {options.min_score}"
    metrics = score.metrics
    row = session_to_row(session)
    row.update(score=score.value, score_reasons=score.reasons, tokens=tokens, n_turns=metrics["turns"],
               n_tool_calls=metrics["tool_calls"], n_tool_errors=metrics["tool_errors"],
               tool_error_rate=metrics["tool_error_rate"], chars=metrics["chars"],
               code_share=metrics["code_share"], non_latin_share=metrics["non_latin_share"])
    return row, None


def ingest_rows(inputs: list[str], options: IngestOptions, report: IngestReport,
                on_source: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Output rows of every kept session; every record's fate goes into `report`. Sessions are redacted in
    batches (one file's sessions, at most REDACT_BATCH of them): redaction's scans cost per call, not per byte."""
    current = None
    pending: list[tuple[str, str | None, Session]] = []
    chars = 0
    for path, fmt, event in read_inputs(inputs, strict=options.strict):
        if path != current:
            yield from _process_batch(pending, options, report)
            pending, chars = [], 0
            current = path
            if on_source is not None:
                on_source(path)
        session = report.read(path, fmt, event)
        if session is None:
            continue
        pending.append((path, fmt, session))
        chars += sum(len(turn.text) for turn in session.turns)
        if len(pending) >= REDACT_BATCH or chars >= REDACT_BATCH_CHARS:
            yield from _process_batch(pending, options, report)
            pending, chars = [], 0
    yield from _process_batch(pending, options, report)


def _process_batch(pending: list[tuple[str, str | None, Session]], options: IngestOptions,
                   report: IngestReport) -> Iterator[dict]:
    if not pending:
        return
    try:
        redact_sessions([session for _, _, session in pending], report.redactions)
        redacted = True
    except RecursionError:  # one session is too deep: redact each alone, that one is rejected below
        redacted = False
    for path, fmt, session in pending:
        try:
            row, reason = process_session(session, options, report, redacted)
        except RecursionError:  # JSON values nested deeper than redaction / schema inference can follow
            too_deep = Rejected(session.source_file, session.line_start, "values nested too deeply to process",
                                records=session.records)
            if options.strict:
                raise SourceError(redact_text(path), f"line {too_deep.line}: {too_deep.reason}") from None
            report.rejected(path, fmt, too_deep)
            continue
        if row is None:
            report.filtered(path, fmt, reason or "filtered", session.records)
        else:
            report.kept(path, fmt, session)
            yield row


def input_units(inputs: list[str]) -> list[str]:
    """The independent units of work, in read_inputs order: folders claimed by folder formats, then other files."""
    paths = expand_inputs(inputs)
    folders = list(claimed_folders(paths, load_formats()))
    inside = tuple(folder + os.sep for folder in folders)
    return folders + [path for path in paths if not path.startswith(inside)]


def _unit_result(unit: str, options: IngestOptions) -> tuple[list[dict], IngestReport]:
    report = IngestReport()
    rows = list(ingest_rows([unit], options, report))
    return rows, report


class WorkerError(Exception):
    """An unexpected error in a worker process, as one message (picklable: the pool hangs on an exception it
    cannot rebuild in the parent)."""


def _worker_unit(unit: str) -> tuple[list[dict], IngestReport]:
    try:
        return _unit_result(unit, _WORKER_OPTIONS[0])
    except SourceError:  # --strict's stop, or a missing input: picklable (SourceError.__reduce__)
        raise
    except Exception as error:  # noqa: BLE001 - anything else reaches the parent as one message, never a hang
        raise WorkerError(f"{safe_name(unit)}: {type(error).__name__}: {error}") from None


_WORKER_OPTIONS: list[IngestOptions] = []  # set once per worker process by _init_worker (process-local, read-only)


def _init_worker(options: IngestOptions) -> None:
    _WORKER_OPTIONS[:] = [options]


def parallel_rows(inputs: list[str], options: IngestOptions, report: IngestReport,
                  on_source: Callable[[str], None] | None = None) -> Iterator[dict]:
    """ingest_rows over a pool of `options.jobs` processes, results merged in input order."""
    units = input_units(inputs)
    context = multiprocessing.get_context("spawn")
    with context.Pool(options.jobs, initializer=_init_worker, initargs=(options,)) as pool:
        for unit, (rows, unit_report) in zip(units, pool.imap(_worker_unit, units)):
            if on_source is not None:
                on_source(unit)
            report.merge(unit_report)
            yield from rows


def ingest(inputs: list[str], output: str | os.PathLike, options: IngestOptions,
           on_source: Callable[[str], None] | None = None) -> IngestReport:
    """Run the pipeline and publish `output` (parquet) with report.json beside it. Both are locked for the run (a
    second run on them fails at once), a killed run's leftovers (.tmp files, .parts folders) are removed first, and
    each file is written under a temporary name and renamed into place: the parquet first, then report.json, which
    names the parquet's sha256 (so a reader can tell a report from the parquet it describes)."""
    output = Path(output)
    report_path = output.parent / REPORT_NAME
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output_lock(output), output_lock(report_path):
            remove_leftovers(output, report_path)
            parts_dir = Path(tempfile.mkdtemp(prefix=f".{output.name}.parts.", dir=output.parent))
            try:
                report = _ingest_into(inputs, output, parts_dir, options, on_source)
            finally:
                shutil.rmtree(parts_dir, ignore_errors=True)
            published = report.to_json() | {"output": {"file": output.name, "sha256": sha256_file(output)}}
            write_atomic(report_path, json.dumps(published, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    except OutputBusy as error:
        raise OutputError(str(error)) from None
    except OSError as error:  # e.g. the folder is not writable, or the disk is full
        raise OutputError(_cannot_write(output, error)) from error
    return report


def _cannot_write(output: Path, error: OSError) -> str:
    where = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else error.strerror or error
    return f"{output}: cannot write there ({where})"


def _ingest_into(inputs: list[str], output: Path, parts_dir: Path, options: IngestOptions,
                 on_source: Callable[[str], None] | None) -> IngestReport:
    report = IngestReport(options=options.describe())
    parallel = options.jobs > 1 and sum(input_sizes(inputs).values()) >= options.parallel_min_bytes
    produce = parallel_rows if parallel else ingest_rows
    rows = produce(inputs, options, report, on_source)
    parts = _write_parts(rows, parts_dir, options.batch_size, options.batch_chars)
    try:
        write_with(output, lambda tmp: _concatenate(parts, tmp))
    except pl.exceptions.PolarsError as error:  # polars reports a full disk as a ComputeError
        raise OutputError(f"{output}: cannot write there ({_first_line(error)})") from None
    return report


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def input_sizes(inputs: list[str]) -> dict[str, int]:
    """Bytes of every input file; 0 for one that cannot be read (a broken link: its reader rejects it, saying why)."""
    sizes = {}
    for path in expand_inputs(inputs):
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:
            sizes[path] = 0
    return sizes


def _write_parts(rows: Iterator[dict], folder: Path, batch_size: int, batch_chars: int) -> list[Path]:
    """Rows → parquet parts of at most batch_size rows or about batch_chars characters (bounds memory)."""
    parts: list[Path] = []
    batch: list[dict] = []
    chars = 0
    for row in rows:
        batch.append(row)
        chars += row["chars"] + sum(len(c["arguments"]) for t in row["turns"] for c in t["tool_calls"])
        if len(batch) >= batch_size or chars >= batch_chars:
            parts.append(_write_part(batch, folder, len(parts)))
            batch, chars = [], 0
    if batch or not parts:
        parts.append(_write_part(batch, folder, len(parts)))
    return parts


def _write_part(rows: list[dict], folder: Path, index: int) -> Path:
    path = folder / f"part-{index:06d}.parquet"
    frame = pl.DataFrame(rows, schema=INGEST_SCHEMA)
    try:
        frame.write_parquet(path, compression="zstd", statistics=False)
    except pl.exceptions.PolarsError as error:  # polars reports a full disk as a ComputeError
        raise OutputError(f"{path}: cannot write there ({_first_line(error)})") from None
    return path


def _concatenate(parts: list[Path], target: Path) -> None:
    # small output row groups: polars' default gathers rows into very large groups, which holds the corpus in memory
    pl.scan_parquet([str(p) for p in parts], schema=INGEST_SCHEMA).sink_parquet(
        target, compression="zstd", statistics=False, maintain_order=True, row_group_size=OUTPUT_ROW_GROUP
    )
