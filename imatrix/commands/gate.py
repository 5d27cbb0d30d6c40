"""`imatrix gate`: choose each tensor's hybrid α on a validation split and write the gated imatrix plus its table."""

from __future__ import annotations

import os
from pathlib import Path

import click

from calibkit.atomic import write_atomic, write_with

DEFAULT_ALPHAS_TEXT = "0,0.25,0.5,0.75,1"


def parse_alphas(text: str) -> tuple[float, ...]:
    """'0,0.5,1' → (0.0, 0.5, 1.0), sorted and de-duplicated; every α must lie in [0, 1]."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--alphas") from None
    if not values or values[0] < 0 or values[-1] > 1:
        raise click.BadParameter(f"{text!r}: give one or more α in [0, 1]", param_hint="--alphas")
    return tuple(values)


@click.command()
@click.argument("raw_cal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--validation", "raw_val", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Statistics of the validation split: the raw sidecar of `imatrix collect --hybrid` (or any imatrix).")
@click.option("-m", "--model", "model_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The GGUF that llama-quantize will quantize; its tensors (dequantized) are the weights scored.")
@click.option("--type", "types", multiple=True, required=True,
              help="llama-quantize type, e.g. IQ2_XS; repeat for several (α is then chosen for all of them together).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Gated imatrix (GGUF) to pass to llama-quantize --imatrix.")
@click.option("--alphas", default=DEFAULT_ALPHAS_TEXT, show_default=True, help="α grid (comma-separated, in [0, 1]).")
@click.option("--threads", "-t", default=max(1, os.cpu_count() or 1), show_default=True, type=click.IntRange(1),
              help="CPU threads for the quantizer (and the llama-quantize run that finds the final types).")
@click.option("--device", default="cpu", show_default=True, help="torch device for the error sums (cpu, cuda, cuda:N).")
@click.option("--proxy", type=click.Choice(["rtn"]), default=None,
              help="Score with an importance-weighted round-to-nearest proxy instead of llama.cpp's quantizer "
                   "(labelled 'rtn-proxy' in every output). Default: llama.cpp's quantizer, required.")
@click.option("--types-from", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A GGUF quantized by llama-quantize, one per --type in order: read final tensor types from it "
                   "instead of running llama-quantize.")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of per-tensor errors; a markdown copy is written beside it (.md).  [default: OUTPUT.gate.csv]")
def gate(raw_cal: Path, raw_val: Path, model_path: Path, types: tuple[str, ...], output: Path, alphas: str,
         threads: int, device: str, proxy: str | None, types_from: tuple[Path, ...], table: Path | None) -> None:
    """Choose per tensor the α of the hybrid importance (1−α)·m/mean(m) + α·h/mean(h) that minimises the validation
    error Σ_i E_val[a_i²]·‖(W − Q)[:,i]‖² of the weights quantized with llama.cpp's own quantizer to the type each
    tensor really gets (read from a llama-quantize run), and write that imatrix."""
    from tqdm import tqdm

    from imatrix.files.imatrix_file import ImatrixFileError, read_imatrix, write_gguf
    from imatrix.importance import gate as gating
    from imatrix.importance.hybrid import read_raw

    grid = parse_alphas(alphas)
    if types_from and len(types_from) != len(types):
        raise click.BadParameter(f"give one file per --type ({len(types)}), got {len(types_from)}",
                                 param_hint="--types-from")
    try:
        calibration, energy = read_raw(raw_cal)
        validation = read_imatrix(raw_val)
    except (ImatrixFileError, OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    model = _open_model(model_path)
    _check_device(device)
    roundtrip, quantizer = _quantizer(proxy)
    targets = []
    for index, requested in enumerate(types):
        final_types, method = _final_types(model_path, model, calibration, requested, index, types_from, proxy, threads)
        try:
            targets += gating.targets_for(model, calibration, requested, final_types, method)
        except gating.GateError as error:
            raise click.ClickException(f"{model_path}: {error}") from None
    options = gating.GateOptions(alphas=grid, threads=threads, device=device)
    try:
        with tqdm(total=len(targets), unit="tensor", desc=f"gate ({quantizer})") as bar:
            result = gating.gate(calibration, energy, validation, model, targets, roundtrip, options, quantizer,
                                 progress=bar.update)
    except (gating.GateError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    try:
        write_gguf(gating.gated_imatrix(calibration, energy, result), output)
    except ImatrixFileError as error:
        raise click.ClickException(str(error)) from None
    table = table or output.with_name(output.name + ".gate.csv")
    _write_tables(result, table, [raw_cal, raw_val, model_path])
    click.echo(_summary_markdown(result))
    click.echo(f"wrote {output} and {table} (+ {table.with_suffix('.md').name})")


def _open_model(model_path: Path):
    """GGUFReader on the model; HF checkpoints are not supported by the gate yet."""
    from gguf import GGUFReader

    if model_path.suffix.lower() != ".gguf":
        raise click.BadParameter(f"{model_path}: give the GGUF that llama-quantize will quantize", param_hint="--model")
    try:
        return GGUFReader(model_path)
    except (OSError, ValueError, IndexError, KeyError) as error:  # gguf-py fails this way on a truncated file
        raise click.ClickException(f"{model_path}: not a readable GGUF, truncated or damaged "
                                   f"({type(error).__name__}: {error})") from None


def _check_device(device: str) -> None:
    """Refuse an unknown torch device, or CUDA where torch sees none, before any work is done."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise click.BadParameter(f"{device!r}: {error}", param_hint="--device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r}: torch sees no CUDA device here; use --device cpu", param_hint="--device")


