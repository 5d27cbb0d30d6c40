"""What every runner shares: llama-perplexity's estimator against a direct computation, the scored positions,
chunks per batch like llama.cpp's -b, and the request's derived settings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from imatrix.model.loading import ModelLoadError, ModelOptions, ModelSource
from imatrix.runners.base import (
    CheckpointRequest,
    Perplexity,
    RunOptions,
    RunRequest,
    chunk_nll,
    logits_to_keep,
    parse_device,
    scored_positions,
)


def test_perplexity_and_its_error_equal_the_formulas():
    rng = np.random.default_rng(0)
    chunks = [rng.exponential(2.0, 31) for _ in range(5)]
    perplexity = Perplexity()
    for values in chunks:
        perplexity.add_chunk(values.astype(np.float32))
    every = np.concatenate([c.astype(np.float32).astype(np.float64) for c in chunks])
    assert perplexity.value == pytest.approx(math.exp(every.mean()), rel=1e-12)
    variance = np.mean(every**2) - every.mean() ** 2
    assert perplexity.error == pytest.approx(math.sqrt(variance / (every.size - 1)) * math.exp(every.mean()))
    assert perplexity.per_chunk[0] == pytest.approx(math.exp(chunks[0].astype(np.float32).mean()), rel=1e-6)
    assert len(perplexity.per_chunk) == 5 and math.isnan(Perplexity().value) and Perplexity().error == 0.0


def test_chunk_nll_scores_the_second_half_like_cross_entropy():
    torch.manual_seed(0)
    ctx, vocab = 8, 11
    chunks = torch.randint(0, vocab, (3, ctx))
    logits = torch.randn(3, scored_positions(ctx), vocab)  # what the model returns with logits_to_keep
    nll = chunk_nll(logits, chunks)
    assert nll.shape == (3, ctx - ctx // 2 - 1)
    # position p predicts token p + 1; kept logits are positions ctx/2 … ctx-1, the last one predicts nothing
    targets = chunks[:, ctx // 2 + 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets, reduction="none")
    expected = expected.reshape(3, -1)
    assert torch.allclose(nll, expected, atol=1e-6)
    assert (scored_positions(8), scored_positions(7)) == (4, 4)


def test_logits_kept_and_chunks_per_batch():
    assert logits_to_keep(RunOptions(), 512) == 256
    assert logits_to_keep(RunOptions(compute_ppl=False), 512) == 1
    assert logits_to_keep(RunOptions(keep_all_logits=True), 512) == 0
    assert [RunOptions().chunks_per_batch(c) for c in (512, 128, 4096)] == [4, 16, 1]  # max(1, 2048 // ctx)
    assert RunOptions(batch_size=3).chunks_per_batch(512) == 3


def test_request_settings():
    request = RunRequest(ModelSource(Path("m"), None), ModelOptions(), np.zeros((1, 4), dtype=np.int64), RunOptions(),
                         accumulate="float64")
    assert request.accumulator_dtype == torch.float64
    assert not CheckpointRequest(Path("o"), Path("d")).active
    assert CheckpointRequest(Path("o"), Path("d"), every=5).active and CheckpointRequest(Path("o"), Path("d"),
                                                                                         resume=True).active
    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelLoadError, match="--device 'quantum'"):
        parse_device("quantum")
