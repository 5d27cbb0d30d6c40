"""Per-tensor statistics of an imatrix, as `llama-imatrix --show-statistics` reports them (spec §3), and a heat map.

Definitions follow llama.cpp's compute_statistics / compute_cossim (tools/imatrix/imatrix.cpp at the spec's pin):
v = sum/count per column of every expert with count > 0; Σ, min, max, μ = Σ/N; σ the population standard deviation;
"% active" the share of |v| > 1e-5; entropy of p = v/Σ in bits, E(norm) = entropy/log2 N; ZD the share of
z = (v-μ)/σ > 1 (one-sided, as llama.cpp counts it); CosSim the cosine between this tensor's raw sums and the same
tensor one block earlier (0 when there is none). llama.cpp accumulates in float32; we use float64, so the last printed
digit can differ on large tensors.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry

BLOCK_PATTERN = re.compile(r"blk\.(\d+)\.")
ACTIVE_THRESHOLD = 1e-5


@dataclass(frozen=True)
class TensorStatistics:
    name: str
    layer: int | None  # block number, None outside blk.*
    kind: str  # the name part before ".weight" (attn_q, ffn_down_exps, ...)
    sum: float
    min: float
    max: float
    mean: float
    std: float
    active: float  # fraction of columns with |v| > 1e-5
    n: int  # columns counted (experts with count 0 left out)
    entropy: float  # bits
    entropy_norm: float  # entropy / log2(n), 0..1
    zd: float  # fraction with z-score > 1
    cossim: float  # cosine of the raw sums with the previous block's tensor of the same kind; 0 if none


@dataclass(frozen=True)
class LayerStatistics:
    layer: int
    sum: float  # N-weighted mean of the tensors' Σ
    zd: float
    cossim: float
    n: int


@dataclass
class StatisticsReport:
    tensors: list[TensorStatistics]
    layers: list[LayerStatistics]
    skipped: list[str] = field(default_factory=list)  # entries whose counts are all zero

    def as_dict(self) -> dict:
        return {"tensors": [asdict(t) for t in self.tensors], "layers": [asdict(row) for row in self.layers],
                "skipped": list(self.skipped)}


def split_name(name: str) -> tuple[int | None, str]:
    """(block number, tensor kind) the way llama.cpp's process_tensor_name splits `blk.N.<kind>.weight`."""
    match = BLOCK_PATTERN.search(name)
    parts = name.split(".")
    kind = next((parts[i - 1] for i in range(1, len(parts)) if parts[i] == "weight"), name)
    return (int(match.group(1)) if match else None), kind


def column_means(entry: ImatrixEntry) -> np.ndarray:
    """v: flat float64 per-column means of the experts that saw tokens (count-0 experts left out)."""
    active = entry.counts > 0
    return (entry.sums[active].astype(np.float64) / entry.counts[active, None].astype(np.float64)).reshape(-1)


def vector_statistics(name: str, values: np.ndarray, cossim: float = 0.0) -> TensorStatistics:
    """The --show-statistics numbers of one non-empty vector of per-column means."""
    n = int(values.size)
    total = float(values.sum())
    mean = total / n
    std = math.sqrt(max(0.0, float(np.mean(values * values)) - mean * mean))
    entropy = 0.0
    if total > 0:
        p = values / total
        p = p[p > 0]
        entropy = float(-(p * np.log2(p)).sum())
    zd = float(np.count_nonzero((values - mean) / std > 1.0)) / n if std > 0 else 0.0
    layer, kind = split_name(name)
    return TensorStatistics(
        name=name, layer=layer, kind=kind, sum=total, min=float(values.min()), max=float(values.max()), mean=mean,
        std=std, active=float(np.count_nonzero(np.abs(values) > ACTIVE_THRESHOLD)) / n, n=n, entropy=entropy,
        entropy_norm=entropy / math.log2(n) if n > 1 else 0.0, zd=zd, cossim=cossim,
    )


def previous_block_cossim(imatrix: Imatrix, name: str) -> float:
    """Cosine between the raw sums of `name` and of the same tensor in block N-1 (0 when there is none or sizes differ)."""
    match = BLOCK_PATTERN.search(name)
    if not match:
        return 0.0
    start, end = match.span(1)
    previous = imatrix.entries.get(f"{name[:start]}{int(match.group(1)) - 1}{name[end:]}")
    current = imatrix.entries[name]
    if previous is None or previous.n_values != current.n_values:
        return 0.0
    a = current.sums.astype(np.float64).reshape(-1)
    b = previous.sums.astype(np.float64).reshape(-1)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms > 0 else math.nan  # llama.cpp divides 0 by 0 too


