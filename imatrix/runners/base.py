"""What every runner shares: the request it serves, the interface it implements, and the run-level types.

A runner decides how the model is loaded and run over the chunks (one device, layer by layer, an accelerate device
map, torchrun ranks); what is accumulated is imatrix.collect.accumulators' business, and where results go is
imatrix.collect.pipeline's. Runners are chosen in imatrix.runners.registry; adding one touches one module there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from imatrix.model.loading import ModelLoadError, ModelOptions, ModelSource

if TYPE_CHECKING:
    from imatrix.collect.accumulators import Accumulators, Plan


LLAMA_BATCH_TOKENS = 2048  # llama-imatrix's default -b: chunks per decode = max(1, n_batch / n_ctx)


class NonFiniteError(RuntimeError):
    """An accumulated sum became inf/NaN; names the tensor and the chunks of the batch where it happened."""


@dataclass(frozen=True)
class RunOptions:
    """--chunks-per-batch (chunks per forward, 0 = like llama.cpp), --no-ppl, --output-frequency, progress bar."""

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


def logits_to_keep(options: RunOptions, ctx_size: int) -> int:
    if options.keep_all_logits:
        return 0
    return scored_positions(ctx_size) if options.compute_ppl else 1


@dataclass(frozen=True)
class CheckpointRequest:
    """--save-every / --resume: where checkpoints live and what identifies the run's data."""

    output: Path
    data: Path
    skip_chunks: int = 0
    every: int = 0
    resume: bool = False

    @property
    def active(self) -> bool:
        return self.every > 0 or self.resume


@dataclass(frozen=True)
class RunRequest:
    """Everything a runner needs: the model's source and load options, the chunks, and how to run them."""

    source: ModelSource
    model: ModelOptions
    chunks: np.ndarray
    options: RunOptions
    accumulate: str = "float32"  # accumulator dtype: "float32" like llama.cpp, or "float64"
    hybrid: bool = False  # column energies are taken from the loaded weights
    device_map: str | None = None
    max_memory: str | None = None
    checkpoint: CheckpointRequest | None = None
    datasets: tuple[str, ...] = ()
    log: Callable[[str], None] = print

    @property
    def accumulator_dtype(self) -> torch.dtype:
        return torch.float64 if self.accumulate == "float64" else torch.float32


class Runner(Protocol):
    """How the model runs. `refusal` names what a request asks that this runner cannot do (None when it can)."""

    name: str

    def refusal(self, request: RunRequest) -> str | None: ...

    def load(self, request: RunRequest, resources: ExitStack) -> torch.nn.Module: ...

    def accumulators(self, request: RunRequest, model: torch.nn.Module,
                     shapes: dict[str, tuple[int, int]]) -> Accumulators: ...

    def run(self, request: RunRequest, model: torch.nn.Module, plan: Plan, stats: Accumulators,
            on_chunks_done: Callable[[int], None]) -> Perplexity | None: ...

    def column_energy(self, plan: Plan) -> dict[str, np.ndarray]: ...  # --hybrid: ‖W[:, i]‖² of every key

    def is_writer(self) -> bool: ...


def parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ModelLoadError(f"--device {name!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {name}: CUDA is not available on this machine")
    return device


def input_device(model: torch.nn.Module) -> torch.device:
    """Where token ids go: the input embeddings' device, or (offloaded under a device_map) where they execute."""
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device
    if device.type == "meta":
        hook = getattr(embeddings, "_hf_hook", None)
        execution = getattr(hook, "execution_device", None)
        return torch.device(execution if execution is not None else "cpu")
    return device
