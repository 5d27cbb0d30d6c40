"""The collect pipeline: model + text → chunks → statistics (through a runner) → imatrix file(s).

Kept apart from the click command so other runners (layer-sequential, distributed) and tests reuse the same steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from calibkit.atomic import OutputBusy, output_lock, remove_leftovers
from imatrix.collect.chunks import ChunkingError, ChunkOptions
from imatrix.files.imatrix_file import Imatrix, ImatrixFileError, write_dat, write_gguf
from imatrix.model.loading import ModelLoadError
from imatrix.model.naming import OUTPUT_KEYS, NamingError

USER_ERRORS: tuple[type[Exception], ...] = (ModelLoadError, ChunkingError, NamingError, ImatrixFileError, OutputBusy)


@dataclass(frozen=True)
class CollectSettings:
    """All options of `imatrix collect`."""

    data: Path
    output: Path
    model: str = "gemma3-270m"
    gguf_file: str | None = None
    dtype: str = "auto"
    device: str = "cpu"
    trust_remote_code: bool = False
    output_format: str = "gguf"
    ctx_size: int = 512
    max_chunks: int = -1
    skip_chunks: int = 0
    parse_special: bool | None = None  # None: off for .txt, on for .parquet
    process_output: bool = False
    batch_size: int = 0
    skip_unmapped: bool = False
    fuse_qkv: bool = False
    fuse_gate_up_exps: bool = False
    compute_ppl: bool = True
    output_frequency: int = 10
    accumulate: str = "float32"
    hybrid: bool = False
    alpha: float = 0.5
    progress: bool = True
    save_every: int = 0  # scale options: imatrix.runners.registry picks the runner
    resume: bool = False
    device_map: str | None = None
    max_memory: str | None = None
    offload: str = "none"


def raw_sidecar_path(output: Path) -> Path:
    """Where --hybrid keeps the raw E[a²] and ‖W[:,i]‖²: model.imatrix.gguf → model.imatrix.raw.gguf."""
    name = output.name[: -len(".gguf")] if output.name.endswith(".gguf") else output.name
    return output.with_name(name + ".raw.gguf")


def write_imatrix(imatrix: Imatrix, path: Path, output_format: str) -> None:
    (write_dat if output_format == "dat" else write_gguf)(imatrix, path)


def load_chunks(settings: CollectSettings, source, tokenizer):
    """Calibration file → (n_chunk, ctx) token ids with llama-imatrix's rules."""
    from imatrix.collect.chunks import is_parquet, make_chunks, read_calibration, resolve_add_bos, tokenize
    from imatrix.model.loading import gguf_add_bos

    parse_special = is_parquet(settings.data) if settings.parse_special is None else settings.parse_special
    add_bos, _ = resolve_add_bos(tokenizer, gguf_add_bos(source), source.label)
    tokens = tokenize(read_calibration(settings.data), tokenizer, parse_special=parse_special, add_bos=add_bos)
    options = ChunkOptions(settings.ctx_size, settings.max_chunks, settings.skip_chunks)
    return make_chunks(tokens, options, str(settings.data)), len(tokens.ids)


def run_collect(settings: CollectSettings, log: Callable[[str], None] = print) -> list[str]:
    """Do the whole collection and write the output(s); returns summary lines. Raises USER_ERRORS for bad input."""
    from contextlib import ExitStack

    from imatrix.collect.checkpoint import CheckpointPaths

    with ExitStack() as resources:  # e.g. a --device-map offload folder, removed when the run ends
        if int(os.environ.get("RANK", "0")) == 0:  # the writer (rank 0 under torchrun) owns the output
            resources.enter_context(output_lock(settings.output))  # a second run on it fails at once
            checkpoint = CheckpointPaths.beside(settings.output)
            remove_leftovers(settings.output, raw_sidecar_path(settings.output), checkpoint.gguf, checkpoint.exact,
                             checkpoint.state)
        return _run_collect(settings, log, resources)


