"""The 12 `.stats` numbers (b11434's compute_vector_statistics / compute_tensor_statistics) against a direct numpy
computation of their definitions, and llama.cpp's naming quirks they depend on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imatrix.files.imatrix_file import ImatrixEntry
from imatrix.files.tensor_stats import (
    STATS_SCHEMA,
    all_statistics,
    nextn_layer_start,
    process_tensor_name,
    stats_tensors,
    vector_statistics,
)


def entry_from(x: np.ndarray, experts: list[np.ndarray] | None = None) -> ImatrixEntry:
    """An entry of token rows x (rows × columns), or per-expert row sets."""
    groups = experts if experts is not None else [x]
    sums = np.stack([(g.astype(np.float64) ** 2).sum(0) for g in groups]).astype(np.float32)
    act = np.stack([g.astype(np.float64).sum(0) for g in groups]).astype(np.float32)
    return ImatrixEntry(sums, np.array([len(g) for g in groups], np.float32), act)


def moments(v: np.ndarray) -> tuple[float, float, float, float]:
    mean, std = v.mean(), v.std()
    z = (v - mean) / std
    return mean, std, (z**3).mean(), (z**4).mean() - 3.0


def test_vector_statistics_equal_their_definitions():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 48)) * rng.gamma(2, 1, 48) + rng.standard_normal(48)
    entry = entry_from(x)
    ts = vector_statistics("blk.0.ffn_down.weight", entry)
    mean_x = entry.activation_sums.astype(np.float64).ravel() / 200
    energy = entry.sums.astype(np.float64).ravel() / 200
    mean, std, skew, kurt = moments(mean_x)
    p = energy / energy.sum()
    assert not ts.legacy and ts.elements == 48
    assert ts.sum == pytest.approx(energy.sum(), rel=1e-12)
    assert (float(ts.mean), float(ts.std_deviation)) == pytest.approx((mean, std), rel=1e-6)
    assert (float(ts.skewness), float(ts.kurtosis)) == pytest.approx((skew, kurt), rel=1e-5)
    assert float(ts.h_norm) == pytest.approx(100 * -(p * np.log2(p)).sum() / math.log2(48), rel=1e-6)


def test_legacy_entry_uses_mean_squares_and_skips_experts_without_tokens():
    rng = np.random.default_rng(4)
    experts = [rng.standard_normal((30, 8)), rng.standard_normal((0, 8)), rng.standard_normal((50, 8)) * 2]
    entry = entry_from(None, experts)
    entry.activation_sums = None
    ts = vector_statistics("blk.3.ffn_up_exps.weight", entry)
    energy = np.concatenate([(g**2).mean(0) for g in experts if len(g)])
    assert ts.legacy and ts.elements == 16  # the expert without tokens is left out
    mean, std, skew, kurt = moments(energy)
    assert (float(ts.mean), float(ts.std_deviation), float(ts.skewness), float(ts.kurtosis)) == pytest.approx(
        (mean, std, skew, kurt), rel=1e-5)


def test_comparison_with_the_nearest_earlier_layer():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((64, 16)) * (1 + layer) + layer for layer in range(3)]
    entries = {f"blk.{layer}.attn_q.weight": entry_from(x) for layer, x in enumerate(xs)}
    del entries["blk.1.attn_q.weight"]  # blk.2 then compares with blk.0
    stats, start = all_statistics(entries)
    by_name = {ts.name: ts for ts in stats}
    assert start == 2**31 - 1  # no NextN layers
    first, third = by_name["blk.0.attn_q.weight"], by_name["blk.2.attn_q.weight"]
    assert all(math.isnan(float(getattr(first, k))) for k in ("gain", "l2_dist", "cossim", "pearson", "covariance"))
    c, p = xs[2].mean(0), xs[0].mean(0)  # E[x] per column
    e_c, e_p = (xs[2] ** 2).mean(0), (xs[0] ** 2).mean(0)
    assert float(third.gain) == pytest.approx(math.sqrt(e_c.mean()) / math.sqrt(e_p.mean()), rel=1e-5)
    assert float(third.l2_dist) == pytest.approx(np.linalg.norm(c - p), rel=1e-5)
    assert float(third.cossim) == pytest.approx(c @ p / np.linalg.norm(c) / np.linalg.norm(p), rel=1e-5)
    assert float(third.pearson) == pytest.approx(np.corrcoef(c, p)[0, 1], rel=1e-5)
    assert float(third.covariance) == pytest.approx(np.cov(c, p, bias=True)[0, 1], rel=1e-5)


def test_stats_tensor_order_and_empty_entries():
    rng = np.random.default_rng(6)
    entries = {"blk.0.attn_k.weight": entry_from(rng.standard_normal((20, 4))),
               "blk.1.attn_k.weight": ImatrixEntry(np.zeros(4), [0], np.zeros(4))}
    tensors = stats_tensors(entries)
    ts = vector_statistics("blk.0.attn_k.weight", entries["blk.0.attn_k.weight"])
    by_key = dict(zip(STATS_SCHEMA, tensors["blk.0.attn_k.weight"].tolist()))
    assert by_key["sum_sq"] == np.float32(ts.sum) and by_key["elements"] == 4 and by_key["mean"] == ts.mean
    assert tensors["blk.1.attn_k.weight"].tolist() == [0.0] * 12  # no counted token: zeros, as llama-imatrix stores
    assert tensors["blk.0.attn_k.weight"].dtype == np.float32


def test_nextn_layers_start_their_own_comparison_chain():
    rng = np.random.default_rng(7)
    names = ["blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.2.attn_q.weight", "blk.2.nextn.eh_proj.weight"]
    entries = {name: entry_from(rng.standard_normal((20, 8))) for name in names}
    stats, start = all_statistics(entries)
    assert start == 2  # from the first block with nextn.* tensors
    by_name = {ts.name: ts for ts in stats}
    assert math.isnan(float(by_name["blk.2.attn_q.weight"].gain))  # a NextN layer is not compared with the trunk
    assert not math.isnan(float(by_name["blk.1.attn_q.weight"].gain))
    assert nextn_layer_start(stats, n_layer_nextn=2) == 1  # imatrix.n_layer_nextn wins: top 2 of blocks 0..2


def test_process_tensor_name_quirks_of_llama_cpp():
    assert process_tensor_name("blk.0.attn_q.weight") == ("0", "blk.0.attn_q.weight")  # 4 parts: whole name kept
    assert process_tensor_name("blk.46.nextn.eh_proj.weight") == ("46", "nextn.eh_proj")
    assert process_tensor_name("output.weight") == ("-", "output")
    assert process_tensor_name("token_embd.weight") == ("-", "token_embd")


def test_large_entries_take_the_vectorised_path_with_the_same_numbers(monkeypatch):
    from imatrix.files import tensor_stats

    rng = np.random.default_rng(8)
    entry = entry_from(None, [rng.standard_normal((n, 64)) + 0.1 for n in (40, 70, 0, 30)])
    exact = vector_statistics("blk.1.ffn_down_exps.weight", entry).stats_vector()
    monkeypatch.setattr(tensor_stats, "EXACT_LIMIT", 0)
    fast = vector_statistics("blk.1.ffn_down_exps.weight", entry).stats_vector()
    np.testing.assert_allclose(fast, exact, rtol=1e-6, equal_nan=True)
