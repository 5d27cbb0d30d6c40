"""Summaries of per-token scores, per role kind and overall, and a paired bootstrap over sessions.

Paired bootstrap: a replicate draws the eval documents (one per session) with replacement and recomputes every
model's statistic on the drawn documents' tokens, so two quants are always compared on the same tokens; the CI of a
difference is the 2.5–97.5 percentile range of the replicates' differences. A difference is "resolved" when that
interval excludes 0 and at least two sessions have scored tokens of that kind. Tool-call agreement is bootstrapped
over the sessions holding the re-decoded calls. Ratio statistics (a mean over tokens) are sum/count over the drawn documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from imatrix.llamacpp.scoring import TokenScores, TokenStream

ALL = "all"
METRICS = ("mean_kld", "same_top_pct")


def kind_masks(stream: TokenStream, scores: TokenScores) -> dict[str, np.ndarray]:
    """Boolean masks over the scored targets: one per role kind present, and `all`."""
    kinds = stream.kind[scores.target]
    masks = {ALL: np.ones(len(kinds), bool)}
    for index, name in enumerate(stream.kinds):
        mask = kinds == index
        if mask.any():
            masks[name] = mask
    return masks


def summary(scores: TokenScores, model: str | None, mask: np.ndarray) -> dict[str, Any]:
    """n_tokens, PPL and (for a quant) mean / median / p99 KLD and same-top-token % of the masked targets."""
    nll = scores.reference_nll if model is None else scores.nll[model]
    row: dict[str, Any] = {"n_tokens": int(mask.sum()), "ppl": float(np.exp(nll[mask].mean()))}
    if model is not None:
        kld = scores.kld[model][mask]
        row |= {"mean_kld": float(kld.mean()), "median_kld": float(np.median(kld)),
                "p99_kld": float(np.quantile(kld, 0.99)), "max_kld": float(kld.max()),
                "same_top_pct": 100.0 * float(scores.same_top[model][mask].mean())}
    return row


def _replicate_weights(n_docs: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n_docs) draw counts: each row resamples the documents with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_docs, size=(replicates, n_docs))
    flat = (np.arange(replicates)[:, None] * n_docs + draws).ravel()
    return np.bincount(flat, minlength=replicates * n_docs).reshape(replicates, n_docs).astype(np.float64)


def _ratio(weights: np.ndarray, numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ numerator) / (weights @ denominator)


def bootstrap(stream: TokenStream, scores: TokenScores, quants: Sequence[str], n_docs: int, *,
              replicates: int = 1000, seed: int = 0, call_docs: np.ndarray | None = None,
              call_agree: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-model CIs and paired CIs of every quant pair's difference, per kind, for METRICS (and tool-call
    agreement with the reference when call_docs / call_agree are given: one entry per call site)."""
    docs = stream.doc[scores.target]
    active = np.unique(docs)  # only sessions with scored tokens are drawn
    draws = _replicate_weights(len(active), replicates, seed)
    weights = np.zeros((replicates, n_docs))
    weights[:, active] = draws
    replicas: dict[tuple[str, str, str], np.ndarray] = {}
    points: dict[tuple[str, str, str], float] = {}
    sessions: dict[tuple[str, str], int] = {}
    for kind, mask in kind_masks(stream, scores).items():
        count = np.bincount(docs[mask], minlength=n_docs).astype(np.float64)
        sessions["mean_kld", kind] = sessions["same_top_pct", kind] = int((count > 0).sum())
        for model in quants:
            for metric, values in (("mean_kld", scores.kld[model]), ("same_top_pct", 100.0 * scores.same_top[model])):
                total = np.bincount(docs[mask], weights=values[mask], minlength=n_docs)
                replicas[model, metric, kind] = _ratio(weights, total, count)
                points[model, metric, kind] = float(total.sum() / count.sum())
    if call_docs is not None and call_agree is not None and len(call_docs):
        count = np.bincount(call_docs, minlength=n_docs).astype(np.float64)
        sessions["tool_call_agreement_pct", ALL] = int((count > 0).sum())
        call_weights = _replicate_weights(n_docs, replicates, seed + 1)  # calls may sit in unscored sessions
        for model in quants:
            total = np.bincount(call_docs, weights=100.0 * call_agree[model], minlength=n_docs)
            replicas[model, "tool_call_agreement_pct", ALL] = _ratio(call_weights, total, count)
            points[model, "tool_call_agreement_pct", ALL] = float(total.sum() / count.sum())
    intervals = [{"model": model, "metric": metric, "kind": kind, "value": points[model, metric, kind],
                  **_interval(values)} for (model, metric, kind), values in replicas.items()]
    paired = []
    for a, b in itertools.combinations(quants, 2):
        for (model, metric, kind), values in replicas.items():
            if model != a:
                continue
            difference = values - replicas[b, metric, kind]
            ci = _interval(difference)
            # one session cannot show a difference is more than that session's: never "resolved"
            resolved = sessions[metric, kind] >= 2 and bool(ci["ci_low"] > 0 or ci["ci_high"] < 0)
            paired.append({"a": a, "b": b, "metric": metric, "kind": kind, "sessions": sessions[metric, kind],
                           "difference": points[a, metric, kind] - points[b, metric, kind], **ci,
                           "resolved": resolved})
    return {"replicates": replicates, "seed": seed, "unit": "session", "documents": n_docs,
            "documents_scored": len(active), "intervals": intervals, "paired": paired}


def _interval(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"ci_low": float("nan"), "ci_high": float("nan")}
    low, high = np.percentile(finite, [2.5, 97.5])
    return {"ci_low": float(low), "ci_high": float(high)}
