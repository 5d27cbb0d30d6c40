"""Resident runner: the whole model on one device, chunks in batches, every chunk its own sequence from position 0."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from imatrix.collector import Plan, Statistics, collecting

LLAMA_BATCH_TOKENS = 2048  # llama-imatrix's default -b: chunks per decode = max(1, n_batch / n_ctx)


class NonFiniteError(RuntimeError):
    """An accumulated sum became inf/NaN; names the tensor and the chunks of the batch where it happened."""


@dataclass(frozen=True)
class RunOptions:
    """--batch-size (chunks per forward, 0 = like llama.cpp), --no-ppl, --output-frequency, progress bar."""

    batch_size: int = 0
    compute_ppl: bool = True
    output_frequency: int = 10
    keep_all_logits: bool = False  # --process-output with an untied head: the head must see every position
    progress: bool = True

    def chunks_per_batch(self, ctx_size: int) -> int:
        return self.batch_size if self.batch_size > 0 else max(1, LLAMA_BATCH_TOKENS // ctx_size)


@dataclass
class Perplexity:
    """llama-perplexity's estimator over the second half of every chunk (spec §2), accumulated in float64."""

    nll: float = 0.0
    nll2: float = 0.0
    count: int = 0
    per_chunk: list[float] = field(default_factory=list)  # running exp(mean NLL) after each chunk, as printed

    def add_chunk(self, token_nll: np.ndarray) -> None:
        values = token_nll.astype(np.float64)
        self.nll += float(values.sum())
        self.nll2 += float(np.square(values).sum())
        self.count += values.size
        self.per_chunk.append(self.value)

    @property
    def value(self) -> float:
        return math.exp(self.nll / self.count) if self.count else float("nan")

    @property
    def error(self) -> float:
        """sqrt(var/(count-1))·ppl with var = E[nll²] − E[nll]², 0 when undefined (llama.cpp)."""
        if self.count < 2:
            return 0.0
        mean = self.nll / self.count
        variance = self.nll2 / self.count - mean * mean
        return math.sqrt(variance / (self.count - 1)) * self.value if variance > 0 else 0.0


def scored_positions(ctx_size: int) -> int:
    """Logits kept per chunk for PPL: positions ctx/2 … ctx-1 (the last one predicts nothing)."""
    return ctx_size - ctx_size // 2


def chunk_nll(logits: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """NLL of tokens ctx/2+1 … ctx-1 of each chunk from the logits of positions ctx/2 … ctx-2."""
    ctx_size = chunks.shape[1]
    first = ctx_size // 2
    scoring = logits[:, -(ctx_size - first):-1, :].float()
    targets = chunks[:, first + 1:].unsqueeze(-1)
    # -log_softmax[target] = logsumexp - logit[target]: a reduction, so no vocab-sized log-prob tensor is written
    return torch.logsumexp(scoring, dim=-1) - scoring.gather(-1, targets).squeeze(-1)


def _logits_to_keep(options: RunOptions, ctx_size: int) -> int:
    if options.keep_all_logits:
        return 0
    return scored_positions(ctx_size) if options.compute_ppl else 1


def input_device(model: torch.nn.Module) -> torch.device:
    """Where token ids go: the input embeddings' device, or (offloaded under a device_map) where they execute."""
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device
    if device.type == "meta":
        hook = getattr(embeddings, "_hf_hook", None)
        execution = getattr(hook, "execution_device", None)
        return torch.device(execution if execution is not None else "cpu")
    return device


def run_resident(model: torch.nn.Module, chunks: np.ndarray, plan: Plan, stats: Statistics, options: RunOptions,
                 on_chunks_done: Callable[[int], None] | None = None, *, start_chunk: int = 0,
                 perplexity: Perplexity | None = None,
                 on_batch_done: Callable[[int, Perplexity | None], None] | None = None) -> Perplexity | None:
    """Forward every chunk with the hooks installed; on_chunks_done(n) fires every output_frequency chunks.

    Resuming (imatrix.checkpoint): `start_chunk` skips chunks already in `stats` (batches keep the boundaries of a
    run from 0), `perplexity` carries the accumulators so far, and on_batch_done(next_chunk, perplexity) fires after
    every completed batch.
    """
    from tqdm.auto import tqdm

    device = input_device(model)
    n_chunk, ctx_size = chunks.shape
    per_batch = options.chunks_per_batch(ctx_size)
    keep = _logits_to_keep(options, ctx_size)
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


def _check_finite(stats: Statistics, start: int, stop: int) -> None:
    bad = stats.first_nonfinite()
    if bad is not None:
        raise NonFiniteError(f"non-finite values detected in {bad} while processing chunks {start}..{stop - 1}")
