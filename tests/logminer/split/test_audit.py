"""The split audit: a planted near-duplicate pair that straddles two splits is found with its exact Jaccard, one
inside a split is not, and a clean split reports clean."""

from __future__ import annotations

import numpy as np

from logminer.split.audit import audit_cross_split
from logminer.split.jaccard import ShingleSets
from logminer.split.minhash import MinHasher


def _texts(rng, count: int) -> list[str]:
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocabulary = ["".join(rng.choice(letters, size=6)) for _ in range(5000)]  # no digits: they all normalise to 0
    return [" ".join(rng.choice(vocabulary, size=80)) for _ in range(count)]


def test_straddling_near_duplicates_are_counted_and_named():
    rng = np.random.default_rng(0)
    texts = _texts(rng, 12)
    texts.append(texts[0].replace(texts[0].split()[40], "changed", 1))  # near copy of doc 0, put in eval below
    texts.append(texts[1] + " extra")  # near copy of doc 1, in the same split as doc 1
    splits = ["calibration"] * 6 + ["validation"] * 3 + ["eval"] * 3 + ["eval", "calibration"]
    ids = [f"d{i}" for i in range(len(texts))]
    signatures, _, _ = MinHasher(num_perm=128).run(texts)
    report = audit_cross_split(splits, range(len(texts)), signatures, ShingleSets(texts, 5), ids, threshold=0.7)
    assert report.cross_pairs_at_threshold == 1 and report.cross_pairs_near == 1 and not report.clean
    [example] = report.examples
    assert (example["first"], example["first_split"], example["second"], example["second_split"]) == (
        "d0", "calibration", "d12", "eval")
    words = texts[0].split()
    grams = {tuple(words[i:i + 5]) for i in range(len(words) - 4)}
    near = texts[12].split()
    near_grams = {tuple(near[i:i + 5]) for i in range(len(near) - 4)}
    assert example["jaccard"] == round(len(grams & near_grams) / len(grams | near_grams), 4)
    assert report.query_threshold == 0.6


def test_unrelated_splits_are_clean():
    rng = np.random.default_rng(1)
    texts = _texts(rng, 30)
    signatures, _, _ = MinHasher(num_perm=64).run(texts)
    report = audit_cross_split(["calibration"] * 10 + ["validation"] * 10 + ["eval"] * 10, range(30), signatures,
                               ShingleSets(texts, 5), [str(i) for i in range(30)], threshold=0.7)
    assert report.clean and report.cross_pairs_near == 0 and report.examples == []
