"""MinHash building blocks against independent computations: the finalisers against their integer definition,
datasketch's permutation draws, blocked and threaded signatures against one block, exact keys and shingle counts
against normalised words."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from logminer.split.minhash import (
    MASK64,
    MinHasher,
    fmix32,
    fmix64,
    normalize,
    normalized_words,
    permutations,
    shingle_block,
    shingle_hash32,
)


def fmix64_reference(value: int) -> int:
    """MurmurHash3 fmix64, from its definition with Python integers."""
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        value ^= value >> 33
        value = (value * multiplier) & MASK64
    return value ^ (value >> 33)


def fmix32_reference(value: int) -> int:
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & 0xFFFFFFFF
    return value ^ (value >> 16)


def test_finalisers_equal_their_integer_definition():
    rng = np.random.default_rng(0)
    values64 = rng.integers(0, 2**63, 200, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert fmix64(values64).tolist() == [fmix64_reference(int(v)) for v in values64]
    values32 = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    assert fmix32(values32).tolist() == [fmix32_reference(int(v)) for v in values32]
    untouched = values64.copy()
    fmix64(values64)
    assert np.array_equal(values64, untouched)  # the input array is never modified


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_permutations_are_datasketchs(scheme):
    a, b = permutations(32, 7, scheme)
    reference = MinHash(num_perm=32, seed=7, scheme=scheme).permutations
    assert np.array_equal(a, np.asarray(reference[0]).astype(a.dtype))
    assert np.array_equal(b, np.asarray(reference[1]).astype(b.dtype))
    with pytest.raises(ValueError, match="unknown MinHash scheme 'md5'"):
        permutations(4, 1, "md5")


def test_normalisation_rules():
    assert normalize("Build 2024-06-01: FAILED (exit 137)") == "build 0000 00 00 failed exit 000"
    assert normalized_words("naïve_café ÉTÉ") == ["naive", "cafe", "ete"]
    assert normalize("   \t\n") == ""


def test_shingle_counts_and_exact_keys_follow_the_words():
    texts = ["one two three four five six seven", "one two", "", "ONE two, three: four five six seven!"]
    block = shingle_block(texts)
    assert np.diff(block.offsets).tolist() == [3, 1, 0, 3]  # 7 words → 3 five-grams; short text → one shingle
    assert block.exact_keys[0] == block.exact_keys[3] and block.exact_keys[0] != block.exact_keys[1]
    first = sorted(block.hashes[block.offsets[0]:block.offsets[1]].tolist())
    words = normalized_words(texts[0])
    assert first == sorted(shingle_hash32(words[i:i + 5]) for i in range(3))
    assert shingle_hash32("one two three four five") == shingle_hash32(("one", "two", "three", "four", "five"))


def test_blocks_and_threads_do_not_change_signatures():
    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(vocabulary, size=int(rng.integers(1, 60)))) for _ in range(70)]
    whole = MinHasher(num_perm=32, block_docs=1000, threads=1).block(texts)
    split = MinHasher(num_perm=32, block_docs=9, block_chars=400, threads=3).run(texts)
    for ours, reference in zip(split, whole):
        assert np.array_equal(ours, reference)
    empty = MinHasher(num_perm=16).run([])
    assert empty[0].shape == (0, 16) and len(empty[1]) == len(empty[2]) == 0
