"""`logminer ingest`, `inspect` and `validate`: thin click commands over logminer.ingest.pipeline / detect / render.

Heavy imports (transformers through render.load_tokenizer) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import click

from calibkit.cli_options import AliasedOption
from logminer.reading.registry import source_help, source_names


def _resolve_inputs(raw: tuple[str, ...], inputs: tuple[str, ...], source: str | None) -> list[str]:
    """RAW and --input paths; with none, the default log folders of --source."""
    from logminer.reading.registry import AgentSourceError, source_folders

    explicit = [*raw, *inputs]
    if explicit:
        return explicit
    if source is None:
        raise click.UsageError("give RAW paths, --input PATH or --source AGENT")
    try:
        return source_folders(source)
    except AgentSourceError as error:
        raise click.ClickException(str(error)) from error


def _progress(paths: list[str], label: str) -> tuple[Callable[[str], None], Callable[[], None]]:
    """A tqdm bar over input bytes (rate and ETA); returns (advance to this source, close).

    A source is a file or a folder-format folder; ingest reads each once, in order, so the bar moves by the bytes
    of the previous source when the next begins. Files under a folder are one contiguous run of the sorted paths:
    prefix sums and bisect find its bytes without scanning every path per source.
    """
    from bisect import bisect_left
    from itertools import accumulate

    from tqdm import tqdm

    from logminer.ingest.pipeline import input_sizes

    sizes = input_sizes(paths)
    files = sorted(sizes)
    before = [0, *accumulate(sizes[f] for f in files)]  # before[i]: bytes of files[:i]
    bar = tqdm(total=before[-1], unit="B", unit_scale=True, desc=label, disable=None, dynamic_ncols=True)
    current: list[str] = []

    def source_bytes(source: str) -> int:
        prefix = source.rstrip(os.sep) + os.sep
        start = bisect_left(files, prefix)
        end = bisect_left(files, prefix[:-1] + chr(ord(os.sep) + 1))
        return sizes.get(source, 0) + before[end] - before[start]

    def advance(source: str) -> None:
        if current:
            bar.update(source_bytes(current.pop()))
        current.append(source)

    def close() -> None:
        if current:
            bar.update(source_bytes(current.pop()))
        bar.close()

    return advance, close


def _load_tokenizer(path: str | None):
    if path is None:
        return None
    from logminer.rendering.chat import RenderError, load_tokenizer

    try:
        return load_tokenizer(path)
    except RenderError as error:
        raise click.BadParameter(str(error), param_hint="--tokenizer") from error


@click.command(epilog="\b\n--source folders (environment overrides first; all names: --source all):\n" + source_help())
@click.argument("raw", nargs=-1, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="sessions.parquet to write.")
@click.option("--source", type=click.Choice(source_names()), help="Read this agent's default log folders.")
@click.option("--input", "inputs", multiple=True, type=click.Path(), help="Log path (repeatable); overrides --source.")
@click.option("--strict", is_flag=True, help="Stop at the first rejected record instead of counting it.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Drop sessions whose quality score is lower (turns, tool errors, length, variety; "
                   "documented in logminer/score.py).")
@click.option("--min-turns", type=click.IntRange(0), default=1, show_default=True,
              help="Drop sessions with fewer turns after cleaning.")
@click.option("--min-tokens", type=click.IntRange(0), default=0, show_default=True,
              help="Drop sessions whose rendering has fewer tokens.")
@click.option("--max-tokens", type=click.IntRange(1), default=None,
              help="Truncate longer sessions to a prefix ending at a paired tool-call boundary.")
@click.option("--tokenizer", type=click.Path(exists=True),
              help="Tokenizer folder, tokenizer.json or GGUF: its chat template renders and counts tokens "
                   "(default: plain fallback template, tokens estimated as UTF-8 bytes / 4).")
@click.option("--include-reasoning", is_flag=True, help="Keep reasoning text when rendering and counting.")
@click.option("--sessions-per-part", "batch_size", cls=AliasedOption, aliases=("--batch-size",),
              type=click.IntRange(1), default=2000, show_default=True,
              help="Sessions per parquet part (a part is also cut at 8M characters; bounds memory).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=min(len(os.sched_getaffinity(0)), 8)
              if hasattr(os, "sched_getaffinity") else 1, show_default=True,
              help="Worker processes for inputs of 32 MB or more (the output does not depend on it).")
def ingest(raw, output, source, inputs, strict, min_score, min_turns, min_tokens, max_tokens, tokenizer,
           include_reasoning, batch_size, jobs) -> None:
    """Read RAW agent logs into one redacted, cleaned, scored sessions table plus report.json beside it.

    RAW: log files, folders or globs (.gz/.zst too); each file's format is detected from its content.
    """
    from logminer.ingest.pipeline import IngestOptions, OutputError
    from logminer.ingest.pipeline import ingest as run_ingest
    from logminer.reading.sources import SourceError
    from logminer.rendering.chat import has_chat_template

    paths = _resolve_inputs(raw, inputs, source)
    loaded = _load_tokenizer(tokenizer)
    if loaded is not None and not has_chat_template(loaded):
        click.echo("note: the tokenizer has no chat template; sessions render with the plain fallback", err=True)
    options = IngestOptions(strict=strict, min_score=min_score, min_turns=min_turns, min_tokens=min_tokens,
                            max_tokens=max_tokens, include_reasoning=include_reasoning,
                            tokenizer=loaded, tokenizer_name=_tokenizer_name(tokenizer),
                            batch_size=batch_size, jobs=jobs)
    try:
        advance, close = _progress(paths, "ingest")
        try:
            report = run_ingest(paths, output, options, on_source=advance)
        finally:
            close()
    except (SourceError, OutputError) as error:
        raise click.ClickException(str(error)) from error
    totals = report.totals()
    click.echo(
        f"{totals['sessions_kept']} sessions ({totals['turns_kept']} turns, {totals['tool_calls_kept']} tool calls) "
        f"→ {output}; records: {totals['records']} = {totals['records_kept']} kept + "
        f"{totals['records_filtered']} filtered + {totals['records_rejected']} rejected; "
        f"report: {os.path.join(os.path.dirname(output) or '.', 'report.json')}"
    )


def _tokenizer_name(path: str | None) -> str | None:
    """Only the file or folder name goes into the report (a full path can hold a user name)."""
    return os.path.basename(os.path.normpath(path)) if path else None


@click.command()
@click.argument("raw", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file instead of a table.")
@click.option("--strict", is_flag=True, help="Stop at the first rejected record.")
def inspect(raw, as_json, strict) -> None:
    """Per file of RAW (files, folders, globs): detected format, sessions, turns, tool calls, rejections and
    skips with reasons, and the line types its reader did not know (format drift), as read (before cleaning).
    Writes nothing."""
    from logminer.ingest.report import IngestReport
    from logminer.reading.detect import read_inputs
    from logminer.reading.formats.drift import unknown_type
    from logminer.reading.sources import SourceError

    report = IngestReport()
    try:
        for path, fmt, event in read_inputs(list(raw), strict=strict):
            session = report.read(path, fmt, event)
            if session is not None:
                report.kept(path, fmt, session)
    except SourceError as error:
        raise click.ClickException(str(error)) from error
    lines_by_file: dict[str, list[dict]] = {}
    for rejection in report.rejections:
        lines_by_file.setdefault(rejection["file"], []).append({"line": rejection["line"],
                                                                "reason": rejection["reason"]})
    for path, stats in sorted(report.files.items()):
        row = {"file": path, "format": stats.format, "sessions": stats.sessions_read, "turns": stats.turns_kept,
               "tool_calls": stats.tool_calls_kept, "records": stats.records,
               "skipped": dict(sorted(stats.filtered.items())), "rejected": dict(sorted(stats.rejected.items())),
               "rejections": lines_by_file.get(path, []),
               "unknown_types": sorted({found[1] for reason in stats.filtered if (found := unknown_type(reason))})}
        if as_json:
            click.echo(json.dumps(row, sort_keys=True, ensure_ascii=False))
            continue
        click.echo(f"{path}\t{stats.format}\tsessions={row['sessions']}\tturns={row['turns']}\t"
                   f"tool_calls={row['tool_calls']}\trecords={row['records']}")
        for reason, records in row["rejected"].items():
            lines = [item["line"] for item in row["rejections"] if item["reason"] == reason]
            click.echo(f"  {_records(records)} rejected{_where(lines)}: {reason}")
        for reason, records in row["skipped"].items():
            click.echo(f"  {_records(records)} {reason}")
        if row["unknown_types"]:
            click.echo(f"  unknown line types (format drift): {', '.join(row['unknown_types'])}")


def _records(count: int) -> str:
    return f"{count} record{'' if count == 1 else 's'}"


def _where(lines: list[int], shown: int = 8) -> str:
    """' (line 2)', ' (lines 2, 5, ...)', ' (whole file)'; '' when the report's capped list holds none of them."""
    if not lines:
        return ""
    if lines == [0]:
        return " (whole file)"
    listed = ", ".join(str(line) for line in lines[:shown]) + (", ..." if len(lines) > shown else "")
    return f" (line{'s' if len(lines) > 1 else ''} {listed})"


