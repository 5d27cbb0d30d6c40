"""Split assignment: token counts and ratios parse as documented, whole groups stay together, ratio splits follow
the token line, budgets are filled in order and never exceeded, and the group order depends on the seed alone."""

from __future__ import annotations

import pytest

from logminer.split.assign import (
    OVER_BUDGET,
    SplitOptions,
    assign_splits,
    group_order,
    parse_ratios,
    parse_token_count,
)


@pytest.mark.parametrize("text, count", [("2000", 2000), ("500k", 500_000), ("1.5M", 1_500_000), (" 2g ", 2 * 10**9)])
def test_token_counts(text, count):
    assert parse_token_count(text) == count


@pytest.mark.parametrize("text", ["", "5 kb", "-3", "1e6"])
def test_bad_token_counts(text):
    with pytest.raises(ValueError, match="is not a token count"):
        parse_token_count(text)


def test_ratios_are_normalised_and_checked():
    assert parse_ratios("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("0.5,0.5", "1,-1,1", "0,0,0", "a,b,c"):
        with pytest.raises(ValueError):
            parse_ratios(bad)


def test_groups_stay_whole_and_ratios_follow_tokens():
    keys = [f"g{i // 2}" for i in range(200)]  # 100 groups of two documents
    tokens = [10] * 200
    splits = assign_splits(keys, tokens, SplitOptions(ratios=(0.6, 0.2, 0.2)))
    by_group = {}
    for key, split in zip(keys, splits):
        by_group.setdefault(key, set()).add(split)
    assert all(len(names) == 1 for names in by_group.values())
    share = {name: splits.count(name) / len(splits) for name in ("calibration", "validation", "eval")}
    assert share == pytest.approx({"calibration": 0.6, "validation": 0.2, "eval": 0.2}, abs=0.02)
    assert "validation" not in assign_splits(keys, tokens, SplitOptions(ratios=(0.5, 0.0, 0.5)))


def test_budgets_are_filled_in_order_and_never_exceeded():
    keys = [f"g{i}" for i in range(30)]
    tokens = [100] * 30
    splits = assign_splits(keys, tokens, SplitOptions(budgets=(1000, 250, None), ratios=(1, 1, 1)))
    used = {name: 100 * splits.count(name) for name in set(splits)}
    assert used["calibration"] == 1000 and used["validation"] == 200 and used["eval"] == 3000 - 1200
    everything_budgeted = assign_splits(keys, tokens, SplitOptions(budgets=(500, 500, 500)))
    assert everything_budgeted.count(OVER_BUDGET) == 15


def test_group_order_depends_on_the_seed_only():
    keys = [f"repo-{i}" for i in range(50)]
    assert group_order(keys, 1) == group_order(list(reversed(keys)) + keys[:5], 1)
    assert group_order(keys, 1) != group_order(keys, 2)
    assert sorted(group_order(keys, 3)) == sorted(keys)
