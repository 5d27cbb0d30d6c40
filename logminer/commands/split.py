"""`logminer split` and `logminer corpus`: thin click wrappers over logminer.split.pipeline and logminer.corpus.

Heavy modules (polars, numpy, transformers) are imported inside the commands so `logminer --help` stays fast.
"""

from __future__ import annotations

import click

from calibkit.cli_options import AliasedOption

SHOW = {"show_default": True}


def _default_jobs() -> int:
    import os

    return min(len(os.sched_getaffinity(0)), 8) if hasattr(os, "sched_getaffinity") else 1


def _token_count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from logminer.split.assign import parse_token_count

    if value is None:
        return None
    try:
        return parse_token_count(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


def _ratios(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float, float]:
    from logminer.split.assign import parse_ratios

    try:
        return parse_ratios(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for calibration/validation/eval .parquet and .txt, buckets and manifest.json.")
@click.option("--tokenizer", type=click.Path(exists=True), default=None,
              help="Tokenizer folder, tokenizer.json or GGUF: render with its chat template and count its tokens "
                   "(default: the plain fallback template, tokens estimated as UTF-8 bytes / 4, rounded up).")
@click.option("--chat-template", default=None,
              help="For a tokenizer without a chat template (e.g. the Gemma 3 270M GGUF): a bundled template "
                   "(gemma, chatml) or a Jinja file. Default: picked from the tokenizer's turn-marker tokens.")
@click.option("--dedup-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Near duplicates: exact Jaccard of normalised word 5-grams at least this (MinHash-LSH only proposes "
                   "the pairs). [default: 0.7]")
@click.option("--holdout-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Contaminated: MinHash similarity with a holdout text at least this. [default: 0.7]")
@click.option("--threshold", "both_thresholds", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              hidden=True, help="Old spelling: sets --dedup-threshold and --holdout-threshold together.")
@click.option("--num-perm", type=click.IntRange(8, 1024), default=120, **SHOW, help="MinHash permutations.")
@click.option("--holdout", multiple=True, type=click.Path(exists=True),
              help="Holdout source (SWE-bench instances or id lists, BFCL files, any text corpus); repeatable.")
@click.option("--holdout-ngram", type=click.IntRange(5, 13), default=13, **SHOW,
              help="n-gram length of the overlap test against holdout texts.")
@click.option("--holdout-repo-match", is_flag=True, help="Also drop sessions on a holdout item's repository.")
@click.option("--group-by", default=None,
              help="Keep sessions sharing this value in one split: a session column (source_file, agent, model) "
                   "or a metadata field (e.g. repo; for repo a SWE-bench instance id also names it).")
@click.option("--ratios", default="0.8,0.1,0.1", callback=_ratios, **SHOW,
              help="calibration,validation,eval shares of tokens (used for splits without a token budget).")
@click.option("--calibration-tokens", callback=_token_count, help="Token budget of calibration (e.g. 500k).")
@click.option("--validation-tokens", callback=_token_count, help="Token budget of validation.")
@click.option("--eval-tokens", callback=_token_count, help="Token budget of eval.")
@click.option("--seed", type=int, default=0, **SHOW, help="Seed of the group order (and nothing else).")
@click.option("--strict", is_flag=True,
              help="Fail (write nothing) if a near-duplicate pair straddles splits or a holdout item hits calibration.")
@click.option("--include-reasoning", is_flag=True, help="Keep reasoning/thinking text in the rendered documents.")
@click.option("--progress/--no-progress", default=True, **SHOW, help="Progress bars on stderr.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=_default_jobs(), **SHOW,
              help="Worker processes reading raw inputs of 4 MB or more (the outputs do not depend on it).")
def split(inputs, out_dir, tokenizer, chat_template, dedup_threshold, holdout_threshold, both_thresholds, num_perm,
          holdout, holdout_ngram, holdout_repo_match, group_by, ratios, calibration_tokens, validation_tokens,
          eval_tokens, seed, strict, include_reasoning, progress, jobs) -> None:
    """Deduplicate, decontaminate and split sessions into calibration / validation / eval.

    INPUTS are sessions.parquet files from `logminer ingest` or raw logs (ingested in-process).
    """
    from calibkit.atomic import OutputBusy, OutputRefused
    from logminer.split.assign import SplitOptions
    from logminer.split.decontaminate import DecontaminationOptions
    from logminer.split.dedup import DedupOptions
    from logminer.split.inputs import InputError
    from logminer.split.pipeline import SplitError, SplitJob, run_split

    job = SplitJob(
        inputs=tuple(inputs), out_dir=out_dir, tokenizer=tokenizer, chat_template=chat_template,
        holdout=tuple(holdout), group_by=group_by,
        include_reasoning=include_reasoning, strict=strict, progress=progress, jobs=jobs,
        dedup=DedupOptions(threshold=_first(dedup_threshold, both_thresholds, 0.7), num_perm=num_perm),
        decontamination=DecontaminationOptions(ngram=holdout_ngram,
                                               minhash_threshold=_first(holdout_threshold, both_thresholds, 0.7),
                                               match_repo=holdout_repo_match),
        split=SplitOptions(ratios=ratios, budgets=(calibration_tokens, validation_tokens, eval_tokens), seed=seed),
    )
    try:
        manifest = run_split(job)
    except (SplitError, InputError, OutputBusy, OutputRefused) as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:  # e.g. the output folder is not writable, or the disk is full
        raise click.ClickException(f"{error.filename or out_dir}: {error.strerror or error}") from error
    click.echo(summary_table(manifest))


def _first(*values):
    return next(value for value in values if value is not None)


def summary_table(manifest: dict) -> str:
    counts, tokens, audit = manifest["counts"], manifest["tokens"], manifest["audit"]
    lines = [f"{'bucket':<14}{'sessions':>10}{'tokens':>12}"]
    for name in ("calibration", "validation", "eval"):
        lines.append(f"{name:<14}{counts[name]:>10}{tokens[name]:>12}")
    empty = [name for name in ("calibration", "validation", "eval") if counts[name] == 0]
    for name in ("duplicates", "contaminated", "rejected"):
        lines.append(f"{name:<14}{counts[name]:>10}")
    lines.append(f"{'input':<14}{counts['input_sessions']:>10}   (adds up: {'yes' if counts['adds_up'] else 'NO'})")
    if counts["ingest_rejected_records"]:
        lines.append(f"ingest: {counts['ingest_rejected_records']} input records filtered or rejected before the split "
                     "(reasons in rejected.parquet, stage 'ingest')")
    lines.append(f"audit: {audit['cross_pairs_near']} cross-split pairs at J >= {audit['query_threshold']}, "
                 f"{audit['cross_pairs_at_threshold']} at J >= {audit['threshold']}; "
                 f"{audit['holdout_hits_calibration']} holdout hits in calibration")
    if empty:
        lines.append(f"note: {', '.join(empty)} empty (too few or too large groups for the ratios or budgets)")
    return "\n".join(lines)


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for calibration.txt, validation.txt, eval.txt and corpus_manifest.json.")
@click.option("--source-path", "sources", cls=AliasedOption, aliases=("--source",), multiple=True,
              metavar="NAME=PATH", help="Read recipe source NAME from PATH instead (repeatable).")
@click.option("--tokenizer", type=click.Path(exists=True), default=None,
              help="Tokenizer for token budgets (default: tokens estimated as UTF-8 bytes / 4, rounded up).")
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option("--progress/--no-progress", default=True, **SHOW, help="Progress bars on stderr.")
def corpus(recipe, out_dir, sources, tokenizer, seed, progress) -> None:
    """Assemble calibration / validation / eval text files from a recipe (see corpora/README.md)."""
    from calibkit.atomic import OutputBusy, OutputRefused
    from logminer.corpus import CorpusError, build_corpus, load_recipe

    overrides = {}
    for item in sources:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{item!r} is not NAME=PATH", param_hint="--source-path")
        overrides[name] = path
    try:
        manifest = build_corpus(load_recipe(recipe, overrides, seed), out_dir, tokenizer=tokenizer,
                                progress=progress)
    except (CorpusError, OutputBusy, OutputRefused) as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(f"{error.filename or out_dir}: {error.strerror or error}") from error
    for name, info in manifest["slices"].items():
        click.echo(f"{name:<12}{info['documents']:>8} docs {info['tokens']:>10} tokens  "
                   + ", ".join(f"{p['source']}: {p['tokens']}" for p in info["parts"]))
    disjoint = manifest["disjoint"]
    click.echo(f"disjoint: {disjoint['exact_pairs']} exact, {disjoint['near_pairs']} near pairs")
