"""`imatrix inspect | merge | convert | compare | mix`: thin click commands over imatrix.files, show_statistics, hybrid."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from calibkit.cli_options import AliasedOption

FORMATS = ["gguf", "dat"]
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUTPUT_FILE = click.Path(dir_okay=False, writable=True, path_type=Path)

output_option = click.option("-o", "--output", "output", type=OUTPUT_FILE, required=True, help="File to write (atomic).")
format_option = click.option(
    "--output-format", type=click.Choice(FORMATS), default=None,
    help="gguf (llama-imatrix's default) or dat (legacy). Default: dat if OUTPUT ends in .dat, else gguf.",
)
chunk_size_option = click.option(
    "-c", "--ctx-size", "chunk_size", cls=AliasedOption, aliases=("--chunk-size",), type=click.IntRange(min=1),
    default=None, help="Tokens per chunk (llama-imatrix -c) used to turn legacy .dat values back into sums and "
                       "counts, and the chunk size of the written file. Default: that of the first GGUF input, else "
                       "512 (llama-imatrix's default).",
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn file and value errors into one clear click message; relay writer warnings to stderr."""
    from imatrix.files.imatrix_file import ImatrixFileError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (ImatrixFileError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            raise click.ClickException(f"{error.filename or ''}: {error.strerror or error}") from None
        finally:
            for warning in caught:
                click.echo(f"warning: {warning.message}", err=True)


def read_inputs(paths: list[Path], chunk_size: int | None):
    """Read every input; .dat files use `chunk_size`, or the first GGUF input's chunk size, or 512."""
    from imatrix.files.imatrix_file import DEFAULT_CHUNK_SIZE, GGUF_MAGIC, read_imatrix

    def is_gguf(path: Path) -> bool:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC

    ggufs = {path: read_imatrix(path) for path in paths if is_gguf(path)}
    first_gguf = next((ggufs[path] for path in paths if path in ggufs), None)
    legacy_chunk = chunk_size or (first_gguf.chunk_size if first_gguf else DEFAULT_CHUNK_SIZE)
    return [ggufs.get(path) or read_imatrix(path, chunk_size=legacy_chunk) for path in paths], legacy_chunk


def write_output(imatrix, output: Path, output_format: str | None, sources: list[Path]) -> str:
    """Write GGUF or .dat; an imatrix without dataset names gets its source file names (llama-quantize needs one)."""
    from imatrix.files.imatrix_file import write_dat, write_gguf

    if not imatrix.datasets:
        imatrix.datasets = [str(path) for path in sources]
    chosen = output_format or ("dat" if output.suffix.lower() == ".dat" else "gguf")
    (write_dat if chosen == "dat" else write_gguf)(imatrix, output)
    return chosen


def json_safe(value):
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def describe(imatrix, path: Path) -> dict:
    """File-level facts and one row per entry: shape, counts, partial/empty expert data."""
    entries = []
    for name in sorted(imatrix.entries):
        entry = imatrix.entries[name]
        counts = [float(c) for c in entry.counts]
        entries.append({"name": name, "experts": len(counts), "columns": int(entry.sums.shape[1]),
                        "values": entry.n_values, "counts": counts,
                        "experts_without_tokens": sum(1 for c in counts if c == 0),
                        "activation_sums": entry.activation_sums is not None})
    return {"file": str(path), "format": imatrix.source_format, "datasets": imatrix.datasets,
            "chunk_count": imatrix.chunk_count, "chunk_size": imatrix.chunk_size,
            "n_layer_nextn": imatrix.n_layer_nextn, "entries": len(entries), "notes": imatrix.notes,
            "tensors": entries}


def format_description(info: dict) -> str:
    lines = [f"file         {info['file']} ({info['format']})", f"datasets     {', '.join(info['datasets']) or '-'}",
             f"chunks       {info['chunk_count']} × {info['chunk_size']} tokens", f"entries      {info['entries']}"]
    if info["n_layer_nextn"]:
        lines.append(f"NextN layers {info['n_layer_nextn']} (the top blocks, labelled mtp0.. below)")
    lines += [f"note         {note}" for note in info["notes"]]
    lines += ["", f"{'tensor':<40} {'experts':>7} {'columns':>8} {'count (max)':>12} {'no tokens':>9} {'in_sum':>6}"]
    for row in info["tensors"]:
        lines.append(f"{row['name']:<40} {row['experts']:>7} {row['columns']:>8} {max(row['counts']):>12.0f} "
                     f"{row['experts_without_tokens']:>9} {'yes' if row['activation_sums'] else 'no':>6}")
    return "\n".join(lines)


@click.command()
@click.argument("file", type=EXISTING_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the same numbers) instead of tables.")
@click.option("--plot", type=OUTPUT_FILE, default=None, help="Write a layer × tensor heat map of the statistics (PNG).")
@chunk_size_option
def inspect(file: Path, as_json: bool, plot: Path | None, chunk_size: int | None) -> None:
    """Show an imatrix's entries, counts and datasets, then the tables of b11434's llama-imatrix --show-statistics.

    Per tensor: Mean, StdDev, Skew, Kurt (of the per-column mean activation E[x]), H Norm, Σ E[A²], Gain, L2 Dist, PCC,
    Cov (against the same tensor in the nearest earlier layer); per layer: Σ E[A²], Gain, L2 Dist, CosSim, PCC, Cov.
    Files without activation sums (in_sum: older llama.cpp, .dat) get the legacy layout over E[x²], as llama.cpp does.
    """
    from imatrix.show_statistics import compute_statistics, format_table, plot_heatmap

    with user_errors():
        (imatrix,), _ = read_inputs([file], chunk_size)
        report = compute_statistics(imatrix)
        info = describe(imatrix, file)
        if plot is not None:
            try:
                plot_heatmap(report, plot, title=file.name)
            except ImportError:
                raise click.ClickException("--plot needs matplotlib: pip install 'calibkit[plot]'") from None
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(json_safe({**info, "statistics": report.as_dict()}), indent=1, allow_nan=False))
        return
    click.echo(format_description(info))
    click.echo(format_table(report, str(file)), nl=False)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=EXISTING_FILE)
