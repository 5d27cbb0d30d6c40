"""Vectorised text normalisation, word n-gram shingles, MinHash signatures and LSH banding in numpy.

Normalisation (one definition, used by dedup, decontamination and the split audit):
  1. non-ASCII text is NFKD-decomposed and its combining diacritical marks dropped (accents: "café" → "cafe");
  2. lowercase (ASCII A–Z in the vectorised path; `str.lower` first for non-ASCII text);
  3. every digit becomes "0" (numbers, line numbers, timestamps and ids of the same shape compare equal);
  4. everything that is not a letter or digit (punctuation, underscore, whitespace) separates words.
`normalize(text)` returns the words joined by single spaces.

Shingles are word n-grams (5 by default). A word hashes to `fmix64(sum(byte_j * P**j) mod 2**64)` and an n-gram to the
upper 32 bits of `fmix64(sum(word_hash_k * M_k) mod 2**64)`; `shingle_hash32` computes the same value for one n-gram
in plain Python, so it can be handed to `datasketch.MinHash(hashfunc=...)` as a reference. This is written by hand
because no maintained library hashes words once and combines them into n-grams without a Python call per shingle
(datasketch and rensa both need one Python object per shingle, see ANCHORS.md: ~10k docs/s at best).

Signatures reproduce datasketch 2.0's permutation schemes bit for bit (read from datasketch/minhash.py):
  affine32 (datasketch's default): h ← fmix32(h); phv_k = a_k * h + b_k mod 2**32;
  legacy: phv_k = ((a_k * h + b_k) mod (2**61 − 1)) & (2**32 − 1);
with (a, b) drawn from `numpy.random.RandomState(seed)` exactly as `MinHash._init_permutations` draws them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MASK64 = (1 << 64) - 1
WORD_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
WORD_BASE_INV = pow(WORD_BASE, -1, 1 << 64)
# odd 64-bit multipliers that weight each word's position inside an n-gram (SplitMix64 / golden-ratio constants)
POSITION_MULTIPLIERS = (
    0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xA0761D6478BD642F,
    0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F, 0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63,
)
MAX_NGRAM = len(POSITION_MULTIPLIERS)
MERSENNE_PRIME = (1 << 61) - 1
SCHEMES = ("affine32", "legacy")
# ASCII is handled by BYTE_TABLE; these only touch non-ASCII characters, which are rare, so the scans are fast
_FOLD_NON_WORD = re.compile(r"[^\x00-\x7f\w]+")
_FOLD_DIGIT = re.compile(r"(?=[^\x00-\x7f])\d")
# the Unicode "combining diacritical marks" blocks: the accents NFKD splits off (other combining marks, such as
# Indic vowel signs, are letters' parts and stay)
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _byte_table() -> np.ndarray:
    """Byte → normalised byte (0 = separator): ASCII letters lowercased, digits → '0', UTF-8 bytes kept."""
    table = np.zeros(256, dtype=np.uint8)
    table[ord("a") : ord("z") + 1] = np.arange(ord("a"), ord("z") + 1)
    table[ord("A") : ord("Z") + 1] = np.arange(ord("a"), ord("z") + 1)
    table[ord("0") : ord("9") + 1] = ord("0")
    table[0x80:] = np.arange(0x80, 0x100)
    return table


BYTE_TABLE = _byte_table()


def fold_unicode(text: str) -> str:
    """Steps 1–4 for the non-ASCII characters of a text (accents stripped, lowercase, digits → 0, non-word → space);
    its ASCII characters are left to BYTE_TABLE."""
    text = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", text)).lower()
    return _FOLD_DIGIT.sub("0", _FOLD_NON_WORD.sub(" ", text))


def normalize(text: str) -> str:
    """The normalised text: words of `text` (see the module docstring) joined by single spaces."""
    return " ".join(normalized_words(text))


def normalized_words(text: str) -> list[str]:
    folded = text if text.isascii() else fold_unicode(text)
    raw = np.frombuffer(folded.encode("utf-8"), dtype=np.uint8)
    return bytes(BYTE_TABLE[raw]).replace(b"\0", b" ").decode("utf-8").split()


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that spreads every input bit over the output), on uint64."""
    values = values ^ (values >> np.uint64(33))  # a new array: the input is never modified
    shift = np.uint64(33)
    values *= np.uint64(0xFF51AFD7ED558CCD)
    values ^= values >> shift
    values *= np.uint64(0xC4CEB9FE1A85EC53)
    values ^= values >> shift
    return values


def fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser on uint32, as datasketch's affine32 scheme pre-mixes every hash."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def _fmix64_int(value: int) -> int:
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & MASK64
    return value ^ (value >> 33)


def word_hash(word: str) -> int:
    """64-bit hash of one normalised word, equal to what the vectorised path computes."""
    total = 0
    power = 1
    for byte in word.encode("utf-8"):
        total = (total + byte * power) & MASK64
        power = (power * WORD_BASE) & MASK64
    return _fmix64_int(total)


def shingle_hash32(shingle: Sequence[str] | str) -> int:
    """32-bit hash of one n-gram of normalised words (a tuple, or the words joined by spaces)."""
    words = shingle.split() if isinstance(shingle, str) else shingle
    total = 0
    for position, word in enumerate(words):
        total = (total + word_hash(word) * POSITION_MULTIPLIERS[position]) & MASK64
    return _fmix64_int(total) >> 32


def permutations(num_perm: int, seed: int, scheme: str = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) permutation parameters datasketch.MinHash(num_perm, seed, scheme=scheme) draws."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = [
            (gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
            for _ in range(num_perm)
        ]
        params = np.array(pairs, dtype=np.uint64).T
        return params[0].copy(), params[1].copy()
    if scheme != "affine32":
        raise ValueError(f"unknown MinHash scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@dataclass(frozen=True)
class ShingledBlock:
    """Shingle hashes of a block of documents: doc i owns hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray  # uint32 (uint64 when wide)
    offsets: np.ndarray  # int64, len = docs + 1
    exact_keys: np.ndarray  # uint64 per doc: hash of the normalised word sequence


def _powers(base: int, length: int) -> np.ndarray:
    """base**0 .. base**(length-1) modulo 2**64, from a cached table sized to the next power of two."""
    return _power_table(base, 1 << max(length - 1, 1).bit_length())[:length]


@lru_cache(maxsize=4)
def _power_table(base: int, size: int) -> np.ndarray:
    powers = np.full(size, base, dtype=np.uint64)
    powers[0] = 1
    table = np.cumprod(powers, dtype=np.uint64)
    table.flags.writeable = False
    return table


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(64-bit hash of every normalised word, its document, words per document), from one prefix sum over the
    bytes of all texts: each word's polynomial hash is a difference of two prefix sums, rescaled."""
    encoded = [(t if t.isascii() else fold_unicode(t)).encode("utf-8") for t in texts]
    data = np.frombuffer(b"\n".join(encoded) + b"\n", dtype=np.uint8)
    doc_starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum([len(e) + 1 for e in encoded[:-1]], out=doc_starts[1:])
    mapped = BYTE_TABLE[data]
    in_word = np.zeros(len(mapped) + 2, dtype=np.int8)
    np.not_equal(mapped, 0, out=in_word[1:-1].view(np.bool_))
    edges = np.flatnonzero(np.diff(in_word))  # alternately a word's first byte and the byte after its last
    starts, ends = edges[0::2], edges[1::2]
    prefix = np.zeros(len(mapped) + 1, dtype=np.uint64)
    np.multiply(mapped, _powers(WORD_BASE, len(mapped)), out=prefix[1:], dtype=np.uint64)
    np.cumsum(prefix[1:], out=prefix[1:])
    words = fmix64((prefix[ends] - prefix[starts]) * _powers(WORD_BASE_INV, len(mapped))[starts])
    word_doc = np.searchsorted(doc_starts, starts, side="right") - 1
    words_per_doc = np.bincount(word_doc, minlength=len(texts))
    return words, word_doc, words_per_doc


def word_sequence_keys(texts: Sequence[str], block_chars: int = 1 << 20) -> np.ndarray:
    """One 64-bit key per text from its normalised word sequence: equal keys ⇔ equal normalised texts."""
    keys, first, size = [], 0, 0
    for index, text in enumerate(list(texts) + [None]):
        if text is None or (index > first and size + len(text) > block_chars):
            words, _, words_per_doc = _word_hashes(texts[first:index])
            keys.append(_exact_keys(words, words_per_doc))
            first, size = index, 0
        size += len(text or "")
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)


