"""Exact, prefix and near-duplicate clusters over rendered sessions, one deterministic representative per cluster.

- exact: equal normalised word sequences (see `logminer.split.minhash` for the normalisation);
- prefix: a session whose turns are the first turns of a longer session (an earlier call of the same conversation,
  e.g. consecutive LiteLLM completion logs) — turns compared by role, normalised text and tool calls, not by ids;
- near: MinHash (word 5-grams, datasketch-compatible signatures) + LSH banding chosen for a recall of RECALL at
  threshold − candidate_slack, every candidate pair verified by the EXACT Jaccard of its two n-gram sets
  (logminer.split.jaccard) — candidates whose estimate is below threshold − PREFILTER_SLACK (5 σ of the 120-
  permutation estimate) are dropped first, so only plausible pairs are counted exactly;
- contained: two runs of the same task (first user turns of at least MIN_TASK_WORDS words with exact Jaccard
  ≥ task_threshold, 0.9 — e.g. two replays of one SWE-bench issue with different tool bundles) whose smaller
  document lies mostly inside the larger one:
  exact containment |A ∩ B| / min(|A|, |B|) at least the threshold. Jaccard alone misses these
  (one run's longer system prompt halves it), and banding cannot find low-Jaccard pairs, hence the task key.
Clusters are the connected components of all four kinds of edges (union-find). The representative of a cluster
is its longest document (characters), then the lowest index — callers pass documents in a canonical order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import xxhash

from logminer.schema import Session
from logminer.split.jaccard import ShingleSets
from logminer.split.lsh import candidate_pairs, estimated_jaccard, recall_bands
from logminer.split.minhash import MinHasher, normalize, word_sequence_keys

KEPT = ""
EXACT = "exact_duplicate"
PREFIX = "prefix_duplicate"
NEAR = "near_duplicate"
CONTAINED = "contained_duplicate"
MIN_TASK_WORDS = 20


RECALL = 0.98  # candidate probability of a pair at threshold − candidate_slack (≥ 0.9996 at the threshold)
PREFILTER_SLACK = 0.2


@dataclass(frozen=True)
class DedupOptions:
    """How near is a duplicate: exact word n-gram Jaccard ≥ threshold. Bands are chosen so that pairs at
    threshold − candidate_slack are still candidates with probability RECALL."""

    threshold: float = 0.7
    num_perm: int = 120
    bands: int = 0  # 0: derived from threshold, candidate_slack and num_perm (lsh.recall_bands)
    rows: int = 0
    ngram: int = 5
    seed: int = 1
    scheme: str = "affine32"
    candidate_slack: float = 0.1
    task_threshold: float = 0.9  # first user turns this similar are the same task (agent templates share the rest)
    threads: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2:
            raise ValueError(f"num_perm must be at least 2, got {self.num_perm}")
        if (self.bands == 0) != (self.rows == 0):
            raise ValueError("give both bands and rows, or neither")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands × rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")

    @property
    def candidate_threshold(self) -> float:
        return round(max(self.threshold - self.candidate_slack, 0.01), 6)

    def banding(self) -> tuple[int, int]:
        if self.bands:
            return self.bands, self.rows
        return recall_bands(self.candidate_threshold, self.num_perm, RECALL)

    def hasher(self) -> MinHasher:
        return MinHasher(num_perm=self.num_perm, seed=self.seed, ngram=self.ngram, scheme=self.scheme,
                         threads=self.threads)


@dataclass
class DedupResult:
    """Per document: its cluster's representative, why it was dropped ("" when kept) and its similarity to it."""

    representative: np.ndarray  # int64 index of the representative (itself when kept)
    reason: list[str]
    similarity: np.ndarray  # exact n-gram Jaccard with the representative (1.0 for itself and exact copies)
    signatures: np.ndarray = field(repr=False)
    exact_keys: np.ndarray = field(repr=False)
    shingles: ShingleSets = field(repr=False)  # the documents' n-gram sets, for the audit's exact Jaccard
    near_pairs: int = 0  # verified near-duplicate edges
    candidates: int = 0  # LSH candidate pairs before verification

    @property
    def kept(self) -> np.ndarray:
        return self.representative == np.arange(len(self.representative))


class UnionFind:
    """Disjoint sets over 0..n-1 (written by hand: a few lines, and numpy/polars have no incremental union-find)."""

    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def turn_keys(session: Session, include_reasoning: bool = False) -> tuple[tuple[int, int], ...]:
    """Per turn, (strict key, loose key); see turn_keys_batch."""
    return turn_keys_batch([session], include_reasoning)[0]


def turn_keys_batch(sessions: Sequence[Session], include_reasoning: bool = False) -> list[tuple[tuple[int, int], ...]]:
    """Per session, per turn, (strict key, loose key): the loose key covers role and normalised text (and reasoning
    when asked), the strict key also the tool calls' names and normalised arguments (ids left out: replays renumber
    them). Texts of all turns are normalised and hashed in one vectorised pass."""
    texts, calls = [], []
    for session in sessions:
        for turn in session.turns:
            texts.append(f"{turn.text}\n{turn.reasoning}" if include_reasoning and turn.reasoning else turn.text)
            calls.append("\n".join(f"{call.name} ( {call.arguments} )" for call in turn.tool_calls))
    text_keys = word_sequence_keys(texts).tolist()
    call_keys = word_sequence_keys(calls).tolist()
    result, position = [], 0
    for session in sessions:
        keys = []
        for turn in session.turns:
            loose = xxhash.xxh64_intdigest(f"{turn.role}\x1f{text_keys[position]}".encode())
            strict = xxhash.xxh64_intdigest(f"{loose}\x1f{call_keys[position]}".encode())
            keys.append((strict, loose))
            position += 1
        result.append(tuple(keys))
    return result


