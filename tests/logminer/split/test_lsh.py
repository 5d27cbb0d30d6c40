"""LSH: the band optimiser equals datasketch's choice on a grid; candidate and cross pairs equal a brute-force search
for shared bands; the Jaccard estimate is the share of equal signature values."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from logminer.split.lsh import (
    band_keys,
    candidate_pairs,
    cross_pairs,
    estimated_jaccard,
    optimal_bands,
    weighted_optimum,
)


@pytest.mark.parametrize("num_perm", [16, 64, 120, 256])
@pytest.mark.parametrize("weights", [(0.1, 0.9), (0.5, 0.5)])
def test_band_optimiser_chooses_as_datasketch(num_perm, weights):
    from datasketch.lsh import _optimal_param  # the reference: datasketch's private optimiser (scipy quad)

    thresholds = [round(t, 2) for t in np.arange(0.1, 0.95, 0.1)]
    ours = [weighted_optimum(t, num_perm, *weights) for t in thresholds]
    assert ours == [_optimal_param(t, num_perm, *weights) for t in thresholds]


def test_recall_weighted_bands_fit_the_signature():
    assert optimal_bands(0.65, 120) == (21, 5)  # the dedup default (verify threshold 0.7 - 0.05)
    for threshold in (0.3, 0.5, 0.8):
        bands, rows = optimal_bands(threshold, 128)
        assert bands * rows <= 128
    # weighting false negatives more never picks fewer bands of the same or longer rows: recall goes up
    recall_bands, recall_rows = weighted_optimum(0.7, 128, 0.1, 0.9)
    even_bands, even_rows = weighted_optimum(0.7, 128, 0.5, 0.5)
    assert recall_rows <= even_rows and recall_bands >= even_bands


def _signatures(rng, count: int, width: int, alphabet: int) -> np.ndarray:
    """Small alphabets make many shared bands, so the brute force below has pairs to find."""
    return rng.integers(0, alphabet, size=(count, width)).astype(np.uint32)


def _shared_band(first: np.ndarray, second: np.ndarray, bands: int, rows: int) -> bool:
    return any(np.array_equal(first[band * rows:(band + 1) * rows], second[band * rows:(band + 1) * rows])
               for band in range(bands))


def test_band_keys_equal_exactly_when_the_band_values_do():
    rng = np.random.default_rng(0)
    signatures = _signatures(rng, 40, 12, 3)
    keys = band_keys(signatures, bands=4, rows=3)
    assert keys.shape == (40, 4)
    for i, j in combinations(range(40), 2):
        for band in range(4):
            same_values = np.array_equal(signatures[i, band * 3:band * 3 + 3], signatures[j, band * 3:band * 3 + 3])
            assert (keys[i, band] == keys[j, band]) == same_values


@pytest.mark.parametrize("seed", [1, 2])
def test_candidate_pairs_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    signatures = _signatures(rng, 60, 8, 2)
    expected = {(i, j) for i, j in combinations(range(60), 2) if _shared_band(signatures[i], signatures[j], 4, 2)}
    found = candidate_pairs(signatures, bands=4, rows=2, max_bucket_span=60)
    assert found.dtype == np.int64 and {tuple(p) for p in found.tolist()} == expected
    assert len(expected) > 100


def test_huge_bucket_is_chained_not_squared():
    signatures = np.zeros((50, 4), dtype=np.uint32)  # one bucket of 50 identical documents
    pairs = candidate_pairs(signatures, bands=2, rows=2, max_bucket_span=3)
    assert len(pairs) == 49 + 48 + 47  # neighbours up to 3 apart in the bucket, enough to connect all 50
    assert {tuple(p) for p in pairs.tolist()} >= {(i, i + 1) for i in range(49)}
    assert candidate_pairs(signatures[:1], 2, 2).shape == (0, 2)


def test_cross_pairs_equal_brute_force_and_are_complete():
    rng = np.random.default_rng(5)
    query, index = _signatures(rng, 30, 6, 2), _signatures(rng, 45, 6, 2)
    expected = {(i, j) for i in range(30) for j in range(45) if _shared_band(query[i], index[j], 3, 2)}
    assert {tuple(p) for p in cross_pairs(query, index, bands=3, rows=2).tolist()} == expected
    assert cross_pairs(query[:0], index, 3, 2).shape == (0, 2)


def test_estimated_jaccard_is_the_share_of_equal_values():
    first = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.uint32)
    second = np.array([[1, 2, 0, 0], [5, 6, 7, 9]], dtype=np.uint32)
    pairs = np.array([[0, 0], [1, 1], [0, 1]])
    assert estimated_jaccard(first, pairs, second).tolist() == [0.5, 0.75, 0.0]
    assert estimated_jaccard(first, np.array([[0, 1]])).tolist() == [0.0]
