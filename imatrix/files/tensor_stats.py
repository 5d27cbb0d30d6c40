"""The per-tensor statistics b11434's llama-imatrix stores as `<name>.stats` and prints with `--show-statistics`.

Hand-written because no library has them: a transcription of compute_vector_statistics, compute_tensor_statistics
and nextn_layer_start (tools/imatrix/imatrix.cpp at b11434, spec §14.1/§14.3), kept bit-exact so that re-writing a
llama-imatrix file gives the same bytes: every double sum is accumulated strictly in llama.cpp's element order
(np.cumsum is a sequential loop, unlike np.sum's pairwise sum), the running mean is the same recurrence in a Python
loop, log() is the C library's (math.log), and each float32 rounding happens where the C++ code casts.
Those two Python loops cost ~0.2 µs per value, so entries above EXACT_LIMIT values (large MoE tensors) use numpy's
log and Σ/N for the mean instead: the same statistics to float32 precision, not always the same last bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

STATS_SCHEMA = ("sum_sq", "mean", "elements", "std_deviation", "skewness", "kurtosis", "gain", "h_norm", "l2_dist",
                "cossim", "pearson", "covariance")
NOT_A_LAYER = 2**31 - 1  # INT_MAX: llama.cpp's "no NextN layers" / "output" sentinel
F32_1E_10 = float(np.float32(1e-10))  # the C++ compares doubles with the float literal 1e-10f
F32_NAN = np.float32(math.nan)  # quiet NaN 0x7fc00000, as std::numeric_limits<float>::quiet_NaN()
LEADING_INT = re.compile(r"\s*[+-]?\d+")
EXACT_LIMIT = 1 << 18  # values per entry computed with llama.cpp's exact operation order (dense tensors: all)


@dataclass
class TensorStats:
    """tensor_statistics of one entry: its own distribution, then the comparison with the nearest earlier layer."""

    name: str
    legacy: bool  # no in_sum: mean/std/skew/kurt are over E[x²] instead of E[x]
    sum: float  # Σ E[x²] over columns (double)
    mean: np.float32
    elements: int
    std_deviation: np.float32
    skewness: np.float32
    kurtosis: np.float32
    entropy: np.float32  # bits, of E[x²]/ΣE[x²]
    gain: np.float32 = F32_NAN
    l2_dist: np.float32 = F32_NAN
    cossim: np.float32 = F32_NAN
    pearson: np.float32 = F32_NAN
    covariance: np.float32 = F32_NAN
    # raw sums of the comparison, aggregated per layer by --show-statistics
    cov_sum: float = 0.0
    var_c_sum: float = 0.0
    var_p_sum: float = 0.0
    dot_prod: float = 0.0
    norm1_sq: float = 0.0
    norm2_sq: float = 0.0
    l2_dist_sq: float = 0.0
    sum_prev: float = 0.0
    elements_prev: int = 0
    n_features: int = 0

    @property
    def h_norm(self) -> np.float32:
        """100·H/log2(N) in float32, NaN for a single element."""
        if self.elements <= 1:
            return F32_NAN
        return np.float32(100.0) * (self.entropy / log2f(self.elements))

    def stats_vector(self) -> np.ndarray:
        """The 12 values of `<name>.stats` in STATS_SCHEMA order."""
        values = (self.sum, self.mean, self.elements, self.std_deviation, self.skewness, self.kurtosis, self.gain,
                  self.h_norm, self.l2_dist, self.cossim, self.pearson, self.covariance)
        return np.array([np.float32(v) for v in values], dtype=np.float32)


def log2f(n: int) -> np.float32:
    """log2f((float) n): glibc's log2f is correctly rounded, so the double log2 rounded to float32 equals it."""
    return np.float32(math.log2(float(np.float32(n))))


def c_stoi(text: str) -> int | None:
    """std::stoi: the leading integer of `text`, None where stoi would throw."""
    match = LEADING_INT.match(text)
    return int(match.group(0)) if match else None


def process_tensor_name(name: str) -> tuple[str, str]:
    """(layer, tensor) as llama.cpp's process_tensor_name splits a name (its quirks included: a 4-part
    `blk.N.kind.weight` keeps the whole name as `tensor`; a 5-part `blk.N.nextn.x.weight` gives `nextn.x`)."""
    parts = name.split(".")
    layer = next((parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "blk"), "")
    tensor = ""
    weight_at = next((i for i in range(1, len(parts)) if parts[i] == "weight"), None)
    if weight_at is not None:
        j = 0
        pieces = []
        while j < len(parts):
            if parts[j] == "blk":
                j += (1 if len(parts) > 4 else 2) + 1
                continue
            if j == weight_at:
                break
            pieces.append(parts[j])
            j += 1
        tensor = ".".join(pieces)
    return layer or "-", tensor or name