def check_context(config, ctx_size: int) -> None:
    """Refuse -c beyond the positions the model was trained for (its config's max_position_embeddings)."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = getattr(text_config, "max_position_embeddings", None)
    if isinstance(limit, int) and 0 < limit < ctx_size:
        raise ChunkingError(f"-c {ctx_size} is beyond the model's context of {limit} tokens "
                            "(max_position_embeddings in its config); give -c of at most that")


def _run_collect(settings: CollectSettings, log: Callable[[str], None], resources) -> list[str]:
    from imatrix.collect.accumulators import plan_targets
    from imatrix.collect.checkpoint import CheckpointPaths
    from imatrix.importance.hybrid import mix, write_raw
    from imatrix.model.loading import load_tokenizer, resolve_source
    from imatrix.model.naming import TensorNaming, check_entry_lengths
    from imatrix.model.nextn import draft_model_error, missing_nextn_message, source_nextn_blocks
    from imatrix.runners.base import NonFiniteError
    from imatrix.runners.registry import runner_for

    source = resolve_source(settings.model, settings.gguf_file)
    if source.gguf_path is None:  # a HF folder: refuse what cannot be named before any weight is read
        from imatrix.collect.preflight import preflight

        for warning in preflight(source.folder, settings.fuse_qkv, settings.fuse_gate_up_exps,
                                 settings.process_output, settings.skip_unmapped, settings.trust_remote_code):
            log(f"warning: {warning}")
    tokenizer = load_tokenizer(source, settings.trust_remote_code)
    chunks, n_tokens = load_chunks(settings, source, tokenizer)
    log(f"{settings.data}: {n_tokens} tokens → {len(chunks)} chunks of {settings.ctx_size}")
    request = run_request(settings, source, chunks, log)
    runner = runner_for(request, settings.offload)
    started = time.perf_counter()
    model = runner.load(request, resources)
    log(f"loaded {type(model).__name__} from {source.label} in {time.perf_counter() - started:.1f} s")
    check_context(model.config, settings.ctx_size)
    naming = TensorNaming.for_config(model.config, settings.fuse_qkv, settings.fuse_gate_up_exps)
    plan = plan_targets(model, naming, settings.process_output, settings.skip_unmapped)
    if plan.multimodal:
        log(f"{len(plan.multimodal)} vision/audio tower and projector linears not collected: llama.cpp's converter "
            "writes them to the mmproj GGUF, which llama-quantize does not quantize with an imatrix")
    for name in plan.skipped:
        log(f"warning: {name} has no GGUF name; skipped (--skip-unmapped)")
    refusal = draft_model_error(model.config)
    if refusal:
        raise NamingError(refusal)
    nextn_warning = missing_nextn_message(source_nextn_blocks(source, model.config))
    if nextn_warning:
        log(f"warning: {nextn_warning}")
    shapes = plan.shapes()
    if source.gguf_path is not None:
        check_entry_lengths({key: rows * cols for key, (rows, cols) in shapes.items()}, source.gguf_path)
    energy = runner.column_energy(plan) if settings.hybrid else None  # a sequential runner fills it per layer
    # --process-output: the head (untied or tied) must see every position
    keep_all_logits = any(key in shapes for key in OUTPUT_KEYS)
    request = replace(request, options=replace(request.options, keep_all_logits=keep_all_logits))
    stats = runner.accumulators(request, model, shapes)
    datasets = list(request.datasets)

    def finished(chunk_count: int) -> Imatrix:
        return stats.to_imatrix(datasets, chunk_count, settings.ctx_size)

    def save(chunk_count: int) -> None:
        imatrix = finished(chunk_count)
        write_imatrix(mix(imatrix, energy, settings.alpha) if energy is not None else imatrix,
                      settings.output, settings.output_format)

    started = time.perf_counter()
    try:
        perplexity = runner.run(request, model, plan, stats, save)
    except NonFiniteError as error:
        raise ImatrixFileError(f"{error}; the output file was not (re)written") from None
    elapsed = time.perf_counter() - started
    if not runner.is_writer():
        return []
    imatrix = finished(len(chunks))
    if energy is not None:
        write_raw(imatrix, energy, raw_sidecar_path(settings.output))
        write_imatrix(mix(imatrix, energy, settings.alpha), settings.output, settings.output_format)
    else:
        write_imatrix(imatrix, settings.output, settings.output_format)
    CheckpointPaths.beside(settings.output).remove()  # the finished output supersedes any checkpoint
    lines = [f"{len(imatrix.entries)} entries, {len(chunks)} chunks x {settings.ctx_size} tokens in {elapsed:.1f} s "
             f"({chunks.size / elapsed:.1f} tokens/s) → {settings.output}"]
    if energy is not None:
        lines.append(f"hybrid alpha {settings.alpha}; raw statistics → {raw_sidecar_path(settings.output)}")
    if perplexity is not None:
        lines.append(f"Final estimate: PPL = {perplexity.value:.4f} +/- {perplexity.error:.5f}")
    if nextn_warning:
        lines.append(f"warning: {nextn_warning}")
    return lines


def run_request(settings: CollectSettings, source, chunks, log: Callable[[str], None]):
    """The runner's view of the collect options (imatrix.runners.base.RunRequest)."""
    from imatrix.model.loading import ModelOptions
    from imatrix.runners.base import CheckpointRequest, RunOptions, RunRequest

    options = RunOptions(settings.batch_size, settings.compute_ppl, settings.output_frequency,
                         progress=settings.progress)
    return RunRequest(
        source=source,
        model=ModelOptions(settings.model, settings.gguf_file, settings.dtype, settings.device,
                           settings.trust_remote_code),
        chunks=chunks, options=options, accumulate=settings.accumulate, hybrid=settings.hybrid,
        device_map=settings.device_map, max_memory=settings.max_memory,
        checkpoint=CheckpointRequest(settings.output, settings.data, settings.skip_chunks, settings.save_every,
                                     settings.resume),
        datasets=(str(settings.data),), log=log)
