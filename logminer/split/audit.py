"""Audit a split: near-duplicate pairs that straddle two splits, and holdout hits in calibration (both must be 0).

Pairs are found with their own, more sensitive banding (recall AUDIT_RECALL at threshold − slack, other rows per
band than dedup's, so a pair dedup's banding missed is not missed the same way here; buckets are searched
completely) and counted by their EXACT n-gram Jaccard (logminer.split.jaccard), never by the MinHash estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from logminer.split.assign import SPLITS
from logminer.split.jaccard import ShingleSets
from logminer.split.lsh import cross_pairs, estimated_jaccard, recall_bands

AUDIT_RECALL = 0.999
PREFILTER_SLACK = 0.2  # estimates this far below the query threshold are not counted exactly (5 σ)


@dataclass
class AuditReport:
    """Near-duplicate pairs across splits and holdout hits in calibration (both must be 0 for a usable set)."""

    threshold: float
    query_threshold: float
    cross_pairs_near: int = 0  # exact Jaccard ≥ query_threshold (threshold − slack)
    cross_pairs_at_threshold: int = 0  # exact Jaccard ≥ threshold
    examples: list[dict] = field(default_factory=list)
    holdout_hits_calibration: int = 0
    holdout_examples: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.cross_pairs_at_threshold == 0 and self.holdout_hits_calibration == 0


def audit_cross_split(
    splits: Sequence[str], positions: Sequence[int], signatures: np.ndarray, shingles: ShingleSets,
    ids: Sequence[str], threshold: float, slack: float = 0.1, max_examples: int = 20,
) -> AuditReport:
    """Member k is document positions[k] (a row of `signatures`, an index of `shingles`) in split splits[k];
    count the pairs of members in different splits by exact Jaccard, each split against the later ones."""
    query_threshold = round(max(threshold - slack, 0.01), 6)
    report = AuditReport(threshold, query_threshold)
    bands, rows = recall_bands(query_threshold, signatures.shape[1], AUDIT_RECALL)
    labels = np.asarray(splits)
    positions = np.asarray(positions, dtype=np.int64)
    for position, name in enumerate(SPLITS):
        mine = positions[labels == name]
        later = positions[np.isin(labels, SPLITS[position + 1 :])]
        local = cross_pairs(signatures[mine], signatures[later], bands, rows)
        pairs = np.stack((mine[local[:, 0]], later[local[:, 1]]), axis=1)
        pairs = pairs[estimated_jaccard(signatures, pairs) >= query_threshold - PREFILTER_SLACK]
        similarity = shingles.jaccard(pairs)
        near = similarity >= query_threshold
        report.cross_pairs_near += int(near.sum())
        report.cross_pairs_at_threshold += int((similarity >= threshold).sum())
        member = {int(p): k for k, p in enumerate(positions.tolist())}
        for (left, right), value in zip(pairs[near].tolist(), similarity[near].tolist()):
            if len(report.examples) < max_examples:
                a, b = member[left], member[right]
                report.examples.append({"first": ids[a], "first_split": splits[a], "second": ids[b],
                                        "second_split": splits[b], "jaccard": round(value, 4)})
    return report
