"""`imatrix inspect`'s statistics: the tables of b11434's `llama-imatrix --show-statistics`, their JSON, a heat map.

The per-tensor numbers come from imatrix.files.tensor_stats (the same code that writes `<name>.stats`); this module
adds show_statistics's ordering, per-layer aggregation and table layout (tools/imatrix/imatrix.cpp at b11434, spec
§14.3). The tables are printed byte for byte as llama.cpp's printf calls print them, so a test can compare text.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from imatrix.files.imatrix_file import Imatrix
from imatrix.files.tensor_stats import NOT_A_LAYER, TensorStats, all_statistics, c_stoi, process_tensor_name

LAYER_WIDTH, NAME_WIDTH, SEPARATOR = 6, 40, " | "
SUM_HEADER = "∑ E[A²]"
LAYER_LIMIT = 9999  # show_statistics counts layers below this


@dataclass
class LayerRow:
    layer: int
    label: str
    sum: np.float32  # float accumulation of the tensors' Σ E[A²], in table order (as llama.cpp)
    elements: int
    gain: float
    l2_dist: float
    cossim: float
    pearson: float
    covariance: float


@dataclass
class StatisticsReport:
    tensors: list[TensorStats]  # in table order
    labels: list[str]  # layer label of each tensor row ("0", "mtp0", "-")
    layers: list[LayerRow]
    legacy: bool  # some entry lacks in_sum: E[x²] layout, no L2 Dist column
    warnings: list[str] = field(default_factory=list)
    layer_gap: bool = False  # llama.cpp then prints no layer table and exits 1

    def as_dict(self) -> dict:
        tensors = [{
            "layer": label, "tensor": t.name, "mean": float(t.mean), "std_deviation": float(t.std_deviation),
            "skewness": float(t.skewness), "kurtosis": float(t.kurtosis), "h_norm": float(t.h_norm), "sum_sq": t.sum,
            "gain": float(t.gain), "l2_dist": None if self.legacy else float(t.l2_dist), "cossim": float(t.cossim),
            "pearson": float(t.pearson), "covariance": float(t.covariance), "elements": t.elements,
            "activations": not t.legacy,
        } for t, label in zip(self.tensors, self.labels)]
        layers = [{"layer": row.label, "sum_sq": float(row.sum), "gain": row.gain,
                   "l2_dist": None if self.legacy else row.l2_dist, "cossim": row.cossim, "pearson": row.pearson,
                   "covariance": row.covariance, "elements": row.elements} for row in self.layers]
        return {"legacy": self.legacy, "warnings": list(self.warnings), "layer_gap": self.layer_gap,
                "tensors": tensors, "layers": None if self.layer_gap else layers}


def _table_block(ts: TensorStats) -> int:
    """The block number show_statistics files a row under: blk.N → N, *output* → INT_MAX, anything else → -1."""
    layer, _ = process_tensor_name(ts.name)
    blk = c_stoi(layer)
    if blk is not None:
        return blk
    return NOT_A_LAYER if "output" in ts.name else -1


def _sort_key(ts: TensorStats) -> tuple[int, str]:
    """tensor_comparer: layer number (non-blk: INT_MAX-1, *output*: INT_MAX), then the processed tensor name."""
    layer, tensor = process_tensor_name(ts.name)
    blk = c_stoi(layer)
    if blk is None:
        blk = NOT_A_LAYER if "output" in ts.name else NOT_A_LAYER - 1
    return blk, tensor


def layer_label(blk: int, nextn_start: int) -> str:
    if blk < 0 or blk == NOT_A_LAYER:
        return "-"
    return f"mtp{blk - nextn_start}" if blk >= nextn_start else str(blk)


def _aggregate_layers(tensors: list[TensorStats]) -> dict[int, dict[str, float]]:
    """compute_layer_statistics: per block, the comparison sums of its tensors combined into one vector each."""
    sums: dict[int, dict[str, float]] = {}
    for ts in tensors:
        blk = c_stoi(process_tensor_name(ts.name)[0])
        if blk is None or blk <= 0 or (ts.norm1_sq == 0.0 and ts.norm2_sq == 0.0 and ts.l2_dist_sq == 0.0):
            continue
        s = sums.setdefault(blk, dict.fromkeys(("dot", "n1", "n2", "l2", "cov", "vc", "vp", "ec", "ep"), 0.0)
                            | {"nc": 0, "np": 0, "nf": 0})
        s["dot"] += ts.dot_prod
        s["n1"] += ts.norm1_sq
        s["n2"] += ts.norm2_sq
        s["l2"] += ts.l2_dist_sq
        s["cov"] += ts.cov_sum
        s["vc"] += ts.var_c_sum
        s["vp"] += ts.var_p_sum
        s["nf"] += max(ts.n_features, 0)
        if ts.elements_prev > 0:  # tensors without a match in an earlier layer do not count for the gain
            s["ec"] += ts.sum
            s["ep"] += ts.sum_prev
            s["nc"] += ts.elements
            s["np"] += ts.elements_prev
    results = {}
    for blk, s in sums.items():
        cossim = 0.0
        if s["n1"] > 0.0 and s["n2"] > 0.0:
            cossim = _clamp(s["dot"] / (math.sqrt(s["n1"]) * math.sqrt(s["n2"])))
        elif s["n1"] == 0.0 and s["n2"] == 0.0:
            cossim = math.nan
        gain = math.nan
        if s["nc"] > 0 and s["np"] > 0 and s["ep"] > 0.0:
            gain = float(np.float32(math.sqrt(s["ec"] / s["nc"]) / math.sqrt(s["ep"] / s["np"])))
        pearson = 0.0
        if s["vc"] > 0.0 and s["vp"] > 0.0:
            pearson = _clamp(s["cov"] / (math.sqrt(s["vc"]) * math.sqrt(s["vp"])))
        elif s["vc"] == 0.0 and s["vp"] == 0.0:
            pearson = math.nan
        results[blk] = {"cossim": cossim, "gain": gain, "l2_dist": float(np.float32(math.sqrt(s["l2"]))),
                        "pearson": pearson,
                        "covariance": float(np.float32(s["cov"] / s["nf"])) if s["nf"] > 0 else math.nan}
    return results


def _clamp(value: float) -> float:
    return float(min(max(np.float32(value), np.float32(-1.0)), np.float32(1.0)))


def compute_statistics(imatrix: Imatrix) -> StatisticsReport:
    """show_statistics on one imatrix: per-tensor rows in llama.cpp's order, per-layer rows, warnings."""
    warnings: list[str] = []
    tensors, nextn_start = all_statistics(imatrix.entries, imatrix.n_layer_nextn, warn=warnings.append)
    n_legacy = sum(1 for t in tensors if t.legacy)
    if 0 < n_legacy < len(tensors):
        warnings.insert(0, f"show_statistics: {n_legacy} of {len(tensors)} tensors have no activation data, "
                           "using the legacy layout")
    tensors.sort(key=_sort_key)
    labels = [layer_label(_table_block(t), nextn_start) for t in tensors]
    per_block: dict[int, list] = {}
    for ts in tensors:
        row = per_block.setdefault(_table_block(ts), [np.float32(0.0), 0])
        row[0] = np.float32(float(row[0]) + ts.sum)  # float += double, as llama.cpp's layer_sum
        row[1] += ts.elements
    report = StatisticsReport(tensors, labels, [], legacy=n_legacy > 0, warnings=warnings)
    trunk = [blk for blk, (_s, n) in per_block.items() if 0 <= blk < LAYER_LIMIT and n > 0 and blk < nextn_start]
    if trunk and len(trunk) != max(trunk) - min(trunk) + 1:
        warnings.append(f"show_statistics: layer sequence gap detected (found {len(trunk)} layers in range "
                        f"{min(trunk)}-{max(trunk)}, expected {max(trunk) - min(trunk) + 1}); layer statistics will "
                        "not be shown")
        report.layer_gap = True
        return report
    compared = _aggregate_layers(tensors)
    for blk in sorted(per_block):
        layer_sum, elements = per_block[blk]
        if blk < 0 or elements == 0:
            continue
        values = compared.get(blk, {}) if blk not in (0, NOT_A_LAYER) else {}
        report.layers.append(LayerRow(blk, layer_label(blk, nextn_start), layer_sum, elements,
                                      *(values.get(k, math.nan) for k in ("gain", "l2_dist", "cossim", "pearson",
                                                                          "covariance"))))
    return report


