"""One rank of the round-reduction test (test_distributed): its own small module, so spawned workers import only this."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import torch

from imatrix.collect.accumulators import Accumulators
from imatrix.runners.distributed import RoundReduction, World

SHAPES = {"blk.0.ffn_down.weight": (1, 1 << 19), "blk.0.ffn_up_exps.weight": (4, 1 << 17), "small": (1, 3)}


def batch_sums(batch: int, key: str) -> torch.Tensor:
    """What one batch adds to `key`: positive values over six decades, so float32 order matters in the last bits."""
    generator = torch.Generator().manual_seed(batch * 1000 + sorted(SHAPES).index(key))
    n_mat, ne0 = SHAPES[key]
    shape = (n_mat, 2, ne0)  # Accumulators keep [Σx², Σx] per matrix
    return torch.rand(shape, generator=generator) * 10.0 ** torch.randint(-3, 3, shape, generator=generator)


def reduction_worker(rank: int, world_size: int, n_batch: int, store: str, out: str) -> None:
    """Add this rank's batches as the hooks would and reduce after each; rank 0 saves the sums, every rank how much
    its peak memory grew after the first round."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    stats = Accumulators(SHAPES, "cpu", torch.float32)
    reduction = RoundReduction(stats, World(rank, world_size, rank), n_batch)
    peak = []
    for batch in range(rank, n_batch, world_size):
        for key in SHAPES:
            stats.sums[key].add_(batch_sums(batch, key))
        reduction.batch_done(0, None)
        peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    result = {"grown": peak[-1] - peak[0]}  # after the first round: buffers, temporaries and transport are in place
    if rank == 0:
        torch.save(stats.sums, f"{out}.sums")
    else:
        result["zeroed"] = all(not stats.sums[key].any() for key in SHAPES)
    dist.barrier()
    dist.destroy_process_group()
    Path(f"{out}.{rank}.json").write_text(json.dumps(result))