def task_text(session: Session) -> str:
    """The session's task: its first user turn, or "" when that has fewer than MIN_TASK_WORDS words."""
    first_user = next((turn.text for turn in session.turns if turn.role == "user"), "")
    return first_user if len(normalize(first_user).split()) >= MIN_TASK_WORDS else ""


def verified_pairs(signatures: np.ndarray, shingles: ShingleSets, pairs: np.ndarray,
                   threshold: float) -> np.ndarray:
    """The candidate pairs whose exact Jaccard is at least `threshold` (estimates more than PREFILTER_SLACK below
    it are not counted: 5 σ of the 120-permutation estimate)."""
    plausible = pairs[estimated_jaccard(signatures, pairs) >= threshold - PREFILTER_SLACK]
    return plausible[shingles.jaccard(plausible) >= threshold]


def task_pairs(tasks: Sequence[str], options: DedupOptions) -> np.ndarray:
    """Pairs (i < j) of documents whose task texts have exact Jaccard ≥ options.task_threshold. Agent prompt
    templates make first user turns of *different* tasks 0.6–0.8 similar, so this threshold is well above the
    near-duplicate one."""
    present = np.array([i for i, task in enumerate(tasks) if task], dtype=np.int64)
    if len(present) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    task_texts = [tasks[i] for i in present]
    signatures = options.hasher().run(task_texts)[0]
    local = candidate_pairs(signatures, *options.banding())
    return present[verified_pairs(signatures, ShingleSets(task_texts, options.ngram), local, options.task_threshold)]


def _chain(previous: int, key: int) -> int:
    return xxhash.xxh64_intdigest(previous.to_bytes(8, "little") + key.to_bytes(8, "little"))


def prefix_pairs(keys: Sequence[Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    """(shorter, longer) for every document whose turns are a proper prefix of a longer document's turns.

    All turns but the shorter one's last must match strictly; its last turn matches on role and text only, since
    a logged response can lose the tool calls whose results it never saw (cleaning drops unanswered calls). The
    longer partner is the longest document having that prefix (then the lowest index), so chains of consecutive
    logs all point at the final, complete conversation.
    """
    best_extension: dict[tuple[int, int], int] = {}  # (prefix length, prefix chain) → longest doc with it
    own_chain: list[tuple[int, int]] = []
    for index, sequence in enumerate(keys):
        strict = 0
        for length, (strict_key, loose_key) in enumerate(sequence, start=1):
            ended = _chain(strict, loose_key)
            if length < len(sequence):
                current = best_extension.get((length, ended))
                if current is None or len(keys[current]) < len(sequence):
                    best_extension[(length, ended)] = index
            else:
                own_chain.append((length, ended))
            strict = _chain(strict, strict_key)
        if not sequence:
            own_chain.append((0, 0))
    pairs = []
    for index, signature in enumerate(own_chain):
        longer = best_extension.get(signature) if signature[0] else None
        if longer is not None:
            pairs.append((index, longer))
    return pairs


def deduplicate(
    texts: Sequence[str],
    options: DedupOptions = DedupOptions(),
    *,
    turns: Sequence[Sequence[tuple[int, int]]] | None = None,
    tasks: Sequence[str] | None = None,
    progress=None,
) -> DedupResult:
    """Cluster `texts` (canonical order) by exact, prefix (`turns` keys), near and same-task containment."""
    signatures, exact_keys, _ = options.hasher().run(texts, progress=progress)
    count = len(texts)
    sets = UnionFind(count)
    first_of_key: dict[int, int] = {}
    for index, key in enumerate(exact_keys.tolist()):
        sets.union(first_of_key.setdefault(key, index), index)
    prefixed = set()
    for shorter, longer in prefix_pairs(turns) if turns is not None else []:
        sets.union(shorter, longer)
        prefixed.add(shorter)
    unique = np.array(sorted(first_of_key.values()), dtype=np.int64)
    shingles = ShingleSets(texts, options.ngram)
    pairs = unique[candidate_pairs(signatures[unique], *options.banding())]
    near = verified_pairs(signatures, shingles, pairs, options.threshold)
    for first, second in near.tolist():
        sets.union(first, second)
    contained = set()
    if tasks is not None:
        same_task = task_pairs(tasks, options)
        for first, second in same_task[shingles.containment(same_task) >= options.threshold].tolist():
            sets.union(first, second)
            contained.update((first, second))
    representative = _representatives(sets.roots(), [len(t) for t in texts])
    similarity = np.ones(count, dtype=np.float64)
    reason = []
    for index, rep in enumerate(representative.tolist()):
        if rep == index:
            reason.append(KEPT)
        elif exact_keys[index] == exact_keys[rep]:
            reason.append(EXACT)
        else:
            reason.append(PREFIX if index in prefixed else CONTAINED if index in contained else NEAR)
    inexact = np.array([i for i, r in enumerate(reason) if r not in (KEPT, EXACT)], dtype=np.int64)
    similarity[inexact] = shingles.jaccard(np.stack((inexact, representative[inexact]), axis=1))
    return DedupResult(representative, reason, similarity, signatures, exact_keys, shingles, len(near), len(pairs))


def _representatives(roots: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Per document, the longest member of its cluster (ties: lowest index)."""
    lengths_array = np.asarray(lengths, dtype=np.int64)
    order = np.lexsort((np.arange(len(roots)), -lengths_array, roots))  # by root, then longest, then index
    sorted_roots = roots[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_roots[1:] != sorted_roots[:-1]
    best_of_root = dict(zip(sorted_roots[first].tolist(), order[first].tolist()))
    return np.array([best_of_root[r] for r in roots.tolist()], dtype=np.int64)
