"""Data-parallel collection: 2 gloo processes under torchrun give a single-process run's imatrix and PPL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imatrix.files import read_imatrix
from imatrix.runners.distributed import RecordingPerplexity, perplexity_in_order, shard
from imatrix.runners.resident import Perplexity
from tests.imatrix.test_resume import BATCH, CTX, invoke, text_file, tiny_folder  # noqa: F401 - fixtures

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


@pytest.mark.timeout(300)
def test_two_gloo_processes_equal_a_single_process(tiny_folder, text_file, tmp_path):  # noqa: F811
    single = tmp_path / "single.gguf"
    result = invoke(tiny_folder, text_file, single)
    assert result.exit_code == 0, result.output
    parallel = tmp_path / "parallel.gguf"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(IMATRIX_SCRIPT), "collect", str(tiny_folder), "--data", str(text_file), "-o", str(parallel),
               "-c", str(CTX), "--batch-size", str(BATCH), "--dtype", "fp32", "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=280,
                               cwd=Path(__file__).resolve().parents[2])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "rank 1/2: data-parallel collection" in completed.stderr
    assert _ppl_line(completed.stdout) == _ppl_line(result.output)  # exact: per-chunk sums added in chunk order
    a, b = read_imatrix(single), read_imatrix(parallel)
    assert (a.chunk_count, a.chunk_size, a.datasets) == (b.chunk_count, b.chunk_size, b.datasets)
    assert list(a.entries) == list(b.entries)
    for key in a.entries:
        assert a.entries[key].counts.tolist() == b.entries[key].counts.tolist()
        # float32 sums: two rank totals added instead of one running total, so the last bits may differ
        np.testing.assert_allclose(b.entries[key].sums, a.entries[key].sums, rtol=2e-6, atol=0, err_msg=key)
    assert not list(tmp_path.glob("*.checkpoint.*"))
