"""Throughput of the dedup stage (normalise + shingle + signatures + LSH + clusters) against datasketch and rensa.

Generates DOCS synthetic documents of ~2 KB (Zipf-distributed words), plants near-duplicate pairs with 1–12 word
edits and exact duplicates (case and punctuation changed), then times, in the same run and on the same documents:
  - logminer.split.dedup.deduplicate (numpy signatures + banding + verification + union-find);
  - datasketch, one MinHash.update() per shingle, plus MinHashLSH — timed on a subset and extrapolated;
  - rensa RMinHash with Python-side normalisation and shingling, plus RMinHashLSH.
Prints docs/s, ratios and recall on the planted pairs whose true 5-gram Jaccard is ≥ the threshold.

    .venv/bin/python benchmarks/dedup_throughput.py [--docs 20000] [--baseline-docs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logminer.split.dedup import DedupOptions, deduplicate  # noqa: E402
from logminer.split.minhash import normalized_words  # noqa: E402


@dataclass
class PlantedCorpus:
    texts: list[str]
    near_pairs: list[tuple[int, int]]  # (original, edited copy)
    exact_pairs: list[tuple[int, int]]
    family: list[int]  # index of the original each document was made from (itself for originals)


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(size)}
    return sorted(words)


def _sentence_text(words: list[str], rng: random.Random) -> str:
    """Words with some capitals, commas and full stops, so normalisation has work to do."""
    out = []
    for position, word in enumerate(words):
        if position % 17 == 0 or out and out[-1].endswith("."):
            word = word.capitalize()
        out.append(word + ("." if rng.random() < 0.06 else "," if rng.random() < 0.05 else ""))
    return " ".join(out)


def _edit(words: list[str], edits: int, rng: random.Random, vocabulary: list[str]) -> list[str]:
    words = list(words)
    for _ in range(edits):
        position = rng.randrange(len(words))
        kind = rng.random()
        if kind < 0.5:
            words[position] = rng.choice(vocabulary)
        elif kind < 0.75:
            words.insert(position, rng.choice(vocabulary))
        else:
            del words[position]
    return words


def planted_corpus(docs: int = 20000, near: int = 2000, exact: int = 400, seed: int = 0,
                   words_per_doc: int = 300, max_edits: int = 12) -> PlantedCorpus:
    """`docs` documents: originals, `near` edited copies (1..max_edits word edits) and `exact` re-cased copies."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 30000)
    weights = [1.0 / (rank + 10) for rank in range(len(vocabulary))]
    originals = docs - near - exact
    word_lists = [rng.choices(vocabulary, weights, k=words_per_doc + rng.randint(-30, 30)) for _ in range(originals)]
    texts = [_sentence_text(words, rng) for words in word_lists]
    family = list(range(originals))
    near_pairs, exact_pairs = [], []
    for source in rng.sample(range(originals), near):
        edited = _edit(word_lists[source], rng.randint(1, max_edits), rng, vocabulary)
        near_pairs.append((source, len(texts)))
        texts.append(_sentence_text(edited, rng))
        family.append(source)
    for source in rng.sample(range(originals), exact):
        exact_pairs.append((source, len(texts)))
        texts.append(re.sub(r"[.,]", " ; ", texts[source].upper()))
        family.append(source)
    return PlantedCorpus(texts, near_pairs, exact_pairs, family)


def shingle_set(text: str, ngram: int = 5) -> set[tuple[str, ...]]:
    words = normalized_words(text)
    return {tuple(words[i : i + ngram]) for i in range(max(len(words) - ngram + 1, 1))} if words else set()


def true_jaccard(first: str, second: str) -> float:
    a, b = shingle_set(first), shingle_set(second)
    return len(a & b) / len(a | b) if a | b else 1.0


def recall(corpus: PlantedCorpus, representative, threshold: float) -> tuple[float, int, int]:
    """(share of planted pairs with true Jaccard ≥ threshold that share a cluster, such pairs, unrelated merges)."""
    due = [(a, b) for a, b in corpus.near_pairs if true_jaccard(corpus.texts[a], corpus.texts[b]) >= threshold]
    due += corpus.exact_pairs
    merged = sum(representative[a] == representative[b] for a, b in due)
    unrelated = sum(corpus.family[i] != corpus.family[int(r)] for i, r in enumerate(representative))
    return merged / len(due), len(due), unrelated