def _quantizer(proxy: str | None):
    """(roundtrip, label): llama.cpp's quantizer, or the documented RTN proxy when --proxy rtn is given."""
    from imatrix.importance import gate as gating

    if proxy == "rtn":
        return gating.rtn_roundtrip, "rtn-proxy"
    from imatrix.importance.ggml_quant import GgmlLibraryMissing, GgmlQuantizer
    from imatrix.llamacpp.tools import LlamaCppNotFound

    try:
        quantizer = GgmlQuantizer.load()
    except (GgmlLibraryMissing, LlamaCppNotFound) as error:
        raise click.ClickException(
            f"the gate scores with llama.cpp's own quantizer, which is not available: {error}. "
            "Pass --proxy rtn for a labelled round-to-nearest approximation instead."
        ) from None
    return quantizer.roundtrip, "ggml"


def _final_types(model_path, model, calibration, requested, index, types_from, proxy, threads):
    """Final tensor types for one --type: from --types-from, else a llama-quantize run, else (rtn proxy only) a rule."""
    from imatrix.importance import gate as gating
    from imatrix.llamacpp.tools import LlamaCppFailed, LlamaCppNotFound

    if types_from:
        return gating.final_types_from_gguf(types_from[index]), f"from {types_from[index].name}"
    try:
        click.echo(f"running llama-quantize {requested} to read the final type of every tensor ...", err=True)
        return gating.final_types_by_llama_quantize(model_path, calibration, requested, threads), "llama-quantize run"
    except LlamaCppNotFound as error:
        if proxy != "rtn":
            raise click.ClickException(str(error)) from None
        try:
            return gating.approximate_final_types(model, requested), "approximate rule"
        except ValueError as bad:
            raise click.BadParameter(str(bad), param_hint="--type") from None
    except LlamaCppFailed as error:
        raise click.ClickException(f"llama-quantize could not quantize {model_path} to {requested}: {error}") from None


def result_rows(result) -> list[dict]:
    """One row per tensor and type: final type, how it was found, chosen α and the error at every α."""
    rows = []
    for score in result.scores:
        target = score.target
        chosen = result.chosen[target.name]
        row = {
            "tensor": target.name, "type": target.requested, "final_type": target.final_type.name,
            "type_from": target.type_method, "quantizer": result.quantizer,
            "note": "copied unchanged (imatrix unused)" if target.copied else "",
            "chosen_alpha": chosen, "error_chosen": score.errors[result.alphas.index(chosen)],
        }
        row.update({f"error_alpha_{alpha:g}": error for alpha, error in zip(result.alphas, score.errors)})
        rows.append(row)
    return rows


def _summary_markdown(result) -> str:
    """Totals per requested type: Σ error at each fixed α and with the gated choice, relative to the first α."""
    lines = [f"quantizer: {result.quantizer}", "", "| type | " + " | ".join(f"α={a:g}" for a in result.alphas)
             + " | gated |", "|---|" + "---:|" * (len(result.alphas) + 1)]
    for requested in sorted({score.target.requested for score in result.scores}):
        scores = [s for s in result.scores if s.target.requested == requested]
        fixed = [sum(s.errors[k] for s in scores) for k in range(len(result.alphas))]
        gated = sum(s.errors[result.alphas.index(result.chosen[s.target.name])] for s in scores)
        base = fixed[0] or 1.0
        cells = [f"{value:.6g} ({value / base:.4f})" for value in [*fixed, gated]]
        lines.append(f"| {requested} | " + " | ".join(cells) + " |")
    counts = {alpha: sum(1 for value in result.chosen.values() if value == alpha) for alpha in result.alphas}
    lines += ["", "tensors per chosen α: " + ", ".join(f"α={a:g}: {n}" for a, n in counts.items())]
    return "\n".join(lines)


def _write_tables(result, csv_path: Path, inputs: list[Path]) -> None:
    """CSV (polars) and a markdown table with tensor, final type, chosen α, error at the first/last α and chosen."""
    import polars as pl

    rows = result_rows(result)
    write_with(csv_path, lambda tmp: pl.DataFrame(rows).write_csv(tmp))
    first, last = result.alphas[0], result.alphas[-1]
    header = ["tensor", "type", "final type", "type from", "chosen α", f"error α={first:g}", f"error α={last:g}",
              "error chosen", "note"]
    lines = [f"# imatrix gate ({result.quantizer})", "", "inputs: " + ", ".join(p.name for p in inputs), "",
             _summary_markdown(result), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["tensor"], row["type"], row["final_type"], row["type_from"], f"{row['chosen_alpha']:g}",
                 f"{row[f'error_alpha_{first:g}']:.6g}", f"{row[f'error_alpha_{last:g}']:.6g}",
                 f"{row['error_chosen']:.6g}", row["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    write_atomic(csv_path.with_suffix(".md"), "\n".join(lines) + "\n")