def shingle_block(texts: Sequence[str], ngram: int = 5, *, wide: bool = False) -> ShingledBlock:
    """Word n-gram hashes of every text, words hashed once from a prefix sum over the bytes (no per-word Python).

    32-bit hashes (the MinHash input, `shingle_hash32`) by default; `wide=True` keeps all 64 bits, for exact
    n-gram set membership where 32 bits would give false hits (decontamination).
    """
    if not 1 <= ngram <= MAX_NGRAM:
        raise ValueError(f"ngram must be between 1 and {MAX_NGRAM}, got {ngram}")
    words, word_doc, words_per_doc = _word_hashes(texts)
    combined = np.zeros(max(len(words) - ngram + 1, 0), dtype=np.uint64)
    term = np.empty_like(combined)
    for position in range(ngram):
        np.multiply(words[position : position + len(combined)], np.uint64(POSITION_MULTIPLIERS[position]), out=term)
        combined += term
    valid = word_doc[: len(combined)] == word_doc[ngram - 1 : ngram - 1 + len(combined)]
    shingles = combined[valid]
    shingle_doc = word_doc[: len(combined)][valid]
    short_docs = np.flatnonzero((words_per_doc > 0) & (words_per_doc < ngram))
    if len(short_docs):  # a text shorter than one n-gram is one shingle of all its words
        word_offsets = np.concatenate(([0], np.cumsum(words_per_doc)))
        extra = [_short_shingle(words[word_offsets[d] : word_offsets[d + 1]]) for d in short_docs]
        shingles = np.concatenate((shingles, np.array(extra, dtype=np.uint64)))
        shingle_doc = np.concatenate((shingle_doc, short_docs))
        order = np.argsort(shingle_doc, kind="stable")
        shingles, shingle_doc = shingles[order], shingle_doc[order]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(shingle_doc, minlength=len(texts)), out=offsets[1:])
    mixed = fmix64(shingles)
    hashes = mixed if wide else (mixed >> np.uint64(32)).astype(np.uint32)
    return ShingledBlock(hashes, offsets, _exact_keys(words, words_per_doc))


def _short_shingle(words: np.ndarray) -> np.uint64:
    weights = np.array(POSITION_MULTIPLIERS[: len(words)], dtype=np.uint64)
    return np.sum(words * weights, dtype=np.uint64)


def _exact_keys(words: np.ndarray, words_per_doc: np.ndarray) -> np.ndarray:
    """One 64-bit key per document from its whole normalised word sequence (position-weighted, then mixed)."""
    doc_of_word = np.repeat(np.arange(len(words_per_doc)), words_per_doc)
    first = np.concatenate(([0], np.cumsum(words_per_doc)[:-1]))
    rank = np.arange(len(words), dtype=np.uint64) - first[doc_of_word].astype(np.uint64)
    weighted = fmix64(words + rank * np.uint64(POSITION_MULTIPLIERS[0]))
    sums = np.zeros(len(words_per_doc), dtype=np.uint64)
    np.add.at(sums, doc_of_word, weighted)
    return fmix64(sums ^ (words_per_doc.astype(np.uint64) * np.uint64(POSITION_MULTIPLIERS[1])))