def compute_statistics(imatrix: Imatrix) -> StatisticsReport:
    """All tensors (sorted like llama.cpp: by kind, then Σ descending) and N-weighted per-layer averages."""
    tensors, skipped = [], []
    for name, entry in imatrix.entries.items():
        values = column_means(entry)
        if values.size == 0:
            skipped.append(name)
            continue
        tensors.append(vector_statistics(name, values, previous_block_cossim(imatrix, name)))
    tensors.sort(key=lambda t: (t.kind, -t.sum, t.name))
    return StatisticsReport(tensors, layer_statistics(tensors), sorted(skipped))


def layer_statistics(tensors: list[TensorStatistics]) -> list[LayerStatistics]:
    """Per block: Σ, ZD and CosSim averaged over its tensors weighted by their element counts N."""
    layers = []
    for layer in sorted({t.layer for t in tensors if t.layer is not None}):
        members = [t for t in tensors if t.layer == layer]
        weights = np.array([t.n for t in members], np.float64)

        def weighted(attribute: str) -> float:
            return float(np.dot(weights, [getattr(t, attribute) for t in members]) / weights.sum())

        layers.append(LayerStatistics(layer, weighted("sum"), weighted("zd"), weighted("cossim"), int(weights.sum())))
    return layers


def format_table(report: StatisticsReport) -> str:
    """Plain-text tables in the column order of llama-imatrix --show-statistics."""
    header = (f"{'Layer':>5}  {'Tensor':<20} {'Σ(Act²)':>12} {'Min':>10} {'Max':>12} {'μ':>10} {'σ':>10} "
              f"{'% Active':>9} {'N':>7} {'Entropy':>9} {'E (norm)':>9} {'ZD':>8} {'CosSim':>8}")
    lines = [header, "=" * len(header)]
    for t in report.tensors:
        layer = "-" if t.layer is None else str(t.layer)
        lines.append(
            f"{layer:>5}  {t.kind:<20} {t.sum:12.2f} {t.min:10.4f} {t.max:12.4f} {t.mean:10.2f} {t.std:10.2f} "
            f"{100 * t.active:8.2f}% {t.n:7d} {t.entropy:9.4f} {100 * t.entropy_norm:8.2f}% {100 * t.zd:7.2f}% "
            f"{t.cossim:8.4f}"
        )
    lines += ["", f"{'Layer':>5}  {'μΣ(Act²)':>14} {'μZD':>9} {'μCosSim':>8}", "=" * 40]
    lines += [f"{row.layer:>5}  {row.sum:14.2f} {100 * row.zd:8.4f}% {row.cossim:8.4f}" for row in report.layers]
    if report.skipped:
        lines += ["", f"no data (all counts 0), no statistics: {', '.join(report.skipped)}"]
    return "\n".join(lines)


HEATMAP_PANELS = (
    ("sum", "log10 Σ(Act²)"),
    ("zd", "ZD (share with z > 1)"),
    ("cossim", "CosSim to previous block"),
    ("entropy_norm", "E (norm) entropy"),
)


def heatmap_grid(report: StatisticsReport, attribute: str) -> tuple[list[int], list[str], np.ndarray]:
    """Layers × tensor kinds matrix of one statistic (NaN where a layer lacks that kind)."""
    layers = sorted({t.layer for t in report.tensors if t.layer is not None})
    kinds = sorted({t.kind for t in report.tensors if t.layer is not None})
    grid = np.full((len(layers), len(kinds)), np.nan)
    for t in report.tensors:
        if t.layer is not None:
            value = getattr(t, attribute)
            grid[layers.index(t.layer), kinds.index(t.kind)] = math.log10(value) if attribute == "sum" and value > 0 else value
    return layers, kinds, grid


def plot_heatmap(report: StatisticsReport, path: str | os.PathLike, title: str = "") -> None:
    """Write a PNG with one layer × tensor heat map per statistic (matplotlib, Agg backend, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibkit.atomic import write_with

    if not any(t.layer is not None for t in report.tensors):
        raise ValueError("no blk.* tensors with data: nothing to draw")
    n_layers = len({t.layer for t in report.tensors if t.layer is not None})
    height = max(4.0, 2.5 + 0.22 * n_layers)
    figure, axes = plt.subplots(1, len(HEATMAP_PANELS), figsize=(5 * len(HEATMAP_PANELS), height), squeeze=False)
    for axis, (attribute, label) in zip(axes[0], HEATMAP_PANELS):
        layers, kinds, grid = heatmap_grid(report, attribute)
        image = axis.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", interpolation="nearest")
        axis.set_title(label)
        axis.set_xticks(range(len(kinds)), kinds, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=7)
        axis.set_ylabel("layer")
        figure.colorbar(image, ax=axis, shrink=0.8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(figure)
