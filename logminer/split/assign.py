"""Assign whole groups of documents to calibration / validation / eval (the audit is in logminer.split.audit).

Groups: a document's dedup cluster (only one representative per cluster survives dedup, so a cluster is one
document), merged with every document that shares its `--group-by` value (e.g. the repository) when one is given.
Groups are ordered by a seeded hash of their key (xxh64 of "seed NUL key"), then
  - by ratio: walking that order, a group goes to the split whose share of the cumulative token line its midpoint
    falls in — the splits get the ratios of *tokens* as closely as whole groups allow;
  - by token budget: splits with a budget are filled in order (calibration, validation, eval) with every group that
    still fits; the groups left go to the splits without a budget, by their ratios; whatever is left after that
    (every split has a budget) is over budget and reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import xxhash

SPLITS = ("calibration", "validation", "eval")
OVER_BUDGET = "over_budget"
TOKEN_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
T = TypeVar("T")


def parse_token_count(text: str) -> int:
    """'500k' → 500000, '1.5M' → 1500000, '2000' → 2000."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not a token count (e.g. 2000, 500k, 1.5M)")
    return int(round(float(match.group(1)) * TOKEN_SUFFIXES[match.group(2).lower()]))


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' → (0.8, 0.1, 0.1), normalised to sum to 1."""
    try:
        values = [float(part) for part in str(text).split(",")]
    except ValueError as error:
        raise ValueError(f"{text!r}: ratios are three numbers separated by commas") from error
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{text!r}: give three non-negative ratios for calibration,validation,eval")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


@dataclass(frozen=True)
class SplitOptions:
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    budgets: tuple[int | None, int | None, int | None] = (None, None, None)
    seed: int = 0

    @property
    def by_budget(self) -> bool:
        return any(b is not None for b in self.budgets)


def group_order(keys: Sequence[str], seed: int) -> list[str]:
    """Distinct group keys in seeded-hash order (ties broken by the key itself)."""
    distinct = sorted(set(keys))
    return sorted(distinct, key=lambda key: (xxhash.xxh64_intdigest(f"{seed}\0{key}".encode("utf-8")), key))


def assign_splits(group_keys: Sequence[str], tokens: Sequence[int], options: SplitOptions) -> list[str]:
    """Per document: its split name, or OVER_BUDGET. Documents of one group always share a split."""
    group_tokens: dict[str, int] = {}
    for key, count in zip(group_keys, tokens):
        group_tokens[key] = group_tokens.get(key, 0) + int(count)
    order = group_order(group_keys, options.seed)
    if options.by_budget:
        chosen = _fill_budgets(order, group_tokens, options)
    else:
        chosen = _by_ratio(order, group_tokens, options.ratios, SPLITS)
    return [chosen[key] for key in group_keys]


def _by_ratio(order: Sequence[str], group_tokens: dict[str, int], ratios: Sequence[float],
              names: Sequence[str]) -> dict[str, str]:
    total = sum(group_tokens[key] for key in order) or 1
    bounds = np.cumsum(ratios) / (sum(ratios) or 1)
    chosen, position = {}, 0
    for key in order:
        middle = (position + group_tokens[key] / 2) / total
        index = min(int(np.searchsorted(bounds, middle, side="right")), len(names) - 1)
        while ratios[index] == 0 and index > 0:  # never put a group in a split asked to be empty
            index -= 1
        chosen[key] = names[index]
        position += group_tokens[key]
    return chosen


def fill_budget(order: Iterable[T], tokens: Callable[[T], int], budget: int | None) -> tuple[list[T], int]:
    """Walk `order` and take every item that still fits the budget (all of them when it is None): the items
    taken, in order, and their tokens. Split budgets and corpus recipe parts are filled this way."""
    taken, used = [], 0
    for item in order:
        count = tokens(item)
        if budget is None or used + count <= budget:
            taken.append(item)
            used += count
    return taken, used


def _fill_budgets(order: Sequence[str], group_tokens: dict[str, int], options: SplitOptions) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for name, budget in zip(SPLITS, options.budgets):
        if budget is not None:
            taken, _ = fill_budget((key for key in order if key not in chosen), group_tokens.__getitem__, budget)
            chosen.update(dict.fromkeys(taken, name))
    rest = [key for key in order if key not in chosen]
    open_splits = [(n, r) for n, r, b in zip(SPLITS, options.ratios, options.budgets) if b is None]
    if open_splits and rest:
        names, ratios = zip(*open_splits)
        if sum(ratios) == 0:
            ratios = tuple(1.0 for _ in ratios)
        chosen.update(_by_ratio(rest, group_tokens, ratios, names))
    for key in rest:
        chosen.setdefault(key, OVER_BUDGET)
    return chosen
