"""Audit a split: near-duplicate pairs that straddle two splits, and holdout hits in calibration (both must be 0)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from logminer.split.assign import SPLITS
from logminer.split.lsh import cross_pairs, estimated_jaccard, optimal_bands


@dataclass
class AuditReport:
    """Near-duplicate pairs across splits and holdout hits in calibration (both must be 0 for a usable set)."""

    threshold: float
    query_threshold: float
    cross_pairs_near: int = 0  # estimated Jaccard ≥ query_threshold (threshold − 0.05)
    cross_pairs_at_threshold: int = 0
    examples: list[dict] = field(default_factory=list)
    holdout_hits_calibration: int = 0
    holdout_examples: list[dict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.cross_pairs_at_threshold == 0 and self.holdout_hits_calibration == 0


def audit_cross_split(
    splits: Sequence[str], signatures: np.ndarray, ids: Sequence[str], threshold: float, slack: float = 0.05,
    max_examples: int = 20,
) -> AuditReport:
    """Query each split against the later splits' band index at threshold − slack and count straddling pairs."""
    query_threshold = round(max(threshold - slack, 0.0), 6)
    report = AuditReport(threshold, query_threshold)
    bands, rows = optimal_bands(query_threshold, signatures.shape[1])
    labels = np.asarray(splits)
    for position, name in enumerate(SPLITS):
        mine = np.flatnonzero(labels == name)
        later = np.flatnonzero(np.isin(labels, SPLITS[position + 1 :]))
        pairs = cross_pairs(signatures[mine], signatures[later], bands, rows)
        similarity = estimated_jaccard(signatures[mine], pairs, signatures[later])
        near = similarity >= query_threshold
        report.cross_pairs_near += int(near.sum())
        report.cross_pairs_at_threshold += int((similarity >= threshold).sum())
        for (left, right), value in zip(pairs[near].tolist(), similarity[near].tolist()):
            if len(report.examples) < max_examples:
                a, b = int(mine[left]), int(later[right])
                report.examples.append({"first": ids[a], "first_split": splits[a], "second": ids[b],
                                        "second_split": splits[b], "estimated_jaccard": round(value, 4)})
    return report
