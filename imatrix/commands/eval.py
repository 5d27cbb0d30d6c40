"""`imatrix eval`: PPL and KL divergence of quantized GGUFs against a reference, as a Markdown/CSV/PNG report."""

from __future__ import annotations

from pathlib import Path

import click

from calibkit.cli_options import AliasedOption

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("eval")
@click.argument("quants", nargs=-1, required=True, type=_FILE)
@click.option("-m", "--model", "reference", cls=AliasedOption, aliases=("--reference",), required=True, type=_FILE,
              help="Reference GGUF (the unquantized or least-quantized model) whose logits the quants are scored "
                   "against.")
@click.option("-f", "--text", "text", required=True, type=_FILE,
              help="Evaluation text (e.g. logminer split's eval.txt), tokenized by llama-perplexity.")
@click.option("--ctx-size", "-c", default=512, show_default=True, type=click.IntRange(min=16),
              help="Tokens per chunk (llama-perplexity -c).")
@click.option("--chunks", default=None, type=click.IntRange(min=1),
              help="Score at most this many chunks (llama-perplexity --chunks)  [default: all]")
@click.option("--threads", "-t", default=None, type=click.IntRange(min=1),
              help="CPU threads (llama-perplexity -t)  [default: llama.cpp's choice]")
@click.option("--output", "-o", "report_prefix", default=Path("eval_report"), show_default=True, type=Path,
              help="Report prefix: writes PREFIX.md, PREFIX.csv and PREFIX.png.")
@click.option("--logits-file", default=None, type=Path,
              help="Keep the reference logits here (llama-perplexity --kl-divergence-base). They are large: "
                   "n_vocab × 2 bytes per scored token (~0.5 MiB per token for Gemma 3). [default: a temporary "
                   "file, deleted afterwards]")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Draw the PNG bar chart.")
def eval_command(quants: tuple[Path, ...], reference: Path, text: Path, ctx_size: int, chunks: int | None,
                 threads: int | None, report_prefix: Path, logits_file: Path | None, plot: bool) -> None:
    """Score QUANTS against the reference --model on --text with llama-perplexity (PPL, KLD, same-top-token rate).

    Runs `llama-perplexity --kl-divergence-base` once on the reference, then `--kl-divergence` on every quant, and
    prints the table quant publishers report: size, bits per weight, PPL ± error, median / mean / 99th-percentile KLD
    and the percentage of tokens whose top prediction matches the reference's.
    """
    from tqdm import tqdm

    from imatrix.llamacpp import evaluate
    from imatrix.llamacpp import tools as llamacpp

    options = evaluate.EvalOptions(ctx_size=ctx_size, chunks=chunks, threads=threads)
    bar = tqdm(total=1 + len(quants), unit="model", desc="llama-perplexity", dynamic_ncols=True)

    started: list[str] = []

    def progress(message: str) -> None:
        """Called when a model's run starts: the one before it has finished."""
        if started:
            bar.update(1)
        started.append(message)
        bar.set_postfix_str(message[:60])

    try:
        report = evaluate.run_eval(reference, quants, text, options, logits_file=logits_file, progress=progress)
        bar.update(bar.total - bar.n)
    except (evaluate.EvalError, llamacpp.LlamaCppError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        bar.close()
    written = evaluate.write_report(report, report_prefix, plot=plot)
    click.echo(evaluate.format_markdown(report))
    click.echo("wrote " + ", ".join(str(path) for path in written))
