"""`imatrix collect`: run a transformers model over calibration text and write a llama.cpp imatrix."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calibkit.cli_options import AliasedOption, LegacyArgument

DEFAULT_MODEL = "gemma3-270m"

DIFFERENCES = """\b
Differences from llama-imatrix:
  * micro-batches of fewer than 16 token rows ARE collected (llama.cpp skips them), so counts are
    exactly chunks x ctx-size;
  * .parquet input (logminer split, column "text": one rendered conversation per row, joined as in
    calibration.txt) parses special-token text by default; .txt input does not, as in llama-imatrix;
  * values come from the transformers model (usually dequantized to float), not llama.cpp kernels.
"""


@click.command(epilog=DIFFERENCES)
@click.argument("legacy_model", required=False, cls=LegacyArgument)  # `collect MODEL`, before -m/--model
@click.option("-m", "--model", "model", default=None,
              help=f"HF folder, .gguf file, or {DEFAULT_MODEL} (the bundled Gemma 3 270M GGUF).  "
                   f"[default: {DEFAULT_MODEL}]")
@click.option("-f", "--text", "data", cls=AliasedOption, aliases=("--data",), required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Calibration text: .txt (whole file) or .parquet from `logminer split` (column `text`).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output imatrix file.")
@click.option("--output-format", type=click.Choice(["gguf", "dat"]), default="gguf", show_default=True)
@click.option("-c", "--ctx-size", "ctx_size", type=click.IntRange(min=2), default=512, show_default=True,
              help="Tokens per chunk.")
@click.option("--chunks", type=int, default=-1, show_default=True, help="Most chunks to process (-1 = all).")
@click.option("--chunk", "--from-chunk", "skip_chunks", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many chunks first.")
@click.option("--parse-special/--no-parse-special", default=None,
              help="Parse special-token text into control tokens. [default: off for .txt, on for .parquet]")
@click.option("--process-output", is_flag=True,
              help="Also collect the LM head as b11434 does: output.weight, or token_embd.weight when the head is tied.")
@click.option("--chunks-per-batch", "batch_size", cls=AliasedOption, aliases=("--batch-size",),
              type=click.IntRange(min=0), default=0, show_default=True,
              help="Chunks (of --ctx-size tokens each) per forward pass; 0 = as many as fit in 2048 tokens, "
                   "llama-imatrix's default -b (which counts tokens, not chunks).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--gguf-file", default=None, help="GGUF file name inside the --model folder.")
@click.option("--trust-remote-code", is_flag=True, help="Allow custom modelling code from the model folder.")
@click.option("--skip-unmapped", is_flag=True, help="Ignore block linears that have no GGUF name instead of failing.")
@click.option("--fuse-qkv", is_flag=True, help="Key q/k/v as blk.N.attn_qkv (for GGUFs converted with --fuse-qkv).")
@click.option("--fuse-gate-up-exps", is_flag=True, help="Key gate/up experts as blk.N.ffn_gate_up_exps.")
@click.option("--no-ppl", is_flag=True, help="Do not compute perplexity.")
@click.option("--output-frequency", type=click.IntRange(min=0), default=10, show_default=True,
              help="Save the output every N chunks (0 = only at the end).")
@click.option("--accumulate", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="Accumulator type on the device (llama.cpp uses float32).")
@click.option("--hybrid", is_flag=True, help="Write the hybrid importance mix; the raw sidecar goes to OUT.raw.gguf.")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Hybrid mix: (1-a)*E[a^2] + a*|W|^2*E[a^2], each normalised per tensor and expert.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.option("--save-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Write a checkpoint (OUT.checkpoint.*) every N chunks (0 = only on Ctrl-C or a crash); with "
                   "--offload sequential: after every N finished layers.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT's checkpoint; refused when the model, data or chunking options differ.")
@click.option("--device-map", default=None, type=click.Choice(["auto", "balanced", "balanced_low_0", "sequential"]),
              help="accelerate placement over GPUs, CPU and disk (model-parallel) instead of --device.")
@click.option("--max-memory", default=None, help="Per-device limits for --device-map, e.g. 0=20GiB,1=20GiB,cpu=64GiB.")
@click.option("--offload", type=click.Choice(["none", "sequential"]), default="none", show_default=True,
              help="sequential: one decoder layer at a time, read from the safetensors shards, for models larger "
                   "than the device; prints the peak memory.")
def collect(legacy_model: str | None, model: str | None, data: Path, output: Path, output_format: str, ctx_size: int,
            chunks: int, skip_chunks: int, parse_special: bool | None, process_output: bool, batch_size: int,
            dtype: str, device: str, gguf_file: str | None, trust_remote_code: bool, skip_unmapped: bool, fuse_qkv: bool,
            fuse_gate_up_exps: bool, no_ppl: bool, output_frequency: int, accumulate: str, hybrid: bool,
            alpha: float, progress: bool, save_every: int, resume: bool, device_map: str | None,
            max_memory: str | None, offload: str) -> None:
    """Collect an importance matrix for llama-quantize --imatrix from --model (HF folder, .gguf, or gemma3-270m)."""
    if legacy_model is not None and model is not None and legacy_model != model:
        raise click.UsageError(f"two models given: {legacy_model} and --model {model}")
    model = model or legacy_model or DEFAULT_MODEL
    from imatrix.collect.pipeline import CollectSettings, run_collect

    settings = CollectSettings(
        model=model, gguf_file=gguf_file, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
        data=data, output=output, output_format=output_format, ctx_size=ctx_size, max_chunks=chunks,
        skip_chunks=skip_chunks, parse_special=parse_special, process_output=process_output, batch_size=batch_size,
        skip_unmapped=skip_unmapped, fuse_qkv=fuse_qkv, fuse_gate_up_exps=fuse_gate_up_exps, compute_ppl=not no_ppl,
        output_frequency=output_frequency, accumulate=accumulate, hybrid=hybrid, alpha=alpha, progress=progress,
        save_every=save_every, resume=resume, device_map=device_map, max_memory=max_memory, offload=offload,
    )
    try:
        summary = run_collect(settings, log=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; the output file was not (re)written (if a checkpoint was saved, "
                                   "the line above names it: rerun with --resume)") from None
    except Exception as error:  # noqa: BLE001 - every known failure becomes one clear message
        from imatrix.collect.pipeline import USER_ERRORS

        if isinstance(error, USER_ERRORS):
            raise click.ClickException(str(error)) from None
        if isinstance(error, OSError) and error.filename:  # e.g. a full disk: the file, then the reason
            raise click.ClickException(f"{error.filename}: {error.strerror or error}") from None
        raise
    for line in summary:
        click.echo(line, file=sys.stdout)