def _sequential_sum(values: np.ndarray) -> float:
    """Σ in element order, as a C `for` loop adding doubles (np.cumsum accumulates sequentially)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def _running_mean(values: np.ndarray) -> float:
    """mean += (v - mean)/n over the elements in order: the recurrence llama.cpp uses (not Σ/N)."""
    mean = 0.0
    for n, value in enumerate(values.tolist(), start=1):
        mean += (value - mean) / n
    return mean


def _per_column(entry, use_activations: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, inverse count) per column in expert-major order, for the experts with a count > 0 (double)."""
    counts = entry.counts.astype(np.float32)
    active = counts > 0
    inv_c = 1.0 / counts[active].astype(np.float64)
    source = entry.activation_sums if use_activations else entry.sums
    return source[active].astype(np.float64), inv_c


def vector_statistics(name: str, entry) -> TensorStats | None:
    """compute_vector_statistics: None when no expert has a count (llama.cpp then stores all zeros)."""
    legacy = entry.activation_sums is None
    squares, inv_c = _per_column(entry, use_activations=False)
    v_val = (squares * inv_c[:, None]).reshape(-1)
    if legacy:
        v = v_val
    else:
        activations, _ = _per_column(entry, use_activations=True)
        v = (activations * inv_c[:, None]).reshape(-1)
    finite = np.isfinite(v) & np.isfinite(v_val)
    v, v_val = v[finite], v_val[finite]
    n = int(v.size)
    if n == 0:
        return None
    exact = n <= EXACT_LIMIT
    total = _sequential_sum(v_val)
    mean = _running_mean(v) if exact else _sequential_sum(v) / n
    sum_energy = _sequential_sum(v_val[v_val > 0.0])
    diff = v - mean
    squared = diff * diff
    sum_sq_diff = _sequential_sum(squared)
    sum_cu_diff = _sequential_sum(squared * diff)
    sum_qd_diff = _sequential_sum(squared * diff * diff)
    entropy = 0.0
    if sum_energy > 0.0:
        p = np.maximum(0.0, v_val) * (1.0 / sum_energy)
        p = p[p > 1e-10]
        log2_inv = 1.0 / math.log(2.0)
        if exact:
            terms = np.array([-(x * math.log(x) * log2_inv) for x in p.tolist()], dtype=np.float64)
        else:
            terms = -(p * np.log(p) * log2_inv)
        entropy = _sequential_sum(terms)
    variance = sum_sq_diff / n if n > 1 else 0.0
    std = np.sqrt(np.float32(max(variance, 0.0)))
    skewness = kurtosis = np.float32(0.0)
    if std > np.float32(1e-10):
        m2 = sum_sq_diff / n
        skewness = np.float32(sum_cu_diff / n / (m2 * math.sqrt(m2)))
        kurtosis = np.float32(sum_qd_diff / n / (m2 * m2) - 3.0)
    return TensorStats(name=name, legacy=legacy, sum=total, mean=np.float32(mean), elements=n,
                       std_deviation=np.float32(std), skewness=skewness, kurtosis=kurtosis,
                       entropy=np.float32(entropy))


def nextn_layer_start(stats: list[TensorStats], n_layer_nextn: int) -> int:
    """First NextN/MTP block: from imatrix.n_layer_nextn when set, else the first block with nextn.* tensors."""
    max_blk, first = -1, NOT_A_LAYER
    for ts in stats:
        layer, tensor = process_tensor_name(ts.name)
        blk = c_stoi(layer)
        if blk is None:
            continue
        max_blk = max(max_blk, blk)
        if tensor.startswith("nextn."):
            first = min(first, blk)
    if n_layer_nextn > 0 and max_blk >= 0:
        return max(0, max_blk + 1 - n_layer_nextn)
    return first


def _averages(entry, use_activations: bool) -> np.ndarray | None:
    """compute_tensor_averages: float32 sum·(1/count) per column, NaN for experts without tokens."""
    source = entry.activation_sums if use_activations else entry.sums
    counts = entry.counts.astype(np.float32)
    if not (counts > 0).any():
        return None
    averages = np.full(source.shape, np.nan, dtype=np.float32)
    active = counts > 0
    scale = (np.float32(1.0) / counts[active]).astype(np.float32)
    averages[active] = source[active].astype(np.float32) * scale[:, None]
    return averages.reshape(-1)


