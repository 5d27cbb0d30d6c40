"""Data-parallel collection: gloo processes under torchrun give a single-process run's imatrix and PPL byte for byte;
the round-by-round reduction adds in single-process order with memory that does not grow with the number of batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imatrix.files.imatrix_file import read_imatrix
from imatrix.runners.base import Perplexity
from imatrix.runners.distributed import RecordingPerplexity, batch_owner, perplexity_in_order, rank_chunks
from tests.imatrix.collect.test_checkpoint import BATCH, CTX, text_file, tiny_folder  # noqa: F401 - fixtures
from tests.imatrix.runners.reduction_worker import SHAPES, batch_sums, reduction_worker

IMATRIX_SCRIPT = Path(sys.executable).with_name("imatrix")


@pytest.mark.parametrize("n_chunk,per_batch,world", [(9, 2, 2), (9, 2, 3), (3, 4, 2), (64, 4, 8), (5, 1, 8)])
def test_rank_chunks_cover_every_chunk_once_in_whole_batches(n_chunk, per_batch, world):
    shares = [rank_chunks(n_chunk, per_batch, rank, world).tolist() for rank in range(world)]
    assert sorted(chunk for share in shares for chunk in share) == list(range(n_chunk))
    for rank, share in enumerate(shares):
        batches = [share[i:i + per_batch] for i in range(0, len(share), per_batch)]
        # cut into batches as run_resident cuts them: each one is a whole single-process batch of this rank
        assert all(b == list(range(b[0], min(b[0] + per_batch, n_chunk))) for b in batches)
        assert all(b[0] % per_batch == 0 and batch_owner(b[0] // per_batch, world) == rank for b in batches)


def test_perplexity_rebuilt_in_chunk_order_is_the_single_process_one():
    rng = np.random.default_rng(0)
    chunks = [rng.exponential(3.0, 7).astype(np.float32) for _ in range(9)]
    single = Perplexity()
    for values in chunks:
        single.add_chunk(values)
    per_batch, world = 2, 3
    ranks = [RecordingPerplexity() for _ in range(world)]
    owners = [batch_owner(index // per_batch, world) for index in range(len(chunks))]
    for index, values in enumerate(chunks):
        ranks[owners[index]].add_chunk(values)
    rebuilt = perplexity_in_order([rank.chunk_sums for rank in ranks], owners)
    assert (rebuilt.nll, rebuilt.nll2, rebuilt.count, rebuilt.per_chunk) == (
        single.nll, single.nll2, single.count, single.per_chunk)


@pytest.mark.timeout(240)
def test_round_reduction_adds_in_single_process_order_with_bounded_memory(tmp_path, monkeypatch):
    """3 gloo ranks, 24 batches of 4 MiB of sums: rank 0 ends with the single-process float32 sums bit for bit, and
    after the first round no rank's peak memory grows by a copy of the sums (a host copy per batch: 7 more copies)."""
    import torch.multiprocessing as mp

    # glibc otherwise keeps freed multi-MB temporaries in the heap (its mmap threshold grows up to 32 MiB), so peak RSS
    # would rise for a few rounds whatever the reduction keeps; with a fixed threshold, RSS follows what is alive
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 16))
    world_size, n_batch = 3, 24
    mp.spawn(reduction_worker, args=(world_size, n_batch, str(tmp_path / "store"), str(tmp_path / "out")),
             nprocs=world_size, join=True)
    reduced = torch.load(tmp_path / "out.sums")
    full = {key: (n_mat, 2, ne0) for key, (n_mat, ne0) in SHAPES.items()}  # [Σx², Σx] per matrix
    single = {key: torch.zeros(shape) for key, shape in full.items()}
    for batch in range(n_batch):
        for key in SHAPES:
            single[key].add_(batch_sums(batch, key))
    assert all(torch.equal(reduced[key], single[key]) for key in SHAPES)
    per_rank = {key: [torch.zeros(shape) for _ in range(world_size)] for key, shape in full.items()}
    for batch in range(n_batch):
        for key in SHAPES:
            per_rank[key][batch % world_size].add_(batch_sums(batch, key))
    naive = sum(per_rank["blk.0.ffn_down.weight"][1:], per_rank["blk.0.ffn_down.weight"][0].clone())
    assert not torch.equal(naive, single["blk.0.ffn_down.weight"])  # rank-order sums are not the single-process ones
    import json

    results = [json.loads((tmp_path / f"out.{rank}.json").read_text()) for rank in range(world_size)]
    copy_bytes = sum(4 * 2 * rows * columns for rows, columns in SHAPES.values())
    assert all(result["grown"] < copy_bytes for result in results), (results, copy_bytes)
    assert all(result["zeroed"] for result in results[1:])


def _ppl_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Final estimate"))


def _collect_command(folder, text, out) -> list[str]:
    return ["collect", "-m", str(folder), "-f", str(text), "-o", str(out), "-c", str(CTX), "--chunks-per-batch",
            str(BATCH), "--dtype", "fp32", "--no-progress"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("n_proc", [2, 3])
def test_gloo_processes_write_the_single_process_file(tiny_folder, text_file, tmp_path, n_proc):  # noqa: F811
    # torchrun gives each worker OMP_NUM_THREADS=1; the reference uses the same thread count, because CPU kernels
    # with another thread count reduce in another order (that, not the sharding, would change the last bits)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[3]
    single = tmp_path / "single.gguf"
    reference = subprocess.run([str(IMATRIX_SCRIPT), *_collect_command(tiny_folder, text_file, single)],
                               capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert reference.returncode == 0, reference.stderr[-3000:]
    parallel = tmp_path / "parallel.gguf"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n_proc),
               str(IMATRIX_SCRIPT), *_collect_command(tiny_folder, text_file, parallel)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=280, env=env, cwd=root)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"rank {n_proc - 1}/{n_proc}: data-parallel collection" in completed.stderr
    assert _ppl_line(completed.stdout) == _ppl_line(reference.stdout)
    assert parallel.read_bytes() == single.read_bytes()  # dense and MoE sums, counts, metadata: byte for byte
    assert read_imatrix(parallel).chunk_count == 9
    assert not list(tmp_path.glob("*.checkpoint.*"))


@pytest.mark.timeout(300)
def test_gloo_processes_streaming_layers_write_the_single_process_file(tiny_folder, text_file, tmp_path):  # noqa: F811
    """torchrun + --offload sequential (+ --hybrid): ranks split the chunks, each streams the layers; rank 0 adds the
    per-(layer, batch) partials in batch order, so the file equals the single-process resident one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[3]
    single = tmp_path / "single.gguf"
    reference = subprocess.run([str(IMATRIX_SCRIPT), *_collect_command(tiny_folder, text_file, single), "--hybrid"],
                               capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert reference.returncode == 0, reference.stderr[-3000:]
    parallel = tmp_path / "parallel.gguf"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(IMATRIX_SCRIPT), *_collect_command(tiny_folder, text_file, parallel), "--hybrid",
               "--offload", "sequential"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=280, env=env, cwd=root)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "rank 1/2: data-parallel collection, layers streamed" in completed.stderr
    assert _ppl_line(completed.stdout) == _ppl_line(reference.stdout)
    assert parallel.read_bytes() == single.read_bytes()
    assert (tmp_path / "parallel.raw.gguf").read_bytes() == (tmp_path / "single.raw.gguf").read_bytes()
