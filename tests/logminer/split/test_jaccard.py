"""Exact Jaccard: equals Python set arithmetic on word tuples; dedup and the audit decide by it, so planted families
whose members are truly ≥ the threshold never straddle two splits, and the audit counts exactly the true pairs."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from logminer.split.assign import SplitOptions, assign_splits
from logminer.split.audit import audit_cross_split
from logminer.split.dedup import DedupOptions, deduplicate
from logminer.split.jaccard import ShingleSets

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from dedup_throughput import shingle_set, true_jaccard  # noqa: E402  (word tuples, no hashing)

THRESHOLD = 0.7


def families(seed: int, count: int = 120, members: int = 4, words: int = 300) -> tuple[list[str], list[int]]:
    """`count` families: an original and members-1 copies with 6–16 word edits each (true 5-gram Jaccard around
    0.6–0.85, i.e. on both sides of the threshold), plus as many unrelated documents."""
    rng = random.Random(seed)
    vocabulary = sorted({"".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(5000)})
    texts, family = [], []
    for number in range(count):
        base = rng.choices(vocabulary, k=words)
        texts.append(" ".join(base))
        family.append(number)
        for _ in range(members - 1):
            copy = list(base)
            for _ in range(rng.randint(6, 16)):
                position = rng.randrange(len(copy))
                if rng.random() < 0.5:
                    copy[position] = rng.choice(vocabulary)
                else:
                    copy.insert(position, rng.choice(vocabulary))
            texts.append(" ".join(copy))
            family.append(number)
    for number in range(count):
        texts.append(" ".join(rng.choices(vocabulary, k=words)))
        family.append(count + number)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [family[i] for i in order]


def true_pairs(texts: list[str], family: list[int]) -> list[tuple[int, int, float]]:
    """Every same-family pair with its true Jaccard (different families share no n-gram by construction)."""
    members: dict[int, list[int]] = {}
    for index, name in enumerate(family):
        members.setdefault(name, []).append(index)
    sets = [shingle_set(text) for text in texts]
    return [(a, b, len(sets[a] & sets[b]) / len(sets[a] | sets[b]))
            for group in members.values() for a, b in itertools.combinations(group, 2)]


def test_exact_jaccard_and_containment_equal_set_arithmetic() -> None:
    rng = random.Random(3)
    words = ["alpha", "Beta", "gamma,", "delta.", "42", "café"]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 40))) for _ in range(60)] + ["", "one two"]
    pairs = np.array([(a, b) for a in range(len(texts)) for b in range(a + 1, len(texts))])
    sets = ShingleSets(texts, 5)
    expected = [true_jaccard(texts[a], texts[b]) for a, b in pairs.tolist()]
    assert np.allclose(sets.jaccard(pairs), expected)
    contained = []
    for a, b in pairs.tolist():
        first, second = shingle_set(texts[a]), shingle_set(texts[b])
        smaller = min(len(first), len(second))
        contained.append(len(first & second) / smaller if smaller else 1.0)
    assert np.allclose(sets.containment(pairs), contained)
    assert np.array_equal(sets.sizes(np.arange(len(texts))), [len(shingle_set(t)) for t in texts])


def test_batches_of_many_pairs_give_the_same_counts(monkeypatch) -> None:
    import logminer.split.jaccard as jaccard

    texts, _ = families(seed=1, count=10)
    pairs = np.array(list(itertools.combinations(range(len(texts)), 2)))
    whole = ShingleSets(texts, 5).intersections(pairs)
    monkeypatch.setattr(jaccard, "BATCH_VALUES", 1000)  # a few pairs per batch
    assert np.array_equal(ShingleSets(texts, 5).intersections(pairs), whole)


def test_planted_families_never_straddle_splits_over_many_seeds() -> None:
    due = merged = straddling = 0
    for seed in range(12):
        texts, family = families(seed)
        result = deduplicate(texts, DedupOptions(threshold=THRESHOLD))
        representative = result.representative
        truth = true_pairs(texts, family)
        at_threshold = [(a, b) for a, b, j in truth if j >= THRESHOLD]
        due += len(at_threshold)
        merged += sum(representative[a] == representative[b] for a, b in at_threshold)
        kept = np.flatnonzero(result.kept)
        splits = assign_splits([f"c{i}" for i in kept], [1] * len(kept), SplitOptions(ratios=(0.6, 0.2, 0.2),
                                                                                        seed=seed))
        split_of = dict(zip(kept.tolist(), splits))
        straddling += sum(1 for a, b in at_threshold if a in split_of and b in split_of and split_of[a] != split_of[b])
        audit = audit_cross_split(splits, kept, result.signatures, result.shingles, [str(i) for i in kept],
                                  THRESHOLD)
        assert audit.cross_pairs_at_threshold == 0
        unrelated = sum(family[i] != family[int(r)] for i, r in enumerate(representative))
        assert unrelated == 0
    assert due > 2000 and straddling == 0
    assert merged / due >= 0.999, (merged, due)


@pytest.mark.parametrize("seed", [0, 1])
def test_audit_counts_exactly_the_true_cross_split_pairs(seed: int) -> None:
    """With dedup blinded (one band of all rows), every family straddles; the audit must count, by exact Jaccard,
    exactly the same-family pairs in different splits that are truly at or above the threshold."""
    texts, family = families(seed, count=40)
    result = deduplicate(texts, DedupOptions(threshold=THRESHOLD, bands=1, rows=120))
    positions = np.arange(len(texts))
    splits = assign_splits([f"d{i}" for i in positions], [1] * len(texts), SplitOptions(ratios=(0.4, 0.3, 0.3)))
    audit = audit_cross_split(splits, positions, result.signatures, result.shingles, [str(i) for i in positions],
                              THRESHOLD)
    truth = [(a, b, j) for a, b, j in true_pairs(texts, family) if splits[a] != splits[b]]
    assert audit.cross_pairs_at_threshold == sum(j >= THRESHOLD for _, _, j in truth) > 0
    assert audit.cross_pairs_near == sum(j >= audit.query_threshold for _, _, j in truth)
    exact = {frozenset((str(a), str(b))): round(j, 4) for a, b, j in truth}
    for example in audit.examples:
        assert exact[frozenset((example["first"], example["second"]))] == example["jaccard"]
