"""Dedup: datasketch-equal signatures, recall on planted near-duplicates, prefix conversations, representatives."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from logminer.schema import Session, ToolCall, Turn
from logminer.split.dedup import (
    EXACT,
    NEAR,
    PREFIX,
    DedupOptions,
    deduplicate,
    prefix_pairs,
    turn_keys,
)
from logminer.split.lsh import candidate_pairs
from logminer.split.minhash import (
    normalize,
    normalized_words,
    permutations,
    shingle_block,
    shingle_hash32,
    signatures_from_hashes,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from dedup_throughput import planted_corpus, recall  # noqa: E402

TEXTS = [
    "Hello World, this is a TEST of 12 numbers and café ünïcode words! foo_bar baz qux",
    "short text",
    "",
    "def parse(line):\n    return line.split(',')[3]  # fourth column, 2024-01-05",
    "Ωmega straße naïve résumé — “quoted” text with ４２ full-width digits and more words here",
]


def reference_shingles(text: str, ngram: int = 5) -> list[tuple[str, ...]]:
    words = normalized_words(text)
    if not words:
        return []
    if len(words) < ngram:
        return [tuple(words)]
    return [tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


def test_normalisation_by_hand() -> None:
    assert normalize("Café, NAÏVE résumé!") == "cafe naive resume"
    assert normalize("x_1 = 2024-01-05T10:11") == "x 0 0000 00 00t00 00"
    assert normalize("  Tabs\tand\nnew-lines  ") == "tabs and new lines"
    assert normalize("") == ""


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("seed", [1, 42])
def test_signatures_equal_datasketch(scheme: str, seed: int) -> None:
    block = shingle_block(TEXTS)
    a, b = permutations(64, seed, scheme)
    ours = signatures_from_hashes(block.hashes, block.offsets, a, b, scheme)
    for index, text in enumerate(TEXTS):
        reference = MinHash(num_perm=64, seed=seed, hashfunc=shingle_hash32, scheme=scheme)
        reference.update_batch(reference_shingles(text))
        assert np.array_equal(ours[index].astype(np.uint64), reference.hashvalues.astype(np.uint64))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), min_size=1, max_size=5))
def test_vectorised_shingles_equal_python_reference(texts: list[str]) -> None:
    block = shingle_block(texts)
    for index, text in enumerate(texts):
        ours = sorted(block.hashes[block.offsets[index] : block.offsets[index + 1]].tolist())
        assert ours == sorted(shingle_hash32(s) for s in reference_shingles(text))


def test_candidates_equal_datasketch_lsh() -> None:
    corpus = planted_corpus(docs=300, near=40, exact=10, seed=3)
    block = shingle_block(corpus.texts)
    a, b = permutations(120, 1)
    signatures = signatures_from_hashes(block.hashes, block.offsets, a, b)
    lsh = MinHashLSH(num_perm=120, params=(20, 6))
    sketches = [MinHash(num_perm=120, hashvalues=s, scheme="affine32") for s in signatures]
    for index, sketch in enumerate(sketches):
        lsh.insert(index, sketch)
    expected = {(min(i, j), max(i, j)) for i, s in enumerate(sketches) for j in lsh.query(s) if i != j}
    assert {tuple(p) for p in candidate_pairs(signatures, 20, 6).tolist()} == expected
    assert len(expected) >= 40


def test_planted_near_duplicates_recall_and_precision() -> None:
    corpus = planted_corpus(docs=3000, near=300, exact=60, seed=1)
    result = deduplicate(corpus.texts, DedupOptions(threshold=0.7))
    share, due, unrelated = recall(corpus, result.representative, 0.7)
    assert due > 250
    assert share >= 0.98
    assert unrelated == 0
    assert result.reason.count(EXACT) == 60
    assert result.kept.sum() == 3000 - 60 - result.reason.count(NEAR)


def test_representative_is_longest_then_lowest_index() -> None:
    base = " ".join(f"word{i % 97} token{i % 13}" for i in range(200))
    texts = [base, base + " tail words appended here", base.upper(), "unrelated text " * 30, base + " tail"]
    result = deduplicate(texts)
    assert result.representative.tolist() == [1, 1, 1, 3, 1]
    # doc 2 is an exact copy of doc 0 after normalisation, but its representative (doc 1) is only near
    assert result.reason == [NEAR, "", NEAR, "", NEAR]
    assert deduplicate(texts[::-1]).kept.sum() == 2


def session(name: str, turns: list[Turn]) -> Session:
    return Session(session_id=name, agent="test", source_file=f"{name}.json", turns=turns)


def test_prefix_conversations() -> None:
    call = ToolCall(name="terminal", arguments='{"command": "ls"}', id="call_1")
    turns = [
        Turn("system", "You are a helpful agent."),
        Turn("user", "List the files."),
        Turn("assistant", "Listing.", tool_calls=[call]),
        Turn("tool", "a.py b.py", tool_call_id="call_1"),
        Turn("assistant", "Two files."),
    ]
    renumbered = [Turn(**{**t.__dict__, "tool_calls": [ToolCall("terminal", '{"command": "ls"}', id="X")]})
                  if t.tool_calls else t for t in turns]
    sessions = [session("a", turns[:3]), session("b", renumbered), session("c", turns[:4]), session("d", turns[1:])]
    keys = [turn_keys(s) for s in sessions]
    assert sorted(prefix_pairs(keys)) == [(0, 1), (2, 1)]
    texts = [" ".join(t.text for t in s.turns) for s in sessions]
    result = deduplicate(texts, turns=keys)
    assert result.representative[0] == result.representative[2] == 1
    assert result.reason[0] == PREFIX and result.reason[2] == PREFIX


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="bands"):
        DedupOptions(bands=20)
    with pytest.raises(ValueError, match="exceeds"):
        DedupOptions(bands=30, rows=5)
    bands, rows = DedupOptions().banding()  # recall 0.98 at threshold − 0.1 = 0.6, fewest false positives
    assert (bands, rows) == (29, 4) and bands * rows <= 120
    assert 1 - (1 - 0.6**rows) ** bands >= 0.98 > 1 - (1 - 0.6**rows) ** (bands - 1)
    assert 1 - (1 - 0.7**rows) ** bands >= 0.999
    assert DedupOptions(bands=20, rows=6).banding() == (20, 6)


def test_word_sequence_keys_follow_normalisation() -> None:
    from logminer.split.minhash import word_sequence_keys

    texts = ["Hello, World 42!", "hello world 17", "world hello 00", "", "  ", "Café au lait", "cafe AU LAIT."]
    for block_chars in (1 << 20, 8):  # one block, and one block per text
        keys = word_sequence_keys(texts, block_chars=block_chars).tolist()
        for i, a in enumerate(texts):
            for j, b in enumerate(texts):
                assert (keys[i] == keys[j]) == (normalize(a) == normalize(b)), (a, b)
