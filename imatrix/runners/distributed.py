"""Data-parallel collection under torchrun: chunks sharded across ranks, statistics all-reduced once, rank 0 writes.

torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; with WORLD_SIZE > 1 every rank loads the model on its own device (cuda:LOCAL
_RANK, or the CPU with gloo), runs the resident runner over a contiguous share of whole batches (the batch boundaries
of a single-process run, so every batch computes the same numbers), and at the end the sums and counts are summed over
ranks with one all-reduce each. Counts and the perplexity are then exactly a single-process run's (the per-chunk NLL
sums are gathered and added in chunk order); the float sums are added in a different order (rank totals instead of
one running total), so they can differ from a single process in the last bits (see tests/imatrix/test_distributed.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from imatrix.collector import Plan, Statistics
from imatrix.runners.resident import Perplexity, RunOptions, run_resident


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job (world_size 1 = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """cuda → cuda:LOCAL_RANK (one GPU per rank); cpu stays cpu."""
        return f"cuda:{self.local_rank}" if requested.startswith("cuda") else requested


def init_process_group(world: World, device: str) -> None:
    """NCCL on GPUs, gloo on the CPU; a no-op when already initialised or not distributed."""
    import torch.distributed as dist

    if not world.active or dist.is_initialized():
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")


def shard(n_chunk: int, per_batch: int, rank: int, world_size: int) -> tuple[int, int]:
    """[first, stop) chunks of `rank`: a contiguous share of whole batches, every chunk in exactly one share."""
    n_batch = -(-n_chunk // per_batch)
    first_batch, stop_batch = n_batch * rank // world_size, n_batch * (rank + 1) // world_size
    return min(first_batch * per_batch, n_chunk), min(stop_batch * per_batch, n_chunk)


class RecordingPerplexity(Perplexity):
    """A Perplexity that also keeps each chunk's (Σnll, Σnll², n), so rank 0 can add them in chunk order."""

    def __init__(self) -> None:
        super().__init__()
        self.chunk_sums: list[tuple[float, float, int]] = []

    def add_chunk(self, token_nll: np.ndarray) -> None:
        values = token_nll.astype(np.float64)
        self.chunk_sums.append((float(values.sum()), float(np.square(values).sum()), values.size))
        super().add_chunk(token_nll)


def perplexity_in_order(per_rank: list[list[tuple[float, float, int]]]) -> Perplexity:
    """Rebuild the single-process accumulators: the same float additions in the same (chunk) order."""
    perplexity = Perplexity()
    for nll, nll2, count in (item for shard_sums in per_rank for item in shard_sums):
        perplexity.nll += nll
        perplexity.nll2 += nll2
        perplexity.count += count
        perplexity.per_chunk.append(perplexity.value)
    return perplexity


def all_reduce_statistics(stats: Statistics) -> None:
    """Σ over ranks of every key's sums and counts, in place, in sorted key order (same order on every rank)."""
    import torch.distributed as dist

    for key in sorted(stats.sums):
        dist.all_reduce(stats.sums[key], op=dist.ReduceOp.SUM)
        dist.all_reduce(stats.counts[key], op=dist.ReduceOp.SUM)


def run_distributed(model: torch.nn.Module, chunks: np.ndarray, plan: Plan, stats: Statistics, options: RunOptions,
                    world: World) -> Perplexity | None:
    """This rank's share through the resident runner, then the reductions; every rank returns the full perplexity."""
    import torch.distributed as dist

    first, stop = shard(len(chunks), options.chunks_per_batch(chunks.shape[1]), world.rank, world.world_size)
    recording = RecordingPerplexity() if options.compute_ppl else None
    if stop > first:
        local = RunOptions(options.batch_size, options.compute_ppl, 0, options.keep_all_logits,
                           options.progress and world.is_writer)
        run_resident(model, chunks[first:stop], plan, stats, local, perplexity=recording)
    all_reduce_statistics(stats)
    gathered: list = [None] * world.world_size
    if recording is not None:
        dist.all_gather_object(gathered, recording.chunk_sums)
    dist.destroy_process_group()  # no collective follows; rank 0 writes alone
    return None if recording is None else perplexity_in_order(gathered)
