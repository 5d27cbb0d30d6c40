"""Resident runner: the whole model on one device, chunks in batches, every chunk its own sequence from position 0."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
import torch

from imatrix.collect.accumulators import Accumulators, Plan, collecting, column_energy
from imatrix.model.loading import load_model
from imatrix.runners.base import (
    NonFiniteError,
    Perplexity,
    RunOptions,
    RunRequest,
    chunk_nll,
    input_device,
    logits_to_keep,
)


class ResidentRunner:
    """The default: the whole model on --device; the only runner that checkpoints (--save-every / --resume)."""

    name = "resident"

    def refusal(self, request: RunRequest) -> str | None:
        return None

    def load(self, request: RunRequest, resources: ExitStack) -> torch.nn.Module:
        return load_model(request.source, request.model)

    def accumulators(self, request: RunRequest, model: torch.nn.Module,
                     shapes: dict[str, tuple[int, int]]) -> Accumulators:
        return Accumulators(shapes, next(model.parameters()).device, request.accumulator_dtype)

    def run(self, request: RunRequest, model: torch.nn.Module, plan: Plan, stats: Accumulators,
            on_chunks_done: Callable[[int], None]) -> Perplexity | None:
        from imatrix.collect.checkpoint import CheckpointPaths, run_identity, run_resumable, source_weight_files

        chunks, options, checkpoint = request.chunks, request.options, request.checkpoint

        def run(start: int, perplexity: Perplexity | None, on_batch_done) -> Perplexity | None:
            return run_resident(model, chunks, plan, stats, options, on_chunks_done, start_chunk=start,
                                perplexity=perplexity, on_batch_done=on_batch_done)

        if checkpoint is None:
            return run(0, None, None)
        identity = run_identity(
            model_label=request.source.label, model_config=model.config.to_dict(), dtype=request.model.dtype,
            data=checkpoint.data, chunks=chunks, skip_chunks=checkpoint.skip_chunks,
            chunks_per_batch=options.chunks_per_batch(chunks.shape[1]), accumulate=request.accumulate,
            shapes=plan.shapes(), weight_files=source_weight_files(request.source.folder, request.source.gguf_path))
        return run_resumable(run, stats, CheckpointPaths.beside(checkpoint.output), identity, list(request.datasets),
                             every=checkpoint.every, resume=checkpoint.resume, log=request.log)

    def column_energy(self, plan: Plan) -> dict[str, np.ndarray]:
        return column_energy(plan)

    def is_writer(self) -> bool:
        return True


def run_resident(model: torch.nn.Module, chunks: np.ndarray, plan: Plan, stats: Accumulators, options: RunOptions,
                 on_chunks_done: Callable[[int], None] | None = None, *, start_chunk: int = 0,
                 perplexity: Perplexity | None = None,
                 on_batch_done: Callable[[int, Perplexity | None], None] | None = None) -> Perplexity | None:
    """Forward every chunk with the hooks installed; on_chunks_done(n) fires every output_frequency chunks.

    Resuming (imatrix.collect.checkpoint): `start_chunk` skips chunks already in `stats` (batches keep the boundaries of a
    run from 0), `perplexity` carries the accumulators so far, and on_batch_done(next_chunk, perplexity) fires after
    every completed batch.
    """
    from tqdm.auto import tqdm

    device = input_device(model)
    n_chunk, ctx_size = chunks.shape
    per_batch = options.chunks_per_batch(ctx_size)
    keep = logits_to_keep(options, ctx_size)
    if perplexity is None and options.compute_ppl:
        perplexity = Perplexity()
    freq = options.output_frequency
    next_save = (start_chunk // freq + 1) * freq if freq > 0 else None
    bar = tqdm(total=(n_chunk - start_chunk) * ctx_size, unit="tok", unit_scale=True, disable=not options.progress,
               desc="collect", dynamic_ncols=True)
    model.eval()
    with torch.no_grad(), collecting(plan, stats), bar:
        for start in range(start_chunk, n_chunk, per_batch):
            stop = min(start + per_batch, n_chunk)
            batch = torch.from_numpy(chunks[start:stop]).to(device)
            logits = model(input_ids=batch, use_cache=False, logits_to_keep=keep).logits
            _check_finite(stats, start, stop)
            if perplexity is not None:
                for row in chunk_nll(logits, batch).cpu().numpy():
                    perplexity.add_chunk(row)
            del logits
            bar.update((stop - start) * ctx_size)
            postfix = {"chunk": f"{stop}/{n_chunk}"}
            if perplexity is not None:
                postfix["ppl"] = f"{perplexity.value:.4f}"
            bar.set_postfix(postfix)
            if next_save is not None and on_chunks_done is not None and stop >= next_save and stop < n_chunk:
                on_chunks_done(stop)
                next_save = (stop // options.output_frequency + 1) * options.output_frequency
            if on_batch_done is not None:
                on_batch_done(stop, perplexity)
    return perplexity


def _check_finite(stats: Accumulators, start: int, stop: int) -> None:
    bad = stats.first_nonfinite()
    if bad is not None:
        raise NonFiniteError(f"non-finite values detected in {bad} while processing chunks {start}..{stop - 1}")
