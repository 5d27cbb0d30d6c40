"""Compare two imatrices the way the spec's checks do: per-tensor cosine and relative error of per-column means.

B is the reference: relative error is |mean_A − mean_B| / |mean_B| per column, over experts that saw tokens in both
files. Entries of a legacy file (one count) compare with per-expert GGUF entries element by element. Where both files
have activation sums (in_sum), the per-column mean activations E[x] are compared too: cosine and ‖a − b‖ / ‖b‖ (a
per-column relative error means little for signed values near 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry


@dataclass(frozen=True)
class TensorComparison:
    name: str
    cosine: float  # of the per-column means (NaN when no column has data in both)
    median_relative_error: float
    max_relative_error: float
    columns: int  # columns compared
    count_a: float  # largest per-expert token count (= the count of a dense tensor)
    count_b: float
    count_relative_difference: float  # max over experts of |count_a − count_b| / count_b
    activation_cosine: float = math.nan  # of the per-column E[x] (NaN when a side has no in_sum)
    activation_relative_l2: float = math.nan  # ‖E[x]_A − E[x]_B‖ / ‖E[x]_B‖


@dataclass
class ComparisonReport:
    tensors: list[TensorComparison]
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    length_mismatch: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def min_cosine(self) -> float:
        values = [t.cosine for t in self.tensors if not math.isnan(t.cosine)]
        return min(values) if values else math.nan

    @property
    def median_relative_error(self) -> float:
        """Median over tensors of each tensor's median per-column relative error."""
        values = [t.median_relative_error for t in self.tensors if not math.isnan(t.median_relative_error)]
        return float(np.median(values)) if values else math.nan

    @property
    def min_activation_cosine(self) -> float:
        values = [t.activation_cosine for t in self.tensors if not math.isnan(t.activation_cosine)]
        return min(values) if values else math.nan

    @property
    def max_count_relative_difference(self) -> float:
        return max((t.count_relative_difference for t in self.tensors), default=0.0)

    @property
    def identical_keys(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.length_mismatch)

    def as_dict(self) -> dict:
        return {
            "summary": {
                "tensors_compared": len(self.tensors), "min_cosine": self.min_cosine,
                "median_relative_error": self.median_relative_error,
                "min_activation_cosine": self.min_activation_cosine,
                "max_count_relative_difference": self.max_count_relative_difference,
                "identical_keys": self.identical_keys,
            },
            "only_in_a": self.only_in_a, "only_in_b": self.only_in_b,
            "length_mismatch": [{"name": n, "length_a": a, "length_b": b} for n, a, b in self.length_mismatch],
            "tensors": [asdict(t) for t in self.tensors],
        }


def flat_means_and_counts(entry: ImatrixEntry, activations: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-element float64 mean of x² (or of x) and the token count of the element's expert, both flat."""
    columns = entry.sums.shape[1]
    counts = np.repeat(entry.counts.astype(np.float64), columns)
    sums = (entry.activation_sums if activations else entry.sums).astype(np.float64).reshape(-1)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0), counts


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms > 0 else math.nan


def _activation_agreement(a: ImatrixEntry, b: ImatrixEntry) -> tuple[float, float]:
    """(cosine, relative L2 error) of the per-column E[x]; NaN when either side has no activation sums."""
    if a.activation_sums is None or b.activation_sums is None or a.counts.size != b.counts.size:
        return math.nan, math.nan
    mean_a, counts_a = flat_means_and_counts(a, activations=True)
    mean_b, counts_b = flat_means_and_counts(b, activations=True)
    both = (counts_a > 0) & (counts_b > 0)
    va, vb = mean_a[both], mean_b[both]
    reference = float(np.linalg.norm(vb))
    return _cosine(va, vb), float(np.linalg.norm(va - vb)) / reference if reference > 0 else math.nan


def compare_entries(name: str, a: ImatrixEntry, b: ImatrixEntry) -> TensorComparison:
    """Cosine and relative errors of the per-column means of one tensor, plus its token-count difference."""
    activation = _activation_agreement(a, b)
    means_a, counts_a = flat_means_and_counts(a)
    means_b, counts_b = flat_means_and_counts(b)
    both = (counts_a > 0) & (counts_b > 0)
    va, vb = means_a[both], means_b[both]
    cosine = _cosine(va, vb)
    nonzero = vb != 0
    relative = np.abs(va[nonzero] - vb[nonzero]) / np.abs(vb[nonzero])
    return TensorComparison(
        name=name,
        cosine=cosine,
        median_relative_error=float(np.median(relative)) if relative.size else math.nan,
        max_relative_error=float(relative.max()) if relative.size else math.nan,
        columns=int(both.sum()),
        count_a=float(a.counts.max()),
        count_b=float(b.counts.max()),
        count_relative_difference=_count_difference(a.counts, b.counts),
        activation_cosine=activation[0],
        activation_relative_l2=activation[1],
    )


def _count_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / b over experts (largest counts when the expert layouts differ); 0 when both are 0."""
    if a.size != b.size:
        a, b = a.max(keepdims=True), b.max(keepdims=True)
    a, b = a.astype(np.float64), b.astype(np.float64)
    difference = np.abs(a - b)
    ratios = np.divide(difference, b, out=np.where(difference > 0, np.inf, 0.0), where=b > 0)
    return float(ratios.max())


def compare(a: Imatrix, b: Imatrix) -> ComparisonReport:
    """Compare every tensor the two imatrices share; list key-set differences and entry-length mismatches."""
    report = ComparisonReport(
        tensors=[], only_in_a=sorted(set(a.entries) - set(b.entries)), only_in_b=sorted(set(b.entries) - set(a.entries))
    )
    for name in sorted(set(a.entries) & set(b.entries)):
        entry_a, entry_b = a.entries[name], b.entries[name]
        if entry_a.n_values != entry_b.n_values:
            report.length_mismatch.append((name, entry_a.n_values, entry_b.n_values))
            continue
        report.tensors.append(compare_entries(name, entry_a, entry_b))
    return report


def format_report(report: ComparisonReport, name_a: str = "A", name_b: str = "B") -> str:
    """Plain-text per-tensor table and a summary; worst tensors are easy to spot in the cosine column."""
    header = (f"{'tensor':<40} {'cosine':>10} {'med rel err':>12} {'max rel err':>12} {'count A':>10} {'count B':>10} "
              f"{'cos E[x]':>10}")
    lines = [header, "=" * len(header)]
    for t in report.tensors:
        lines.append(f"{t.name:<40} {t.cosine:10.6f} {100 * t.median_relative_error:11.3f}% "
                     f"{100 * t.max_relative_error:11.3f}% {t.count_a:10.0f} {t.count_b:10.0f} "
                     f"{t.activation_cosine:10.6f}")
    lines.append("")
    lines.append(f"A = {name_a}; B = {name_b} (reference for relative errors)")
    lines.append(f"tensors compared: {len(report.tensors)}; min cosine {report.min_cosine:.6f}; "
                 f"median relative error {100 * report.median_relative_error:.3f}%; "
                 f"min cosine of E[x] {report.min_activation_cosine:.6f}; "
                 f"max count difference {100 * report.max_count_relative_difference:.3f}%")
    for label, names in (("only in A", report.only_in_a), ("only in B", report.only_in_b)):
        if names:
            lines.append(f"{label} ({len(names)}): {', '.join(names)}")
    for name, length_a, length_b in report.length_mismatch:
        lines.append(f"length mismatch: {name} has {length_a} values in A, {length_b} in B")
    return "\n".join(lines)