def _pad(text: str, width: int, left: bool = False) -> str:
    """printf's %*s / %-*s: pads by bytes, not characters (the ∑ and ² headers are 10 bytes, 7 characters)."""
    fill = " " * max(0, width - len(text.encode("utf-8")))
    return text + fill if left else fill + text


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else ".." + name[len(name) - (width - 2):]


def n_layers(report: StatisticsReport) -> int:
    return sum(1 for row in report.layers if 0 <= row.layer < LAYER_LIMIT)


def format_table(report: StatisticsReport, path: str) -> str:
    """The stdout of `llama-imatrix --in-file PATH --show-statistics`, character for character."""
    legacy = report.legacy
    out = [f"\nComputing tensor statistics for {path} ({len(report.tensors)} tensors)\n"]
    head = (_pad("Layer", LAYER_WIDTH) + SEPARATOR + _pad("Tensor", NAME_WIDTH, left=True) + SEPARATOR
            + "".join(_pad(h, w) for h, w in (("Mean", 10), ("StdDev", 10), ("Skew", 12), ("Kurt", 12), ("H Norm", 9)))
            + SEPARATOR + _pad(SUM_HEADER, 17) + _pad("Gain", 8) + SEPARATOR
            + ("" if legacy else _pad("L2 Dist", 12)) + _pad("PCC", 10) + _pad("Cov", 10))
    out.append("\n" + head + "\n" + "-" * (153 if legacy else 165) + "\n")
    for ts, label in zip(report.tensors, report.labels):
        out.append(
            f"{label:>{LAYER_WIDTH}}{SEPARATOR}{_short(ts.name, NAME_WIDTH):<{NAME_WIDTH}}{SEPARATOR}"
            f"{float(ts.mean):10.4f}{float(ts.std_deviation):10.4f}{float(ts.skewness):12.4f}"
            f"{float(ts.kurtosis):12.4f}{float(ts.h_norm):8.2f}%{SEPARATOR}{ts.sum:14.4f}{float(ts.gain):8.2f}"
            f"{SEPARATOR}{'' if legacy else f'{float(ts.l2_dist):12.4f}'}{float(ts.pearson):10.4f}"
            f"{float(ts.covariance):10.4f}\n")
    if report.layer_gap:
        return "".join(out)
    out.append(f"\nComputing layer statistics for {path} ({n_layers(report)} layers)\n\n")
    head = (_pad("Layer", LAYER_WIDTH) + SEPARATOR + _pad(SUM_HEADER, 17) + _pad("Gain", 8) + SEPARATOR
            + ("" if legacy else _pad("L2 Dist", 12)) + _pad("CosSim", 9) + _pad("PCC", 9) + _pad("Cov", 12))
    out.append(head + "\n" + "-" * (64 if legacy else 76) + "\n")
    for row in report.layers:
        out.append(f"{row.label:>{LAYER_WIDTH}}{SEPARATOR}{float(row.sum):14.4f}{row.gain:8.2f}{SEPARATOR}"
                   f"{'' if legacy else f'{row.l2_dist:12.4f}'}{row.cossim:9.4f}{row.pearson:9.4f}"
                   f"{row.covariance:12.4f}\n")
    out.append("\n")
    return "".join(out)