def _previous(ts: TensorStats, by_name: dict[str, TensorStats], nextn_start: int) -> TensorStats | None | bool:
    """The same tensor in the nearest earlier layer (not crossing into the trunk from NextN layers); False = no layer."""
    layer, _ = process_tensor_name(ts.name)
    blk = c_stoi(layer)
    if blk is None or blk <= 0 or blk == nextn_start:
        return False
    first = nextn_start if blk > nextn_start else 0
    at = ts.name.find("blk." + layer)
    if at < 0:
        return False
    for prev in range(blk - 1, first - 1, -1):
        candidate = ts.name[:at] + f"blk.{prev}" + ts.name[at + len(layer) + 4:]
        if candidate in by_name:
            return by_name[candidate]
    return None


def compare_layers(stats: list[TensorStats], entries: dict, nextn_start: int, warn=None) -> None:
    """compute_tensor_statistics: fill gain, L2 distance, cosine, Pearson and covariance against the earlier layer."""
    by_name = {ts.name: ts for ts in stats}
    for ts in stats:
        prev = _previous(ts, by_name, nextn_start)
        if prev is False:
            continue
        if prev is None:
            if warn is not None:
                warn(f"compute_tensor_statistics: no preceding-layer tensor for '{ts.name}'")
            continue
        use_activations = not ts.legacy and not prev.legacy  # one side may lack activation sums: compare E[x²]
        current = _averages(entries[ts.name], use_activations)
        previous = _averages(entries[prev.name], use_activations)
        if current is None or previous is None or current.size != previous.size:
            continue
        both = np.isfinite(current) & np.isfinite(previous)
        c, p = current[both].astype(np.float64), previous[both].astype(np.float64)
        n = int(c.size)
        if n == 0:
            continue
        mean_c, mean_p = _sequential_sum(c) / n, _sequential_sum(p) / n
        dc, dp, delta = c - mean_c, p - mean_p, c - p
        ts.dot_prod, ts.norm1_sq, ts.norm2_sq = _sequential_sum(c * p), _sequential_sum(c * c), _sequential_sum(p * p)
        ts.l2_dist_sq = _sequential_sum(delta * delta)
        ts.cov_sum, ts.var_c_sum, ts.var_p_sum = _sequential_sum(dc * dp), _sequential_sum(dc * dc), _sequential_sum(dp * dp)
        ts.n_features = n
        ts.l2_dist = np.float32(math.sqrt(ts.l2_dist_sq))
        if n > 1:
            ts.covariance = np.float32(ts.cov_sum / n)
        ts.cossim = _bounded_ratio(ts.dot_prod, ts.norm1_sq, ts.norm2_sq)
        ts.pearson = _bounded_ratio(ts.cov_sum, ts.var_c_sum, ts.var_p_sum)
        if prev.sum > F32_1E_10:
            ts.gain = np.float32(math.sqrt(ts.sum / ts.elements) / math.sqrt(prev.sum / prev.elements))
            ts.sum_prev, ts.elements_prev = prev.sum, prev.elements
        else:
            ts.gain = np.float32(1.0) if ts.sum <= F32_1E_10 else F32_NAN


def _bounded_ratio(numerator: float, square_a: float, square_b: float) -> np.float32:
    """x/(√a·√b) clamped to [-1, 1] in float32; NaN when both a and b are 0, 0 when only one is."""
    if square_a > 0.0 and square_b > 0.0:
        value = np.float32(numerator / (math.sqrt(square_a) * math.sqrt(square_b)))
        return np.float32(min(max(value, np.float32(-1.0)), np.float32(1.0)))
    return F32_NAN if square_a == 0.0 and square_b == 0.0 else np.float32(0.0)


def all_statistics(entries: dict, n_layer_nextn: int = 0, warn=None) -> tuple[list[TensorStats], int]:
    """Statistics of every entry that has data, compared across layers; also returns the NextN start layer."""
    stats = [ts for name in sorted(entries) if (ts := vector_statistics(name, entries[name])) is not None]
    nextn_start = nextn_layer_start(stats, n_layer_nextn)
    if stats:
        compare_layers(stats, entries, nextn_start, warn)
    return stats, nextn_start


def stats_tensors(entries: dict, n_layer_nextn: int = 0) -> dict[str, np.ndarray]:
    """{name: the 12-value `.stats` tensor}: zeros for an entry without any counted token, as llama-imatrix writes."""
    stats, _ = all_statistics(entries, n_layer_nextn)
    by_name = {ts.name: ts.stats_vector() for ts in stats}
    return {name: by_name.get(name, np.zeros(len(STATS_SCHEMA), np.float32)) for name in entries}
