"""The resident runner on a tiny llama: its sums and counts equal hooks written here in float64, batching does not
change them beyond float32 rounding, callbacks fire on the documented chunks, PPL equals cross-entropy of the
model's own logits, and a non-finite sum is named with its chunks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imatrix.collect.accumulators import SQUARES, Accumulators, plan_targets
from imatrix.model.naming import TensorNaming
from imatrix.runners.base import NonFiniteError, RunOptions
from imatrix.runners.resident import run_resident
from tests.imatrix.tiny_models import VOCAB, build

CTX, N_CHUNK = 16, 7


@pytest.fixture(scope="module")
def setup():
    model, _ = build("llama")
    chunks = np.random.default_rng(0).integers(3, VOCAB, size=(N_CHUNK, CTX)).astype(np.int64)
    return model, plan_targets(model, TensorNaming.for_config(model.config)), chunks


def reference_sums(model, plan, chunks) -> dict[str, np.ndarray]:
    """Σx² per input column of every planned linear, with plain forward pre-hooks in float64."""
    sums: dict[str, np.ndarray] = {}
    handles = []
    for target in plan.dense:
        def hook(module, args, key=target.key):
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + (x * x).sum(dim=0).numpy()
        handles.append(target.module.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(input_ids=torch.from_numpy(chunks), use_cache=False)
    for handle in handles:
        handle.remove()
    return sums


def test_sums_counts_batches_and_callbacks(setup):
    model, plan, chunks = setup
    expected = reference_sums(model, plan, chunks)
    results = []
    for per_batch in (1, 3):
        stats = Accumulators(plan.shapes(), "cpu", torch.float32)
        saved, batches = [], []
        run_resident(model, chunks, plan, stats, RunOptions(batch_size=per_batch, output_frequency=2, progress=False),
                     on_chunks_done=saved.append, on_batch_done=lambda stop, ppl: batches.append(stop))
        results.append(stats)
        assert batches == list(range(per_batch, N_CHUNK, per_batch)) + [N_CHUNK]
        # output_frequency 2: the first batch end at or past each multiple of 2, never the last chunk (the end writes)
        assert saved == {1: [2, 4, 6], 3: [3, 6]}[per_batch]
    for key, reference in expected.items():
        for stats in results:
            np.testing.assert_allclose(stats.sums[key].numpy()[0, SQUARES], reference, rtol=2e-5)
            assert stats.counts[key].tolist() == [N_CHUNK * CTX]


def test_perplexity_is_cross_entropy_of_the_second_half(setup):
    model, plan, chunks = setup
    stats = Accumulators(plan.shapes(), "cpu", torch.float32)
    perplexity = run_resident(model, chunks, plan, stats, RunOptions(batch_size=2, progress=False))
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(chunks), use_cache=False).logits.double()
    first = CTX // 2
    nll = torch.nn.functional.cross_entropy(logits[:, first:-1].reshape(-1, VOCAB),
                                            torch.from_numpy(chunks[:, first + 1:]).reshape(-1), reduction="mean")
    assert perplexity.value == pytest.approx(math.exp(float(nll)), rel=1e-5)
    assert perplexity.count == N_CHUNK * (CTX - first - 1) and len(perplexity.per_chunk) == N_CHUNK


def test_non_finite_sum_names_tensor_and_chunks(setup):
    model, plan, chunks = setup
    stats = Accumulators(plan.shapes(), "cpu", torch.float32)
    key = sorted(stats.sums)[0]
    stats.sums[key][0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=rf"{key}.*chunks 0\.\.1"):
        run_resident(model, chunks, plan, stats, RunOptions(batch_size=2, compute_ppl=False, progress=False))
