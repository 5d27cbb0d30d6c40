"""`imatrix eval`: per-token KLD / same-top / PPL of quants against a reference, per role kind, tool-call agreement and
paired bootstrap CIs, through llama.cpp's own libllama; report as JSON, Markdown, CSV and PNG."""

from __future__ import annotations

from pathlib import Path

import click

from calibkit.cli_options import AliasedOption

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("eval")
@click.argument("quants", nargs=-1, required=True, type=_FILE)
@click.option("-m", "--model", "reference", cls=AliasedOption, aliases=("--reference",), required=True, type=_FILE,
              help="Reference GGUF (the unquantized or least-quantized model) the quants are scored against.")
@click.option("-f", "--text", "data", cls=AliasedOption, aliases=("--data",), required=True, type=_FILE,
              help="Eval documents: logminer split's eval.parquet (sessions with role spans: per-role metrics, "
                   "tool calls, bootstrap over sessions) or a text file (documents cut at blank lines, no roles).")
@click.option("--ctx-size", "-c", default=512, show_default=True, type=click.IntRange(min=8),
              help="Tokens per scoring window; every target has at least half of it as context.")
@click.option("--stride", default=None, type=click.IntRange(min=1),
              help="Window step. [default: ctx/2 - 1, every token scored once; ctx: llama-perplexity's chunks]")
@click.option("--chunks", "max_windows", default=None, type=click.IntRange(min=1),
              help="Score at most this many windows  [default: all]")
@click.option("--tool-calls", "tool_calls", default=50, show_default=True, type=click.IntRange(min=0),
              help="Re-decode at most this many logged tool calls (a seeded sample when there are more).")
@click.option("--bootstrap", "replicates", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap draws for the CIs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap and the call sample.")
@click.option("--threads", "-t", default=None, type=click.IntRange(min=1),
              help="CPU threads for libllama  [default: llama.cpp's choice]")
@click.option("--output", "-o", "report_prefix", default=Path("eval_report"), show_default=True, type=Path,
              help="Report prefix: PREFIX.json (the run record `imatrix card` reads), .md, .csv, .png, and "
                   "PREFIX.tokens.parquet (every scored token).")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Draw the PNG.")
def eval_command(quants: tuple[Path, ...], reference: Path, data: Path, ctx_size: int, stride: int | None,
                 max_windows: int | None, tool_calls: int, replicates: int, seed: int, threads: int | None,
                 report_prefix: Path, plot: bool) -> None:
    """Judge QUANTS against --reference on the tokens an agent writes.

    Every token of the eval data is scored with the reference and each quant through llama.cpp's libllama (same
    windows for all): mean / median / p99 KLD, same-top-token % and PPL, overall and per role (assistant text,
    tool call, reasoning, user, system, tool result, template). Tool calls are greedy-decoded from the text before
    them by every model and compared as (name, parsed arguments) with the reference's and the logged call. CIs
    come from a paired bootstrap over sessions; every pair of quants gets a CI of its difference.
    """
    from tqdm import tqdm

    from imatrix.llamacpp import agent_eval, agent_report
    from imatrix.llamacpp.evaluate import EvalError
    from imatrix.llamacpp.libllama import LibLlamaError
    from imatrix.llamacpp.scoring import ScoringError
    from imatrix.llamacpp.tools import LlamaCppError

    options = agent_eval.AgentEvalOptions(ctx_size=ctx_size, stride=stride, max_windows=max_windows,
                                          threads=threads, tool_calls=tool_calls, replicates=replicates, seed=seed)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.setdefault(stage, tqdm(total=total, desc=stage, unit="window" if stage == "score" else "call",
                                          dynamic_ncols=True))
        bar.update(done - bar.n)

    tokens = report_prefix.with_name(report_prefix.name + ".tokens.parquet")
    try:
        record = agent_eval.run_agent_eval(reference, quants, data, options, tokens_out=tokens, progress=progress)
    except (EvalError, ScoringError, LibLlamaError, LlamaCppError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        for bar in bars.values():
            bar.close()
    written = agent_report.write_report(record, report_prefix, plot=plot)
    click.echo(agent_report.format_markdown(record))
    click.echo("wrote " + ", ".join(str(path) for path in [*written, tokens]))
