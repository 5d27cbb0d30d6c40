"""Data-parallel collection under torchrun: chunks sharded across ranks, partial sums reduced in chunk order, rank 0 writes.

torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; with WORLD_SIZE > 1 every rank loads the model on its own device (cuda:LOCAL
_RANK, or the CPU with gloo), runs the resident runner over a contiguous share of whole batches (the batch boundaries
of a single-process run, so every batch computes the same numbers). Each rank keeps its per-batch partial sums; at
the end rank 0 adds all partials in batch order (the single-process additions, in the same order), counts are
all-reduced, and the per-chunk NLL sums are gathered and added in chunk order. Dense sums, counts and the PPL are
therefore exactly a single-process run's. Routed MoE sums (addmm into the accumulator) match exactly only when the
matmul does not split the token dimension into several blocks; otherwise they may differ in the last bits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from imatrix.collect.accumulators import Accumulators, Plan, column_energy
from imatrix.model.loading import ModelOptions, load_model
from imatrix.runners.base import Perplexity, RunOptions, RunRequest
from imatrix.runners.resident import run_resident


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


class BatchPartials:
    """Per-batch sums of this rank, kept on the host so rank 0 can add every batch in chunk order.

    After each batch the device sums are copied out (one host copy per batch, not per hook) and zeroed; 0 + x is exact,
    so each partial is exactly what that batch added in a single-process run. Counts are integers and simply summed.
    """

    def __init__(self, stats: Accumulators) -> None:
        self.stats, self.keys = stats, sorted(stats.sums)
        self.partials: list[torch.Tensor] = []

    def batch_done(self, next_chunk: int, perplexity: Perplexity | None) -> None:
        self.partials.append(torch.cat([self.stats.sums[k].reshape(-1) for k in self.keys]).cpu())
        for key in self.keys:
            self.stats.sums[key].zero_()

    def flat_size(self) -> int:
        return sum(self.stats.sums[k].numel() for k in self.keys)

    def store(self, flat: torch.Tensor) -> None:
        offset = 0
        for key in self.keys:
            target = self.stats.sums[key]
            target.copy_(flat[offset:offset + target.numel()].view_as(target))
            offset += target.numel()


class LayerBatchPartials(BatchPartials):
    """BatchPartials for --offload sequential: batch b's partial is filled layer by layer, each layer's keys copied
    out (and zeroed) after that layer ran batch b, so rank 0 adds the same per-batch partials in the same order."""

    def __init__(self, stats: Accumulators) -> None:
        super().__init__(stats)
        self.offsets, offset = {}, 0
        for key in self.keys:
            self.offsets[key] = offset
            offset += stats.sums[key].numel()

    def layer_batch_done(self, keys: list[str], batch: int) -> None:
        while len(self.partials) <= batch:
            self.partials.append(torch.zeros(self.flat_size(), dtype=self.stats.dtype))
        for key in keys:
            values = self.stats.sums[key]
            self.partials[batch][self.offsets[key]:self.offsets[key] + values.numel()] += values.reshape(-1).cpu()
            values.zero_()


def reduce_in_chunk_order(partials: BatchPartials, owners: list[int], world: World, device: torch.device) -> None:
    """Rank 0 adds every batch's partial in batch order (its own, or received from the owning rank): the additions of
    a single-process run, in its order. Counts: one all-reduce per key."""
    import torch.distributed as dist

    stats = partials.stats
    for key in partials.keys:
        dist.all_reduce(stats.counts[key], op=dist.ReduceOp.SUM)
    total = torch.zeros(partials.flat_size(), dtype=stats.dtype, device=device)
    received = torch.empty_like(total)
    mine = iter(partials.partials)
    for owner in owners:
        if world.rank == 0:
            if owner == 0:
                total += next(mine).to(device)
            else:
                dist.recv(received, src=owner)
                total += received
        elif world.rank == owner:
            dist.send(next(mine).to(device), dst=0)
    if world.rank == 0:
        partials.store(total)


def run_distributed(model: torch.nn.Module, chunks: np.ndarray, plan: Plan, stats: Accumulators, options: RunOptions,
                    world: World, run_shard=None, partials: BatchPartials | None = None) -> Perplexity | None:
    """This rank's share through the resident runner (or `run_shard(chunks, options, perplexity)`, e.g. the
    sequential one filling `partials`), then the reductions; rank 0 ends with the full statistics."""
    import torch.distributed as dist

    per_batch = options.chunks_per_batch(chunks.shape[1])
    n_batch = -(-len(chunks) // per_batch)
    owners = [next(r for r in range(world.world_size) if shard(len(chunks), per_batch, r, world.world_size)[1]
                   > b * per_batch) for b in range(n_batch)]
    first, stop = shard(len(chunks), per_batch, world.rank, world.world_size)
    recording = RecordingPerplexity() if options.compute_ppl else None
    partials = BatchPartials(stats) if partials is None else partials
    if stop > first:
        local = RunOptions(options.batch_size, options.compute_ppl, 0, options.keep_all_logits,
                           options.progress and world.is_writer)
        if run_shard is not None:
            run_shard(chunks[first:stop], local, recording)
        else:
            run_resident(model, chunks[first:stop], plan, stats, local, perplexity=recording,
                         on_batch_done=partials.batch_done)
    device = next(iter(stats.sums.values())).device
    reduce_in_chunk_order(partials, owners, world, device)
    gathered: list = [None] * world.world_size
    if recording is not None:
        dist.all_gather_object(gathered, recording.chunk_sums)
    # every rank's sends and gathers are finished before any tears gloo down (a rank destroying its group while a peer
    # still talks to it aborted with "terminate called without an active exception", about 1 run in 8)
    dist.barrier()
    dist.destroy_process_group()  # no collective follows; rank 0 writes alone
    return None if recording is None else perplexity_in_order(gathered)


class DistributedRunner:
    """Under torchrun (WORLD_SIZE > 1): every rank loads the whole model on its device and collects its shard."""

    name = "torchrun"

    def refusal(self, request: RunRequest) -> str | None:
        if request.checkpoint is not None and request.checkpoint.active:
            return "--save-every/--resume: not supported under torchrun yet; run a single process to resume"
        return None

    def load(self, request: RunRequest, resources) -> torch.nn.Module:
        world = World.from_env()
        device = world.device(request.model.device)
        init_process_group(world, device)
        options = request.model
        return load_model(request.source, ModelOptions(options.model, options.gguf_file, options.dtype, device,
                                                       options.trust_remote_code))

    def accumulators(self, request: RunRequest, model: torch.nn.Module,
                     shapes: dict[str, tuple[int, int]]) -> Accumulators:
        return Accumulators(shapes, next(model.parameters()).device, request.accumulator_dtype)

    def run(self, request: RunRequest, model: torch.nn.Module, plan: Plan, stats: Accumulators,
            on_chunks_done) -> Perplexity | None:
        world = World.from_env()
        request.log(f"rank {world.rank}/{world.world_size}: data-parallel collection")
        return run_distributed(model, request.chunks, plan, stats, request.options, world)

    def column_energy(self, plan: Plan) -> dict[str, np.ndarray]:
        return column_energy(plan)

    def is_writer(self) -> bool:
        return World.from_env().is_writer