def time_logminer(texts: list[str], threshold: float) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result): CPU time shows the cost on a machine shared with
    other work, where wall time also counts waiting for a core."""
    start, cpu = time.perf_counter(), time.process_time()
    result = deduplicate(texts, DedupOptions(threshold=threshold))
    return time.perf_counter() - start, time.process_time() - cpu, result


def time_datasketch(texts: list[str], threshold: float, num_perm: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the baseline: one MinHash.update() per shingle, MinHashLSH query + insert."""
    from datasketch import MinHash, MinHashLSH

    start, cpu = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for index, text in enumerate(texts):
        signature = MinHash(num_perm=num_perm)
        for shingle in shingle_set(text):
            signature.update(" ".join(shingle).encode("utf-8"))
        lsh.query(signature)
        lsh.insert(index, signature)
    return time.perf_counter() - start, time.process_time() - cpu


def time_rensa(texts: list[str], threshold: float, num_perm: int) -> tuple[float, float] | None:
    try:
        from rensa import RMinHash, RMinHashLSH
    except ImportError:
        return None
    start, cpu = time.perf_counter(), time.process_time()
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=20)
    for index, text in enumerate(texts):
        signature = RMinHash(num_perm=num_perm, seed=1)
        signature.update([" ".join(shingle) for shingle in shingle_set(text)])
        lsh.query(signature)
        lsh.insert(index, signature)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--baseline-docs", type=int, default=1000, help="datasketch subset, extrapolated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    corpus = planted_corpus(args.docs, near=args.docs // 10, exact=args.docs // 50)
    megabytes = sum(len(t) for t in corpus.texts) / 1e6
    print(f"{len(corpus.texts)} docs, {megabytes:.1f} MB, {len(corpus.near_pairs)} near + "
          f"{len(corpus.exact_pairs)} exact planted pairs")
    time_logminer(corpus.texts[:200], args.threshold)  # warm up: imports and the band optimiser's cache
    times, cpu_times = [], []
    for _ in range(args.repeat):
        elapsed, cpu, result = time_logminer(corpus.texts, args.threshold)
        times.append(elapsed)
        cpu_times.append(cpu)
    ours, ours_cpu = statistics.median(times), statistics.median(cpu_times)
    share, due, unrelated = recall(corpus, result.representative, args.threshold)
    print(f"logminer: {ours:.3f} s median of {args.repeat} = {len(corpus.texts) / ours:,.0f} docs/s wall "
          f"({ours_cpu:.2f} CPU s on 2 threads); recall {share:.4f} of {due} planted pairs "
          f"with true J >= {args.threshold}; unrelated merges {unrelated}")
    print(f"load average while running: {os.getloadavg()[0]:.1f} (wall-clock rates fall when it exceeds the cores)")
    tracemalloc.start()
    deduplicate(corpus.texts, DedupOptions(threshold=args.threshold))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"peak memory allocated by the dedup stage: {peak / 2**20:.0f} MiB (signatures alone "
          f"{result.signatures.nbytes / 2**20:.0f} MiB; input texts {megabytes:.0f} MB, not counted)")
    subset = corpus.texts[: args.baseline_docs]
    scale = len(corpus.texts) / len(subset)
    wall, cpu = (value * scale for value in time_datasketch(subset, args.threshold, 120))
    print(f"datasketch update()-per-shingle + MinHashLSH: {len(corpus.texts) / wall:,.0f} docs/s (timed on "
          f"{len(subset)} docs, extrapolated to {len(corpus.texts)}); logminer is {wall / ours:.1f}x wall, "
          f"{cpu / ours_cpu:.1f}x CPU time")
    rensa_times = time_rensa(corpus.texts, args.threshold, 120)
    if rensa_times is None:
        print("rensa: not installed (pip install rensa)")
    else:
        wall, cpu = rensa_times
        print(f"rensa RMinHash + RMinHashLSH, Python shingling: {len(corpus.texts) / wall:,.0f} docs/s; "
              f"logminer is {wall / ours:.1f}x wall, {cpu / ours_cpu:.1f}x CPU time")


if __name__ == "__main__":
    main()
