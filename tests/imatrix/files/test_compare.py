"""imatrix compare: cosine and relative error of per-column means, key-set and count differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imatrix.files.compare import compare, format_report
from imatrix.files.imatrix_file import Imatrix, ImatrixEntry

Q = "blk.0.attn_q.weight"
EXPS = "blk.0.ffn_up_exps.weight"


def pair():
    rng = np.random.default_rng(2)
    means = rng.gamma(2.0, 1.0, 16)
    noise = 1 + rng.uniform(-0.02, 0.02, 16)
    a = Imatrix({Q: ImatrixEntry(means * noise * 500, [500]), "blk.1.attn_q.weight": ImatrixEntry(np.ones(4), [1])},
                ["a"], 1, 512)
    b = Imatrix({Q: ImatrixEntry(means * 512, [512]), "blk.0.attn_k.weight": ImatrixEntry(np.ones(4), [1])},
                ["b"], 1, 512)
    return a, b, means, noise


def test_cosine_and_relative_error_equal_direct_computation():
    a, b, means, noise = pair()
    report = compare(a, b)
    (result,) = report.tensors
    va, vb = means * noise, means
    assert result.cosine == pytest.approx(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb), rel=1e-6)
    assert result.median_relative_error == pytest.approx(np.median(np.abs(noise - 1)), rel=1e-4)
    assert result.max_relative_error == pytest.approx(np.abs(noise - 1).max(), rel=1e-4)
    assert result.count_relative_difference == pytest.approx(12 / 512)
    assert report.only_in_a == ["blk.1.attn_q.weight"] and report.only_in_b == ["blk.0.attn_k.weight"]
    assert not report.identical_keys


def test_identical_files_compare_perfectly():
    a, _, _, _ = pair()
    report = compare(a, a)
    assert report.min_cosine == pytest.approx(1.0) and report.median_relative_error == 0.0
    assert report.identical_keys and report.max_count_relative_difference == 0.0


def test_moe_experts_without_tokens_are_left_out_and_legacy_layout_compares():
    sums = np.array([[2.0, 4.0], [0.0, 0.0], [3.0, 9.0]])
    gguf_like = ImatrixEntry(sums, [2, 0, 3])
    legacy_like = ImatrixEntry(np.array([[1.0, 2.0, 1.0, 1.0, 1.0, 3.0]]) * 6, [6])  # one count for all experts
    report = compare(Imatrix({EXPS: gguf_like}, ["a"], 0, 1), Imatrix({EXPS: legacy_like}, ["b"], 0, 1))
    (result,) = report.tensors
    assert result.columns == 4  # the count-0 expert is not compared
    assert result.cosine == pytest.approx(1.0) and result.median_relative_error == 0.0


def test_length_mismatch_is_reported_not_compared():
    a = Imatrix({Q: ImatrixEntry(np.ones(8), [1])}, ["a"], 0, 1)
    b = Imatrix({Q: ImatrixEntry(np.ones(4), [1])}, ["b"], 0, 1)
    report = compare(a, b)
    assert report.tensors == [] and report.length_mismatch == [(Q, 8, 4)]
    assert math.isnan(report.min_cosine)
    assert f"length mismatch: {Q} has 8 values in A, 4 in B" in format_report(report)


def test_activation_means_are_compared_where_both_have_in_sum():
    sums, counts = np.array([4.0, 9.0, 1.0], np.float32), np.array([2.0], np.float32)
    a = ImatrixEntry(sums, counts, np.array([2.0, -4.0, 0.0], np.float32))
    b = ImatrixEntry(sums, counts, np.array([2.0, -4.0, 1.0], np.float32))
    report = compare(Imatrix({"blk.0.x.weight": a}, ["d"], 1, 2), Imatrix({"blk.0.x.weight": b}, ["d"], 1, 2))
    t = report.tensors[0]
    va, vb = np.array([1.0, -2.0, 0.0]), np.array([1.0, -2.0, 0.5])  # E[x] = in_sum / 2
    assert t.activation_cosine == pytest.approx(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))
    assert t.activation_relative_l2 == pytest.approx(0.5 / np.linalg.norm(vb))
    assert report.min_activation_cosine == t.activation_cosine
    legacy = ImatrixEntry(sums, counts)
    other = compare(Imatrix({"blk.0.x.weight": legacy}, ["d"], 1, 2), Imatrix({"blk.0.x.weight": b}, ["d"], 1, 2))
    assert math.isnan(other.tensors[0].activation_cosine)
