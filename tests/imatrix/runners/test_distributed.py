"""Data-parallel collection: 2 gloo processes under torchrun give a single-process run's imatrix and PPL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imatrix.files.imatrix_file import read_imatrix
from imatrix.runners.base import Perplexity
from imatrix.runners.distributed import RecordingPerplexity, perplexity_in_order, shard
from tests.imatrix.collect.test_checkpoint import BATCH, CTX, text_file, tiny_folder  # noqa: F401 - fixtures

IMATRIX_SCRIPT = Path(sys.executable).with_name("imatrix")


@pytest.mark.parametrize("n_chunk,per_batch,world", [(9, 2, 2), (9, 2, 3), (3, 4, 2), (64, 4, 8), (5, 1, 8)])
def test_shards_cover_every_chunk_once_on_batch_boundaries(n_chunk, per_batch, world):
    shares = [shard(n_chunk, per_batch, rank, world) for rank in range(world)]
    covered = [chunk for first, stop in shares for chunk in range(first, stop)]
    assert covered == list(range(n_chunk))
    assert all(first % per_batch == 0 for first, stop in shares if stop > first)


def test_perplexity_rebuilt_in_chunk_order_is_the_single_process_one():
    rng = np.random.default_rng(0)
    chunks = [rng.exponential(3.0, 7).astype(np.float32) for _ in range(9)]
    single = Perplexity()
    for values in chunks:
        single.add_chunk(values)
    halves = [RecordingPerplexity(), RecordingPerplexity()]
    for index, values in enumerate(chunks):
        halves[index >= 4].add_chunk(values)
    rebuilt = perplexity_in_order([halves[0].chunk_sums, halves[1].chunk_sums])
    assert (rebuilt.nll, rebuilt.nll2, rebuilt.count, rebuilt.per_chunk) == (
        single.nll, single.nll2, single.count, single.per_chunk)


def _ppl_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Final estimate"))


def _collect_command(folder, text, out) -> list[str]:
    return ["collect", str(folder), "--data", str(text), "-o", str(out), "-c", str(CTX), "--batch-size", str(BATCH),
            "--dtype", "fp32", "--no-progress"]


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
