"""Decontamination: keep benchmark material (SWE-bench instances, BFCL questions, any text corpus) out of the splits.

A document is contaminated, with the first matching reason, when
  1. instance id: its session ran on a holdout instance (`logminer.split.holdout.instance_id_of`), or its text names one
     (ids of the SWE-bench shape `owner__repo-123` are looked up; a transcript of a task quotes its id);
  2. repository (only with `match_repo=True`): its repository is a holdout item's repository. Off by default: the
     SWE-bench test set covers the most popular Python projects, and runs on other instances of them are fair data;
  3. n-gram overlap: it shares at least `min_ngram_hits` normalised word 13-grams (GPT-3's test) with one holdout
     text (a problem statement, the lines a gold patch adds, a BFCL question, a corpus file);
  4. MinHash: its estimated Jaccard similarity with a holdout text is at least `minhash_threshold`.
Normalisation and hashing are `logminer.split.minhash`'s (64-bit n-gram hashes, so set membership has no false hits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from logminer.split.holdout import HoldoutItem
from logminer.split.lsh import cross_pairs, estimated_jaccard, optimal_bands
from logminer.split.minhash import MinHasher, shingle_block

# starts only at a token start and bounded, so a long base64 blob costs one short scan, not a quadratic one
INSTANCE_ID_PATTERN = re.compile(r"(?<![\w.-])[A-Za-z0-9][\w.-]{0,99}__[\w.-]{1,100}-\d{1,9}(?![\w-])")


@dataclass(frozen=True)
class DecontaminationOptions:
    ngram: int = 13
    min_ngram_hits: int = 1
    minhash_threshold: float = 0.7
    match_repo: bool = False
    scan_text_for_ids: bool = True


@dataclass(frozen=True)
class DocumentFacts:
    """What decontamination needs to know about one document besides its text."""

    instance_id: str | None = None
    repo: str | None = None


def _label(item: HoldoutItem) -> str:
    name = item.instance_id or item.source_file
    return f"{item.benchmark}:{name}"


class HoldoutIndex:
    """Instance ids, repositories, sorted 64-bit n-gram hashes and MinHash signatures of the holdout texts."""

    def __init__(self, items: Sequence[HoldoutItem], options: DecontaminationOptions, hasher: MinHasher):
        self.options = options
        self.hasher = hasher
        self.instance_ids = {i.instance_id: _label(i) for i in items if i.instance_id}
        self.repos = {i.repo.lower(): _label(i) for i in items if i.repo}
        texts, owners = [], []
        for item in items:
            for text in item.texts:
                texts.append(text)
                owners.append(_label(item))
        self.text_owners = owners
        grams, gram_owner = self._ngrams(texts)
        order = np.argsort(grams, kind="stable")
        self.grams, self.gram_owner = grams[order], gram_owner[order]
        self.signatures = hasher.run(texts)[0]
        self.size = len(items)

    def _ngrams(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        block = shingle_block(texts, self.options.ngram, wide=True) if texts else None
        if block is None:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(texts)), np.diff(block.offsets))
        return block.hashes, owner

    def check(
        self, texts: Sequence[str], facts: Sequence[DocumentFacts], signatures: np.ndarray | None = None
    ) -> list[str]:
        """One reason per document ("" when clean); `signatures` (this index's hasher) are reused when given."""
        reasons = [self._id_or_repo(text, fact) for text, fact in zip(texts, facts)]
        for index, reason in self._ngram_hits(texts).items():
            reasons[index] = reasons[index] or reason
        if signatures is None:
            signatures = self.hasher.run(texts)[0]
        for index, reason in self._minhash_hits(signatures).items():
            reasons[index] = reasons[index] or reason
        return reasons

    def _id_or_repo(self, text: str, fact: DocumentFacts) -> str:
        if fact.instance_id and fact.instance_id in self.instance_ids:
            return f"instance_id {fact.instance_id} ({self.instance_ids[fact.instance_id]})"
        if self.options.scan_text_for_ids and self.instance_ids and "__" in text:
            for found in sorted(set(INSTANCE_ID_PATTERN.findall(text))):
                if found in self.instance_ids:
                    return f"text names instance {found} ({self.instance_ids[found]})"
        if self.options.match_repo and fact.repo and fact.repo.lower() in self.repos:
            return f"repository {fact.repo} ({self.repos[fact.repo.lower()]})"
        return ""

    def _ngram_hits(self, texts: Sequence[str], block_docs: int = 256) -> dict[int, str]:
        if len(self.grams) == 0:
            return {}
        hits: dict[int, str] = {}
        for first in range(0, len(texts), block_docs):
            grams, owner_doc = self._ngrams(texts[first : first + block_docs])
            position = np.clip(np.searchsorted(self.grams, grams), 0, len(self.grams) - 1)
            found = self.grams[position] == grams
            if not found.any():
                continue
            # count distinct shared n-grams per (document, holdout text) pair
            doc, text = owner_doc[found], self.gram_owner[position[found]]
            pair_gram = np.unique(np.stack((doc, text, grams[found].view(np.int64)), axis=1), axis=0)
            pairs, counts = np.unique(pair_gram[:, :2], axis=0, return_counts=True)
            for (doc_index, text_index), count in zip(pairs.tolist(), counts.tolist()):
                index = first + doc_index
                if count >= self.options.min_ngram_hits and index not in hits:
                    owner = self.text_owners[text_index]
                    hits[index] = f"{count} shared {self.options.ngram}-grams with {owner}"
        return hits

    def _minhash_hits(self, signatures: np.ndarray) -> dict[int, str]:
        bands, rows = optimal_bands(self.options.minhash_threshold, self.hasher.num_perm)
        pairs = cross_pairs(signatures, self.signatures, bands, rows)
        similarity = estimated_jaccard(signatures, pairs, self.signatures)
        hits: dict[int, str] = {}
        for (doc, text), value in zip(pairs.tolist(), similarity.tolist()):
            if value >= self.options.minhash_threshold and doc not in hits:
                hits[doc] = f"MinHash similarity {value:.2f} with {self.text_owners[text]}"
        return hits