HEATMAP_PANELS = (
    ("sum", "log10 ∑ E[A²]"),
    ("h_norm", "H Norm (%)"),
    ("gain", "Gain vs previous layer"),
    ("cossim", "CosSim vs previous layer"),
)


def _kind(name: str) -> str:
    """The tensor kind without block and suffix: blk.3.attn_q.weight → attn_q."""
    parts = name.split(".")
    if parts[0] == "blk" and len(parts) > 2:
        parts = parts[2:]
    return ".".join(parts[:-1] if parts[-1] == "weight" else parts)


def heatmap_grid(report: StatisticsReport, attribute: str) -> tuple[list[str], list[str], np.ndarray]:
    """Layer labels × tensor kinds matrix of one statistic (NaN where a layer lacks that kind)."""
    rows = [(label, t) for t, label in zip(report.tensors, report.labels) if label != "-"]
    layers = list(dict.fromkeys(label for label, _ in rows))
    kinds = sorted({_kind(t.name) for _, t in rows})
    grid = np.full((len(layers), len(kinds)), np.nan)
    for label, t in rows:
        value = float(getattr(t, attribute))
        if attribute == "sum":
            value = math.log10(value) if value > 0 else math.nan
        grid[layers.index(label), kinds.index(_kind(t.name))] = value
    return layers, kinds, grid


def plot_heatmap(report: StatisticsReport, path: str | os.PathLike, title: str = "") -> None:
    """Write a PNG with one layer × tensor heat map per statistic (matplotlib, Agg backend, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibkit.atomic import write_with

    if not any(label != "-" for label in report.labels):
        raise ValueError("no blk.* tensors with data: nothing to draw")
    n_rows = len({label for label in report.labels if label != "-"})
    figure, axes = plt.subplots(1, len(HEATMAP_PANELS), figsize=(5 * len(HEATMAP_PANELS), max(4.0, 2.5 + 0.22 * n_rows)),
                                squeeze=False)
    for axis, (attribute, label) in zip(axes[0], HEATMAP_PANELS):
        layers, kinds, grid = heatmap_grid(report, attribute)
        image = axis.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", interpolation="nearest")
        axis.set_title(label)
        axis.set_xticks(range(len(kinds)), kinds, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(layers)), layers, fontsize=7)
        axis.set_ylabel("layer")
        figure.colorbar(image, ax=axis, shrink=0.8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(figure)
