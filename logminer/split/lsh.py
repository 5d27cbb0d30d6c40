"""LSH over MinHash signatures in numpy: band keys, candidate pairs within one set or across two, estimates.

Bands are contiguous runs of `rows` signature values, exactly as datasketch.MinHashLSH cuts them (the tests check that
the candidate pairs equal MinHashLSH's for the same bands and rows); the banding itself is done here in numpy
because MinHashLSH's per-document Python insert and query (~10k documents/s, ANCHORS.md) would be slower than the
whole rest of the dedup stage. Dedup and the audit choose bands for a recall (`recall_bands`); decontamination
uses datasketch's own optimiser (`optimal_bands`). Candidates are only candidates: logminer.split.jaccard decides.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from logminer.split.minhash import MAX_NGRAM, POSITION_MULTIPLIERS, fmix64


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): the band's `rows` values mixed together (docs × bands)."""
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    for row in range(rows):
        column = signatures[:, row : bands * rows : rows].astype(np.uint64)
        keys = fmix64(keys * np.uint64(POSITION_MULTIPLIERS[row % MAX_NGRAM]) + column + np.uint64(row + 1))
    return keys


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int, max_bucket_span: int = 32) -> np.ndarray:
    """Pairs (i < j) of documents that share at least one band bucket, as an int64 array (pairs × 2).

    Within one bucket every pair is produced for members up to `max_bucket_span` apart in the bucket's order, which
    keeps a huge bucket (thousands of identical boilerplate bands) linear while still chaining all its members.
    """
    count = len(signatures)
    if count < 2:
        return np.zeros((0, 2), dtype=np.int64)
    keys = band_keys(signatures, bands, rows)
    codes = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        ordered = keys[order, band]
        for span in range(1, min(max_bucket_span, count - 1) + 1):
            same = np.flatnonzero(ordered[span:] == ordered[:-span])
            if len(same) == 0:
                break
            left, right = order[same], order[same + span]
            codes.append(np.minimum(left, right).astype(np.int64) * count + np.maximum(left, right))
    if not codes:
        return np.zeros((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(codes))
    return np.stack((unique // count, unique % count), axis=1)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """Fraction of equal signature values for each pair (i from `signatures`, j from `other` or `signatures`)."""
    other = signatures if other is None else other
    result = np.zeros(len(pairs), dtype=np.float64)
    for lo in range(0, len(pairs), 65536):
        part = pairs[lo : lo + 65536]
        result[lo : lo + 65536] = (signatures[part[:, 0]] == other[part[:, 1]]).mean(axis=1)
    return result


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands × rows for recall: datasketch's own optimiser with false negatives weighted 9× false positives."""
    return weighted_optimum(threshold, num_perm, 0.1, 0.9)


@lru_cache(maxsize=64)
def recall_bands(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """Bands × rows (bands × rows ≤ num_perm) that make a pair of Jaccard `threshold` a candidate with probability
    at least `recall` (1 − (1 − J^rows)^bands), with the fewest false positives among those: the smallest area
    under that curve below the threshold. Written here because datasketch's optimiser weighs errors instead of
    guaranteeing a recall."""
    grid = np.linspace(0.0, threshold, 1001)
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        for bands in range(1, num_perm // rows + 1):
            if 1.0 - (1.0 - threshold**rows) ** bands >= recall:  # the fewest bands of this row count reaching it
                area = float(np.trapezoid(1.0 - (1.0 - grid**rows) ** bands, grid))
                if best is None or area < best[0]:
                    best = (area, bands, rows)
                break
    return (num_perm, 1) if best is None else (best[1], best[2])


def cross_pairs(query: np.ndarray, index: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Every pair (i in query, j in index) sharing at least one band bucket, as int64 (pairs × 2); complete, unlike
    `candidate_pairs`, because audits must not miss a straddling pair."""
    if len(query) == 0 or len(index) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    query_keys, index_keys = band_keys(query, bands, rows), band_keys(index, bands, rows)
    codes = []
    for band in range(bands):
        order = np.argsort(index_keys[:, band], kind="stable")
        ordered = index_keys[order, band]
        low = np.searchsorted(ordered, query_keys[:, band], side="left")
        high = np.searchsorted(ordered, query_keys[:, band], side="right")
        counts = high - low
        if not counts.any():
            continue
        left = np.repeat(np.arange(len(query), dtype=np.int64), counts)
        starts = np.repeat(low - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        right = order[starts + np.arange(len(left))]
        codes.append(left * len(index) + right)
    if not codes:
        return np.zeros((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(codes))
    return np.stack((unique // len(index), unique % len(index)), axis=1)


def _gauss_legendre(low: float, high: float, panels: int = 32, points: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre on [low, high]: 32 panels × 16 points integrate the steepest
    band curve (b = num_perm, r = 1) to ~1e-15, well inside the gaps between candidates' errors."""
    x, w = np.polynomial.legendre.leggauss(points)
    edges = np.linspace(low, high, panels + 1)
    half, middle = (edges[1:] - edges[:-1]) / 2, (edges[1:] + edges[:-1]) / 2
    return (middle[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


def weighted_optimum(threshold: float, num_perm: int, false_positive_weight: float,
                     false_negative_weight: float) -> tuple[int, int]:
    """(bands, rows) with bands × rows <= num_perm minimising the weighted false-positive area ∫₀ᵗ P(candidate | s) ds
    plus false-negative area ∫ₜ¹ P(missed | s) ds, where P(missed | s) = (1 − sʳ)ᵇ: datasketch's MinHashLSH optimiser
    (tests check equal choices on a grid), written here because datasketch keeps it private (`_optimal_param`)."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    bands, rows = pairs[:, :1], pairs[:, 1:]
    below, below_weights = _gauss_legendre(0.0, threshold)
    above, above_weights = _gauss_legendre(threshold, 1.0)
    false_positive = (1.0 - (1.0 - below[None, :] ** rows) ** bands) @ below_weights
    false_negative = ((1.0 - above[None, :] ** rows) ** bands) @ above_weights
    error = false_positive * false_positive_weight + false_negative * false_negative_weight
    best = int(np.argmin(error))  # the first minimum in (bands, rows) order, as datasketch's strict `<` keeps it
    return int(pairs[best, 0]), int(pairs[best, 1])
