"""Exact Jaccard similarity of documents' word n-gram sets, for the candidate pairs MinHash-LSH proposes.

MinHash only estimates (120 permutations: σ ≈ 0.04 at J = 0.7), so every near-duplicate decision in dedup and
in the split audit is taken on the truth: the sets of 64-bit n-gram hashes of `logminer.split.minhash` (the same
normalisation and shingles whose upper 32 bits feed the signatures; 64 bits make a false match between two
different n-grams of one pair negligible, ~n²/2⁶⁴). Sets are built once per document that appears in a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from logminer.split.minhash import shingle_block

BLOCK_DOCS = 256  # documents shingled together
BATCH_VALUES = 1 << 22  # n-gram hashes sorted together when counting the intersections of many pairs


class ShingleSets:
    """Sorted distinct word n-gram hashes of `texts`, made on first use of each document."""

    def __init__(self, texts: Sequence[str], ngram: int):
        self.texts = texts
        self.ngram = ngram
        self.sets: dict[int, np.ndarray] = {}

    def _ensure(self, documents: np.ndarray) -> None:
        missing = [i for i in np.unique(documents).tolist() if i not in self.sets]
        for first in range(0, len(missing), BLOCK_DOCS):
            block = missing[first : first + BLOCK_DOCS]
            shingled = shingle_block([self.texts[i] for i in block], self.ngram, wide=True)
            for position, index in enumerate(block):
                values = shingled.hashes[shingled.offsets[position] : shingled.offsets[position + 1]]
                self.sets[index] = np.unique(values)

    def sizes(self, documents: np.ndarray) -> np.ndarray:
        """Number of distinct n-grams of each document."""
        documents = np.asarray(documents, dtype=np.int64)
        self._ensure(documents)
        return np.array([len(self.sets[i]) for i in documents.tolist()], dtype=np.int64)

    def intersections(self, pairs: np.ndarray) -> np.ndarray:
        """|A ∩ B| for every pair (pairs × 2 document indices), counted in batches of about BATCH_VALUES hashes:
        sorted by (pair, hash), a hash shared by both sets of a pair shows up as two equal neighbours."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._ensure(pairs.ravel())
        result = np.zeros(len(pairs), dtype=np.int64)
        ends = np.cumsum(self.sizes(pairs[:, 0]) + self.sizes(pairs[:, 1]))
        first = 0
        while first < len(pairs):
            before = ends[first - 1] if first else 0
            last = max(first + 1, int(np.searchsorted(ends, before + BATCH_VALUES, side="right")))
            left = [self.sets[i] for i in pairs[first:last, 0].tolist()]
            right = [self.sets[i] for i in pairs[first:last, 1].tolist()]
            owner = np.repeat(np.tile(np.arange(last - first), 2), [len(s) for s in left + right])
            values = np.concatenate(left + right) if left else np.zeros(0, dtype=np.uint64)
            order = np.lexsort((values, owner))
            values, owner = values[order], owner[order]
            shared = (values[1:] == values[:-1]) & (owner[1:] == owner[:-1])
            result[first:last] = np.bincount(owner[1:][shared], minlength=last - first)
            first = last
        return result

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """|A ∩ B| / |A ∪ B| for every pair; two empty sets are equal (1.0)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        shared = self.intersections(pairs)
        union = self.sizes(pairs[:, 0]) + self.sizes(pairs[:, 1]) - shared
        return np.where(union > 0, shared / np.maximum(union, 1), 1.0)

    def containment(self, pairs: np.ndarray) -> np.ndarray:
        """|A ∩ B| / min(|A|, |B|): how much of the smaller set lies inside the larger (1.0 for an empty one)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        smaller = np.minimum(self.sizes(pairs[:, 0]), self.sizes(pairs[:, 1]))
        return np.where(smaller > 0, self.intersections(pairs) / np.maximum(smaller, 1), 1.0)