def signatures_from_hashes(
    hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str = "affine32",
    chunk: int = 8192,
) -> np.ndarray:
    """MinHash signatures (docs × num_perm) of documents given as 32-bit shingle hashes; empty docs stay at max."""
    docs = len(offsets) - 1
    dtype = np.uint32 if scheme == "affine32" else np.uint64
    out = np.full((docs, len(a)), np.iinfo(np.uint32).max, dtype=dtype)
    premixed = fmix32(hashes.astype(np.uint32)) if scheme == "affine32" else hashes.astype(np.uint64)
    a_col, b_col = a[:, None], b[:, None]
    for first, last in _doc_chunks(offsets, chunk):
        lo, hi = offsets[first], offsets[last]
        if hi == lo:
            continue
        values = premixed[lo:hi]
        if scheme == "affine32":
            permuted = a_col * values[None, :]
            permuted += b_col
        else:
            permuted = (a_col * values[None, :] + b_col) % np.uint64(MERSENNE_PRIME)
            permuted &= np.uint64(0xFFFFFFFF)
        local = offsets[first:last] - lo
        nonempty = offsets[first + 1 : last + 1] > offsets[first:last]
        mins = np.minimum.reduceat(permuted, local[nonempty], axis=1)
        out[first:last][nonempty] = mins.T
    return out


def _doc_chunks(offsets: np.ndarray, chunk: int) -> Iterator[tuple[int, int]]:
    """Runs of whole documents holding about `chunk` shingles each (one long document is one run)."""
    docs = len(offsets) - 1
    first = 0
    while first < docs:
        last = int(np.searchsorted(offsets, offsets[first] + chunk, side="right")) - 1
        last = min(max(last, first + 1), docs)
        yield first, last
        first = last


@dataclass(frozen=True)
class MinHasher:
    """Signatures for many texts: blocks of documents shingled and permuted in numpy, on `threads` threads."""

    num_perm: int = 120
    seed: int = 1
    ngram: int = 5
    scheme: str = "affine32"
    block_docs: int = 512
    block_chars: int = 1 << 20
    threads: int = 2

    def _blocks(self, texts: Sequence[str]) -> Iterator[Sequence[str]]:
        """Consecutive runs of at most block_docs texts and about block_chars characters (a longer text alone),
        which bounds the byte-position tables and temporary arrays of one block."""
        first, size = 0, 0
        for index, text in enumerate(texts):
            if index > first and (index - first >= self.block_docs or size + len(text) > self.block_chars):
                yield texts[first:index]
                first, size = index, 0
            size += len(text)
        if first < len(texts):
            yield texts[first:]

    def params(self) -> tuple[np.ndarray, np.ndarray]:
        return permutations(self.num_perm, self.seed, self.scheme)

    def block(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signatures, exact keys, shingle counts) of one block of texts."""
        a, b = self.params()
        shingled = shingle_block(texts, self.ngram)
        signatures = signatures_from_hashes(shingled.hashes, shingled.offsets, a, b, self.scheme)
        return signatures, shingled.exact_keys, np.diff(shingled.offsets)

    def run(self, texts: Sequence[str], progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signatures docs × num_perm, exact keys, shingle counts) for all texts, in input order."""
        blocks = list(self._blocks(texts))
        if not blocks:
            dtype = np.uint32 if self.scheme == "affine32" else np.uint64
            return np.zeros((0, self.num_perm), dtype=dtype), np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
            results = []
            for block_result, block in zip(pool.map(self.block, blocks), blocks):
                results.append(block_result)
                if progress is not None:
                    progress.update(len(block))
        return tuple(np.concatenate([r[part] for r in results]) for part in range(3))  # type: ignore[return-value]