@output_option
@format_option
@chunk_size_option
def merge(inputs: tuple[Path, ...], output: Path, output_format: str | None, chunk_size: int | None) -> None:
    """Add the sums and counts of several imatrices (GGUF and/or .dat) like llama-imatrix --in-file A --in-file B.

    A .dat input becomes sum = value·c, count = ncall·c with c from --ctx-size, so its weight in the merge
    depends on c, exactly as in llama-imatrix. Activation sums (in_sum) are kept for an entry when every input has
    them; otherwise they are dropped with a warning naming the inputs (llama-imatrix drops them silently).
    """
    from imatrix.files.merge import merge as merge_imatrices

    with user_errors():
        imatrices, chunk = read_inputs(list(inputs), chunk_size)
        merged = merge_imatrices(imatrices, chunk_size=chunk, labels=[str(path) for path in inputs])
        chosen = write_output(merged, output, output_format, list(inputs))
    click.echo(f"merged {len(inputs)} files, {len(merged.entries)} entries, {merged.chunk_count} chunks "
               f"× {merged.chunk_size} → {output} ({chosen})", err=True)


@click.command()
@click.argument("input_file", metavar="INPUT", type=EXISTING_FILE)
@output_option
@format_option
@chunk_size_option
def convert(input_file: Path, output: Path, output_format: str | None, chunk_size: int | None) -> None:
    """Rewrite an imatrix as GGUF or legacy .dat (the .dat format keeps per-column means, not per-expert counts or
    activation sums: writing one says how many in_sum tensors it leaves out)."""
    from imatrix.files.merge import merge as merge_imatrices

    with user_errors():
        imatrices, chunk = read_inputs([input_file], chunk_size)
        imatrix = imatrices[0] if chunk_size is None else merge_imatrices(imatrices, chunk_size=chunk,
                                                                          labels=[str(input_file)])
        chosen = write_output(imatrix, output, output_format, [input_file])
    click.echo(f"{input_file} → {output} ({chosen}, {len(imatrix.entries)} entries)", err=True)


@click.command()
@click.argument("file_a", metavar="A", type=EXISTING_FILE)
@click.argument("file_b", metavar="B", type=EXISTING_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@chunk_size_option
def compare(file_a: Path, file_b: Path, as_json: bool, chunk_size: int | None) -> None:
    """Per-tensor cosine and relative error (B is the reference) of per-column means; key and count differences."""
    from imatrix.files.compare import compare as compare_imatrices
    from imatrix.files.compare import format_report

    with user_errors():
        (a, b), _ = read_inputs([file_a, file_b], chunk_size)
        report = compare_imatrices(a, b)
    if as_json:
        body = {"a": str(file_a), "b": str(file_b), **report.as_dict()}
        click.echo(json.dumps(json_safe(body), indent=1, allow_nan=False))
    else:
        click.echo(format_report(report, str(file_a), str(file_b)))


def parse_alpha(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter(f"{value} is outside [0, 1] (0 = plain E[a²] shape, 1 = ‖W[:,i]‖²·E[a²] shape)")
    return value


@click.command()
@click.argument("raw", type=EXISTING_FILE)
@output_option
@format_option
@click.option("--alpha", type=float, default=0.5, show_default=True, callback=parse_alpha,
              help="Weight of the hybrid term: sum/count = (1−α)·m/mean(m) + α·h/mean(h), per tensor and expert.")
def mix(raw: Path, output: Path, output_format: str | None, alpha: float) -> None:
    """Write an imatrix from a raw hybrid sidecar (imatrix collect --hybrid) at another α, without rerunning the model."""
    from imatrix.importance.hybrid import mix as mix_importance
    from imatrix.importance.hybrid import read_raw

    with user_errors():
        imatrix, energy = read_raw(raw)
        mixed = mix_importance(imatrix, energy, alpha)
        chosen = write_output(mixed, output, output_format, [raw])
    click.echo(f"α = {alpha}: {len(mixed.entries)} entries → {output} ({chosen})", err=True)
