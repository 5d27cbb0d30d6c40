"""Per-kind summaries and the paired bootstrap over sessions, on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from imatrix.llamacpp import scoring, stats


def _synthetic(kld_a, kld_b, docs):
    stream = scoring.TokenStream(np.zeros(len(docs) + 1, np.int32), np.array([0, *docs], np.int32),
                                 np.array([0] + [1] * len(docs), np.int16), ["separator", "assistant"],
                                 np.zeros(len(docs) + 1, np.int64))
    target = np.arange(1, len(docs) + 1)
    scores = scoring.TokenScores(target, np.zeros(len(docs)))
    for name, kld in (("a", kld_a), ("b", kld_b)):
        scores.kld[name], scores.same_top[name], scores.nll[name] = kld, kld < 0.5, np.zeros(len(docs))
    return stream, scores


def test_paired_bootstrap_resolves_a_constant_shift_and_not_a_tie():
    rng = np.random.default_rng(0)
    docs = np.repeat(np.arange(20), 30)
    base = rng.gamma(1.0, 0.2, len(docs))
    stream, scores = _synthetic(base + 0.01, base, docs)
    result = stats.bootstrap(stream, scores, ["a", "b"], 20, replicates=200, seed=1)
    shift = next(r for r in result["paired"] if r["metric"] == "mean_kld" and r["kind"] == "all")
    # same tokens for both quants: a constant per-token shift has a CI of exactly that shift, however noisy the KLD
    assert shift["difference"] == pytest.approx(0.01) and shift["resolved"]
    assert shift["ci_low"] == pytest.approx(0.01) and shift["ci_high"] == pytest.approx(0.01)
    own = next(r for r in result["intervals"] if (r["model"], r["metric"], r["kind"]) == ("a", "mean_kld", "all"))
    assert own["ci_low"] < own["value"] < own["ci_high"]
    stream, scores = _synthetic(base, base.copy(), docs)
    tie = next(r for r in stats.bootstrap(stream, scores, ["a", "b"], 20, replicates=200, seed=1)["paired"]
               if r["metric"] == "mean_kld")
    assert tie["difference"] == 0 and not tie["resolved"]
    again = stats.bootstrap(stream, scores, ["a", "b"], 20, replicates=200, seed=1)
    assert again == stats.bootstrap(stream, scores, ["a", "b"], 20, replicates=200, seed=1)


def test_a_difference_seen_in_one_session_is_never_resolved():
    docs = np.zeros(50, np.int64)
    base = np.random.default_rng(1).gamma(1.0, 0.2, 50)
    stream, scores = _synthetic(base + 0.5, base, docs)
    result = stats.bootstrap(stream, scores, ["a", "b"], 5, replicates=100, seed=0)
    shift = next(r for r in result["paired"] if r["metric"] == "mean_kld")
    assert result["documents_scored"] == 1 and shift["sessions"] == 1
    assert shift["difference"] == pytest.approx(0.5) and not shift["resolved"]


def test_summary_quantiles_and_kind_masks_on_a_hand_computed_case():
    docs = np.array([0, 0, 0, 0, 1, 1], np.int32)
    kinds = np.array([0, 1, 1, 2, 1, 2], np.int16)
    stream = scoring.TokenStream(np.zeros(6, np.int32), docs, kinds, ["separator", "assistant", "user"],
                                 np.zeros(6, np.int64))
    scores = scoring.TokenScores(np.arange(1, 6), np.log(np.array([2.0, 2.0, 8.0, 8.0, 8.0])))
    scores.kld["q"] = np.array([0.1, 0.3, 0.0, 0.5, 0.9])
    scores.same_top["q"] = np.array([True, False, True, True, False])
    scores.nll["q"] = scores.reference_nll + 1.0
    masks = stats.kind_masks(stream, scores)
    assert {k: m.tolist() for k, m in masks.items()} == {
        "all": [True] * 5, "assistant": [True, True, False, True, False], "user": [False, False, True, False, True]}
    assistant = stats.summary(scores, "q", masks["assistant"])
    # KLDs 0.1, 0.3, 0.5: mean 0.3, median 0.3, p99 = 0.3 + 0.98 * (0.5 - 0.3) (linear interpolation)
    assert assistant["n_tokens"] == 3 and assistant["ppl"] == pytest.approx(np.e * 32 ** (1 / 3))
    assert assistant["mean_kld"] == pytest.approx(0.3) and assistant["median_kld"] == pytest.approx(0.3)
    assert assistant["p99_kld"] == pytest.approx(0.496) and assistant["max_kld"] == 0.5
    assert assistant["same_top_pct"] == pytest.approx(200 / 3)
    assert set(stats.summary(scores, None, masks["user"])) == {"n_tokens", "ppl"}
    assert stats.summary(scores, None, masks["user"])["ppl"] == pytest.approx(8.0)


def test_replicate_weights_draw_every_document_count_per_row():
    weights = stats._replicate_weights(7, 30, seed=5)
    assert weights.shape == (30, 7) and (weights.sum(1) == 7).all()
    assert np.array_equal(weights, stats._replicate_weights(7, 30, seed=5))
    assert not np.array_equal(weights, stats._replicate_weights(7, 30, seed=6))
