"""`imatrix allocate`: per-tensor quant types under a size budget, as a llama-quantize --tensor-type-file."""

from __future__ import annotations

import os
from pathlib import Path

import click

# = imatrix.importance.allocate.DEFAULT_TYPES (a test keeps them equal; importing it here would load numpy for --help)
DEFAULT_TYPES = "IQ1_M,IQ2_XXS,IQ2_XS,IQ2_S,IQ3_XXS,IQ3_S,IQ4_XS,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ4_NL,Q4_0,Q5_0,Q5_1,Q8_0"


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--imatrix", "imatrix_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The imatrix llama-quantize will use (its E[a²] also weighs the errors unless --validation).")
@click.option("--target-bpw", type=float, default=None, help="Bits per weight of the whole file (tensor data).")
@click.option("--target-size", default=None, help="File size, e.g. 10.2GiB or 800MB (metadata included).")
@click.option("--types", default=DEFAULT_TYPES, show_default=True, help="Candidate ggml types, comma-separated.")
@click.option("--validation", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Weigh errors with this imatrix's E[a²] (e.g. the validation split's) instead of --imatrix's.")
@click.option("--probe", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Text for the KLD-per-error factor of each tensor group (one llama-quantize + llama-perplexity "
                   "run per group). Without it every group's factor is 1.")
@click.option("--probe-jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Probe runs at the same time (each a llama-quantize and a llama-perplexity with --threads).")
@click.option("--factors", "factors_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Group factors (JSON) saved by an earlier --probe run with --save-factors; no probe runs.")
@click.option("--save-factors", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the group factors used (JSON) for a later --factors.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Measured errors (JSON): reused when FILE exists and was measured for the same model, imatrix, "
                   "--validation and --max-rows, for --types or a superset (refused otherwise); written when it "
                   "does not exist.")
@click.option("-c", "--ctx-size", default=512, show_default=True, type=click.IntRange(8),
              help="Context of the probe's llama-perplexity runs.")
@click.option("--max-rows", default=1024, show_default=True, type=click.IntRange(1),
              help="Rows per matrix whose error is measured (evenly spaced; scaled to all rows).")
@click.option("--threads", "-t", default=max(1, os.cpu_count() or 1), show_default=True, type=click.IntRange(1))
@click.option("--dry-run/--no-dry-run", default=True, show_default=True,
              help="Confirm the recipe with llama-quantize --dry-run (final types and tensor bytes).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe file for llama-quantize --tensor-type-file.")
@click.option("--progress/--no-progress", default=True)
def allocate(model: Path, imatrix_path: Path, target_bpw: float | None, target_size: str | None, types: str,
             validation: Path | None, probe: Path | None, probe_jobs: int, factors_path: Path | None,
             save_factors: Path | None,
             errors_path: Path | None, ctx_size: int, max_rows: int, threads: int, dry_run: bool, output: Path,
             progress: bool) -> None:
    """Choose each tensor's type so the file fits --target-size (or --target-bpw) with the least expected error:
    every tensor × type quantized with llama.cpp's own quantizer, errors Σ E[a²]·‖W − Q‖² per column, solved
    exactly (DP) or at a stated byte resolution. Writes the --tensor-type-file and prints the llama-quantize command."""
    from imatrix.importance import allocate as alloc
    from imatrix.importance.recipe import (
        AllocateJob,
        confirm_with_dry_run,
        run_allocate,
    )
    from imatrix.llamacpp.tools import LlamaCppFailed, LlamaCppNotFound

    if (target_bpw is None) == (target_size is None):
        raise click.UsageError("give exactly one of --target-bpw and --target-size")
    if probe is not None and factors_path is not None:
        raise click.UsageError("give --probe (measure the factors) or --factors (reuse them), not both")
    try:
        job = AllocateJob(model, imatrix_path, output, target_size=alloc.parse_size(target_size)
                          if target_size is not None else None, target_bpw=target_bpw, types=tuple(types.split(",")),
                          validation=validation, probe=probe, probe_jobs=probe_jobs, factors=factors_path,
                          save_factors=save_factors,
                          errors=errors_path, max_rows=max_rows, threads=threads, ctx_size=ctx_size, log=click.echo,
                          progress=progress)
        result = run_allocate(job)
        confirmed = confirm_with_dry_run(result, job) if dry_run else None
    except (alloc.AllocateError, LlamaCppFailed, LlamaCppNotFound, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"types: {', '.join(f'{name} x{n}' for name, n in result.type_counts().items())} ({result.method})")
    click.echo(f"predicted file size: {result.predicted_file_bytes} bytes "
               f"({result.predicted_file_bytes / 2**30:.3f} GiB, {result.bits_per_weight:.4f} bpw)")
    if result.factors:
        click.echo(f"expected mean KLD (linear model from the group factors; it underestimated every file measured "
                   f"in examples/ALLOCATION.md): {result.objective:.5f}")
    if confirmed is not None:
        click.echo(confirmed)
    click.echo(f"recipe → {output}\n{result.command}")
