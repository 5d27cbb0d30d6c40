"""Data-parallel collection under torchrun: batches dealt round-robin to the ranks, added in batch order, rank 0 writes.

torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; with WORLD_SIZE > 1 every rank loads the model on its own device (cuda:LOCAL
_RANK, or the CPU with gloo) and runs the resident runner over its batches: batch b (the batch boundaries of a
single-process run, so every batch computes the same numbers) goes to rank b mod WORLD_SIZE. Round k is batches
k·W … k·W + W − 1. Rank 0 keeps the running totals in its own accumulators: its hooks add batch k·W into them as a
single process would, then it receives the sums of batches k·W + 1 … from ranks 1 … W − 1 and adds them in that
order. The other ranks zero their accumulators before each batch (0 + x is exact), so what they send is exactly what
that batch adds in a single process. Every addition is therefore the single-process one, in its order, while memory
stays at one set of accumulators per rank plus, on rank 0, a receive buffer the size of the largest tensor (sums are
sent tensor by tensor). Counts are integers and all-reduced at the end; the per-chunk NLL sums are gathered and added
in chunk order. Dense sums, counts and the PPL are exactly a single-process run's. Routed MoE sums of ranks other
than 0 (addmm into the accumulator) match exactly only when the matmul does not split the token dimension into
several blocks; otherwise they may differ in the last bits.
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


def batch_owner(batch: int, world_size: int) -> int:
    """The rank that runs `batch`: batches are dealt round-robin, so round k holds one batch of every rank."""
    return batch % world_size


def rank_chunks(n_chunk: int, per_batch: int, rank: int, world_size: int) -> np.ndarray:
    """Indices of the chunks `rank` runs, in order: whole batches b ≡ rank (mod world_size); every chunk in exactly
    one rank's list, and each list cut into batches of `per_batch` keeps the single-process batch boundaries."""
    chunk = np.arange(n_chunk)
    return chunk[batch_owner(chunk // per_batch, world_size) == rank]


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


def perplexity_in_order(per_rank: list[list[tuple[float, float, int]]], owners: list[int]) -> Perplexity:
    """Rebuild the single-process accumulators: the same float additions in the same (chunk) order; owners[i] is the
    rank that scored chunk i, and each rank's list is in its own chunk order."""
    perplexity = Perplexity()
    sums = [iter(shard_sums) for shard_sums in per_rank]
    for owner in owners:
        nll, nll2, count = next(sums[owner])
        perplexity.nll += nll
        perplexity.nll2 += nll2
        perplexity.count += count
        perplexity.per_chunk.append(perplexity.value)
    return perplexity


class RoundReduction:
    """Adds every batch into rank 0's accumulators in batch order, one round at a time (see the module docstring).

    `batch_done` runs after each of this rank's batches (run_resident's on_batch_done). Rank 0: receive the round's
    other batches tensor by tensor into one buffer and add them; other ranks: send each tensor, then zero it.
    """

    def __init__(self, stats: Accumulators, world: World, n_batch: int) -> None:
        self.stats, self.world, self.n_batch = stats, world, n_batch
        self.keys = sorted(stats.sums)
        self.round = 0
        self.buffer: torch.Tensor | None = None
        if world.rank == 0 and self.keys:
            largest = max(stats.sums[k].numel() for k in self.keys)
            self.buffer = torch.empty(largest, dtype=stats.dtype, device=stats.sums[self.keys[0]].device)

    def batch_done(self, next_chunk: int, perplexity: Perplexity | None) -> None:
        import torch.distributed as dist

        first = self.round * self.world.world_size
        if self.world.rank == 0:
            for sender in range(1, self.world.world_size):
                if first + sender >= self.n_batch:
                    break
                for key in self.keys:
                    total = self.stats.sums[key]
                    received = self.buffer[:total.numel()].view_as(total)
                    dist.recv(received, src=sender)
                    total.add_(received)
        else:
            for key in self.keys:
                dist.send(self.stats.sums[key], dst=0)
                self.stats.sums[key].zero_()
        self.round += 1


def run_distributed(model: torch.nn.Module, chunks: np.ndarray, plan: Plan, stats: Accumulators, options: RunOptions,
                    world: World) -> Perplexity | None:
    """This rank's batches through the resident runner, reduced round by round; rank 0 ends with the full statistics."""
    import torch.distributed as dist

    per_batch = options.chunks_per_batch(chunks.shape[1])
    n_batch = -(-len(chunks) // per_batch)
    mine = rank_chunks(len(chunks), per_batch, world.rank, world.world_size)
    recording = RecordingPerplexity() if options.compute_ppl else None
    if len(mine):
        local = RunOptions(options.batch_size, options.compute_ppl, 0, options.keep_all_logits,
                           options.progress and world.is_writer)
        run_resident(model, chunks[mine], plan, stats, local, perplexity=recording,
                     on_batch_done=RoundReduction(stats, world, n_batch).batch_done)
    for key in sorted(stats.counts):
        dist.all_reduce(stats.counts[key], op=dist.ReduceOp.SUM)
    gathered: list = [None] * world.world_size
    if recording is not None:
        dist.all_gather_object(gathered, recording.chunk_sums)
    # every rank's sends and gathers are finished before any tears gloo down (a rank destroying its group while a peer
    # still talks to it aborted with "terminate called without an active exception", about 1 run in 8)
    dist.barrier()
    dist.destroy_process_group()  # no collective follows; rank 0 writes alone
    if recording is None:
        return None
    owners = [batch_owner(chunk // per_batch, world.world_size) for chunk in range(len(chunks))]
    return perplexity_in_order(gathered, owners)


class LayerBatchPartials:
    """--offload sequential under torchrun: batch b's partial sums are filled layer by layer (each layer's keys copied
    out to the host, and zeroed, after that layer ran batch b), so rank 0 adds the same per-batch partials in the
    single-process order. Unlike RoundReduction this keeps one host copy per batch of the shard: the sequential
    runner finishes a layer for every batch before the next layer, so no round can be reduced early."""

    def __init__(self, stats: Accumulators) -> None:
        self.stats, self.keys = stats, sorted(stats.sums)
        self.partials: list[torch.Tensor] = []
        self.offsets, offset = {}, 0
        for key in self.keys:
            self.offsets[key] = offset
            offset += stats.sums[key].numel()

    def flat_size(self) -> int:
        return sum(self.stats.sums[k].numel() for k in self.keys)

    def layer_batch_done(self, keys: list[str], batch: int) -> None:
        while len(self.partials) <= batch:
            self.partials.append(torch.zeros(self.flat_size(), dtype=self.stats.dtype))
        for key in keys:
            values = self.stats.sums[key]
            self.partials[batch][self.offsets[key]:self.offsets[key] + values.numel()] += values.reshape(-1).cpu()
            values.zero_()

    def store(self, flat: torch.Tensor) -> None:
        for key in self.keys:
            target = self.stats.sums[key]
            target.copy_(flat[self.offsets[key]:self.offsets[key] + target.numel()].view_as(target))


def reduce_in_chunk_order(partials: LayerBatchPartials, owners: list[int], world: World, device: torch.device) -> None:
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


def run_distributed_sequential(chunks: np.ndarray, stats: Accumulators, options: RunOptions, world: World,
                               run_shard, partials: LayerBatchPartials) -> Perplexity | None:
    """--offload sequential under torchrun: this rank's contiguous share of whole batches through `run_shard(chunks,
    options, perplexity)` (the sequential runner, filling `partials`), then rank 0 adds every batch in order."""
    import torch.distributed as dist

    per_batch = options.chunks_per_batch(chunks.shape[1])
    n_batch = -(-len(chunks) // per_batch)
    owners = [next(r for r in range(world.world_size) if shard(len(chunks), per_batch, r, world.world_size)[1]
                   > b * per_batch) for b in range(n_batch)]
    first, stop = shard(len(chunks), per_batch, world.rank, world.world_size)
    recording = RecordingPerplexity() if options.compute_ppl else None
    if stop > first:
        local = RunOptions(options.batch_size, options.compute_ppl, 0, options.keep_all_logits,
                           options.progress and world.is_writer)
        run_shard(chunks[first:stop], local, recording)
    reduce_in_chunk_order(partials, owners, world, next(iter(stats.sums.values())).device)
    gathered: list = [None] * world.world_size
    if recording is not None:
        dist.all_gather_object(gathered, recording.chunk_sums)
    dist.barrier()  # see run_distributed
    dist.destroy_process_group()
    if recording is None:
        return None
    return perplexity_in_order(gathered, [owners[chunk // per_batch] for chunk in range(len(chunks))])


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
