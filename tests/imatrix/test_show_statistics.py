"""`imatrix inspect`'s statistics = b11434's `llama-imatrix --show-statistics`: the same tables character for
character (run against the real tool), plus the layer numbers against a direct numpy computation and the heat map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, write_gguf
from imatrix.show_statistics import compute_statistics, format_table, heatmap_grid, plot_heatmap
from tests.real_components import require_llamacpp_tools

KINDS = ("attn_q", "ffn_down")


def entry_from(groups: list[np.ndarray], activations: bool = True) -> ImatrixEntry:
    sums = np.stack([(g.astype(np.float64) ** 2).sum(0) for g in groups]).astype(np.float32)
    act = np.stack([g.astype(np.float64).sum(0) for g in groups]).astype(np.float32) if activations else None
    return ImatrixEntry(sums, np.array([len(g) for g in groups], np.float32), act)


def example_imatrix(n_layers: int = 4, nextn: bool = False, legacy: tuple[str, ...] = ()) -> Imatrix:
    """Dense tensors in blocks 0..n-1, an MoE tensor with an idle expert, token_embd/output, optionally a NextN block."""
    rng = np.random.default_rng(11)
    entries = {}
    blocks = n_layers + (1 if nextn else 0)
    for layer in range(blocks):
        for kind, width in zip(KINDS, (32, 48)):
            x = rng.standard_normal((40, width)) * rng.gamma(2.0, 1.0, width) + 0.3 * layer
            entries[f"blk.{layer}.{kind}.weight"] = entry_from([x])
        entries[f"blk.{layer}.ffn_up_exps.weight"] = entry_from(
            [rng.standard_normal((n, 16)) * (1 + layer) for n in (25, 0, 15)])
    if nextn:
        entries[f"blk.{n_layers}.nextn.eh_proj.weight"] = entry_from([rng.standard_normal((40, 64))])
    entries["output.weight"] = entry_from([rng.standard_normal((40, 32)) * 3])
    entries["token_embd.weight"] = entry_from([rng.standard_normal((40, 32)) * 2])
    for name in legacy:
        entries[name].activation_sums = None
    return Imatrix(entries, ["calib.txt"], 1, 40, n_layer_nextn=1 if nextn else 0)


def test_rows_are_ordered_and_labelled_like_llama():
    report = compute_statistics(example_imatrix(nextn=True))
    names = [t.name for t in report.tensors]
    assert names[:3] == ["blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.0.ffn_up_exps.weight"]
    assert names[-2:] == ["token_embd.weight", "output.weight"]
    assert report.labels[names.index("blk.4.nextn.eh_proj.weight")] == "mtp0"
    assert report.labels[-2:] == ["-", "-"]
    assert [row.label for row in report.layers] == ["0", "1", "2", "3", "mtp0", "-"]
    assert not report.legacy and report.warnings == []


def test_layer_rows_equal_a_direct_computation():
    imatrix = example_imatrix()
    report = compute_statistics(imatrix)
    rows = {row.label: row for row in report.layers}

    def averages(layer: int, of: str) -> np.ndarray:
        parts = []
        for kind in (*KINDS, "ffn_up_exps"):
            entry = imatrix.entries[f"blk.{layer}.{kind}.weight"]
            values = entry.activation_sums if of == "x" else entry.sums
            active = entry.counts > 0
            parts.append((values[active] / entry.counts[active, None]).astype(np.float64).ravel())
        return np.concatenate(parts)

    for layer in (1, 2, 3):
        c, p = averages(layer, "x"), averages(layer - 1, "x")
        row = rows[str(layer)]
        assert row.cossim == pytest.approx(c @ p / np.linalg.norm(c) / np.linalg.norm(p), rel=1e-5)
        assert row.l2_dist == pytest.approx(np.linalg.norm(c - p), rel=1e-5)
        energy_c, energy_p = averages(layer, "x2"), averages(layer - 1, "x2")
        assert row.gain == pytest.approx(math.sqrt(energy_c.mean() / energy_p.mean()), rel=1e-5)
        assert float(row.sum) == pytest.approx(energy_c.sum(), rel=1e-6)
    assert math.isnan(rows["0"].cossim) and rows["0"].elements == 32 + 48 + 32


def test_missing_activation_sums_give_the_legacy_layout_and_llamas_warning():
    report = compute_statistics(example_imatrix(legacy=("blk.2.attn_q.weight",)))
    assert report.legacy
    assert report.warnings[0] == ("show_statistics: 1 of 14 tensors have no activation data, using the legacy layout")
    table = format_table(report, "x.gguf")
    assert "L2 Dist" not in table and "-" * 153 + "\n" in table


def test_layer_gap_prints_no_layer_table():
    imatrix = example_imatrix()
    for kind in (*KINDS, "ffn_up_exps"):
        del imatrix.entries[f"blk.2.{kind}.weight"]
    report = compute_statistics(imatrix)
    assert report.layer_gap and "layer sequence gap detected (found 3 layers in range 0-3, expected 4)" in report.warnings[-1]
    assert "Computing layer statistics" not in format_table(report, "x.gguf")


def test_heatmap(tmp_path):
    report = compute_statistics(example_imatrix(nextn=True))
    layers, kinds, grid = heatmap_grid(report, "gain")
    assert layers == ["0", "1", "2", "3", "mtp0"] and "ffn_up_exps" in kinds and "nextn.eh_proj" in kinds
    assert np.isnan(grid[0]).all() and not np.isnan(grid[1, kinds.index("attn_q")])
    plot_heatmap(report, tmp_path / "map.png", title="example")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _llama_show_statistics(path):
    import subprocess

    from imatrix.llamacpp.tools import find_tool

    completed = subprocess.run([str(find_tool("llama-imatrix")), "-m", "unused.gguf", "--in-file", str(path),
                                "--show-statistics"], capture_output=True, text=True, timeout=120, check=False)
    return completed.returncode, completed.stdout, completed.stderr


CASES = {
    "activations": {},
    "nextn": {"nextn": True},
    "legacy-mixed": {"legacy": ("blk.1.ffn_down.weight", "output.weight")},
    "gap": {"n_layers": 4},
}


@pytest.mark.llamacpp
@pytest.mark.parametrize("case", sorted(CASES))
def test_tables_equal_real_llama_imatrix_show_statistics(tmp_path, case):
    require_llamacpp_tools(("llama-imatrix",))
    imatrix = example_imatrix(**CASES[case])
    if case == "gap":
        for kind in (*KINDS, "ffn_up_exps"):
            del imatrix.entries[f"blk.1.{kind}.weight"]
    path = tmp_path / f"{case}.gguf"
    write_gguf(imatrix, path)
    returncode, stdout, stderr = _llama_show_statistics(path)
    report = compute_statistics(imatrix)
    assert returncode == (1 if case == "gap" else 0), stderr
    assert format_table(report, str(path)) == stdout  # every number, and the layout
    # (its LOG_WRN lines, e.g. the legacy-layout warning, never reach stderr: this path exits before the log thread
    # flushes; our warnings carry the same text as its source)