@click.command()
@click.argument("sessions", type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenizer", required=True, type=click.Path(exists=True),
              help="Tokenizer folder, tokenizer.json or GGUF whose chat template must render every session.")
@click.option("--include-reasoning", is_flag=True, help="Render reasoning text too.")
def validate(sessions, tokenizer, include_reasoning) -> None:
    """Render every session of SESSIONS through the tokenizer's chat template; report the ones that fail."""
    import polars as pl

    from logminer.rendering.chat import RenderError, has_chat_template, render_session
    from logminer.schema import row_to_session

    loaded = _load_tokenizer(tokenizer)
    if not has_chat_template(loaded):
        click.echo("note: this tokenizer has no chat template; sessions render with the plain fallback template")
    failures = 0
    total = 0
    try:
        batches = pl.scan_parquet(sessions).collect_batches(chunk_size=1000)  # memory: one batch
        for batch in batches:
            for row in batch.iter_rows(named=True):
                total += 1
                session = row_to_session(row)
                try:
                    render_session(session, loaded, include_reasoning=include_reasoning)
                except RenderError as error:
                    failures += 1
                    click.echo(f"FAIL {session.session_id} ({session.source_file}): {error}")
    except (pl.exceptions.PolarsError, OSError, KeyError) as error:
        raise click.ClickException(f"{sessions}: not a sessions table: {error}") from error
    click.echo(f"{total - failures} of {total} sessions render with {_tokenizer_name(tokenizer)}")
    if failures:
        raise click.ClickException(f"{failures} of {total} sessions failed to render")
