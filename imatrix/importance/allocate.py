"""`imatrix allocate`: choose each tensor's quant type under a file-size budget, with llama.cpp's own quantizer.

1. Which tensors llama-quantize quantizes comes from llama-quantize itself (`--dry-run` with every tensor forced to
   F32 and then F16: a tensor whose type changes in either run is quantizable), not from a copy of its rules.
2. Every quantizable tensor × candidate type (ne0 divisible by the type's block; types ggml quantizes only with an
   importance vector need the tensor's imatrix entry) is quantized with ggml (imatrix.importance.ggml_quant: the
   bytes llama-quantize writes), dequantized, and scored by the importance-weighted error
   Σ_e Σ_i E[a_i²]·‖(W − Q)[e, :, i]‖² (E[a²] from the calibration imatrix, or `--validation`'s). Large matrices are
   scored on evenly spaced rows and scaled to all rows (the error is a sum over rows, so the estimate is unbiased for
   any fixed row set; `max_rows` bounds the cost).
3. Errors become expected KLD through one factor per tensor group (the name without `blk.N.`): with a probe text,
   each group alone is quantized to its cheapest type and its KLD against the reference measured with
   llama-perplexity; factor = KLD / the group's error increase. Without a probe every factor is 1 (errors of
   different groups are then only roughly comparable; the recipe says so).
4. The budgeted choice (a multiple-choice knapsack) is solved by dynamic programming over the byte budget in units
   of `unit` bytes: exact when the unit is the gcd of all option sizes, otherwise sizes are rounded up (the result
   always fits) and the method says at which resolution.
5. File size to the byte: llama-quantize's metadata (the input's KV pairs plus the ones it adds, measured by ggml's
   own gguf code in imatrix.importance.gguf_size) plus every tensor's bytes padded to the file's alignment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader

from imatrix.files.imatrix_file import Imatrix
from imatrix.importance.ggml_quant import GgmlQuantizer, block_size, quant_type

# 256-wide types plus the 32-wide ones, the only choices for a tensor whose rows are not a multiple of 256
DEFAULT_TYPES = ("IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                 "Q6_K", "IQ4_NL", "Q4_0", "Q5_0", "Q5_1", "Q8_0")
# llama-quantize refuses these for a tensor without importance data (src/llama-quant.cpp "missing importance matrix
# for tensor ... in a very low-bit quantization"): ggml's own list plus IQ2_S, and IQ1_M except for the embeddings/head
LLAMA_QUANTIZE_NEEDS_IMATRIX = {GGMLQuantizationType.IQ2_S}
IQ1_M_WITHOUT_IMATRIX = {"token_embd.weight", "output.weight"}
DP_STATES = 200_000  # budget units the DP keeps (memory: tensors × states bytes for the back-pointers)
LAYER = re.compile(r"^blk\.\d+\.")
DRY_RUN_LINE = re.compile(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size =\s*[\d.]+ MiB"
                          r"(?: ->\s*[\d.]+ MiB \((\S+)\))?")


class AllocateError(ValueError):
    """Input that cannot be allocated; the message names the tensor, type or budget."""


@dataclass(frozen=True)
class Tensor:
    name: str
    columns: int  # ne0
    rows: int  # ne1
    n_mat: int  # ne2 (experts), 1 for 2-D weights
    source_type: GGMLQuantizationType

    @property
    def group(self) -> str:
        return LAYER.sub("", self.name)


@dataclass(frozen=True)
class Option:
    qtype: GGMLQuantizationType
    nbytes: int  # the tensor's data at this type (unpadded, as ggml_nbytes)
    error: float  # importance-weighted error, scaled to all rows


@dataclass
class Allocation:
    choice: dict[str, Option]
    predicted_file_bytes: int
    objective: float
    method: str
    factors: dict[str, float] = field(default_factory=dict)


def parse_dry_run(output: str) -> dict[str, tuple[str, str]]:
    """llama-quantize --dry-run's per-tensor lines → {name: (source type, final type)} (type names as printed)."""
    found = {}
    for match in DRY_RUN_LINE.finditer(output):
        name, source, final = match.groups()
        found[name] = (source.lower(), (final or source).lower())
    return found


def read_tensors(reader: GGUFReader) -> dict[str, Tensor]:
    tensors = {}
    for tensor in reader.tensors:
        dims = [int(d) for d in tensor.shape] + [1, 1]
        tensors[tensor.name] = Tensor(tensor.name, dims[0], dims[1], int(np.prod(dims[2:4])),
                                      GGMLQuantizationType(int(tensor.tensor_type)))
    return tensors


def candidate_types(tensor: Tensor, types: tuple[GGMLQuantizationType, ...], imatrix: Imatrix,
                    quantizer: GgmlQuantizer) -> list[GGMLQuantizationType]:
    """The types llama-quantize writes for this tensor exactly as asked (no fallback, no missing-imatrix abort)."""
    has_entry = tensor.name in imatrix.entries

    def needs_imatrix(qtype: GGMLQuantizationType) -> bool:
        if qtype == GGMLQuantizationType.IQ1_M:
            return tensor.name not in IQ1_M_WITHOUT_IMATRIX
        return quantizer.requires_imatrix(qtype) or qtype in LLAMA_QUANTIZE_NEEDS_IMATRIX

    return [t for t in types if tensor.columns % block_size(t) == 0 and (has_entry or not needs_imatrix(t))]


def importance_vectors(imatrix: Imatrix, tensor: Tensor) -> np.ndarray | None:
    """What llama-quantize hands ggml: per matrix sum/count, 1.0 for a matrix (expert) that was never counted."""
    entry = imatrix.entries.get(tensor.name)
    if entry is None:
        return None
    sums = np.asarray(entry.sums, dtype=np.float64).reshape(tensor.n_mat, tensor.columns)
    counts = np.asarray(entry.counts, dtype=np.float64).reshape(-1)[:tensor.n_mat, None]
    means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), 1.0)
    return means.astype(np.float32)


def error_energy(statistics: Imatrix, tensor: Tensor) -> np.ndarray:
    """E[a²] per matrix and column for the error; 0 for an expert never routed; 1 where the imatrix has no entry
    (token embeddings, an untied head without --process-output): plain squared weight error."""
    entry = statistics.entries.get(tensor.name)
    if entry is None:
        return np.ones((tensor.n_mat, tensor.columns), dtype=np.float64)
    sums = np.asarray(entry.sums, dtype=np.float64).reshape(tensor.n_mat, tensor.columns)
    counts = np.asarray(entry.counts, dtype=np.float64).reshape(-1)[:tensor.n_mat, None]
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def sampled_rows(rows: int, max_rows: int) -> np.ndarray:
    """Evenly spaced row indices (all rows when there are at most max_rows)."""
    if rows <= max_rows:
        return np.arange(rows)
    return np.unique(np.linspace(0, rows - 1, max_rows).round().astype(np.int64))


def tensor_weights(reader: GGUFReader, tensor: Tensor, rows: np.ndarray) -> np.ndarray:
    """Float32 weights (n_mat, len(rows), columns) as llama-quantize sees them: the stored tensor dequantized."""
    from gguf.quants import dequantize

    stored = next(t for t in reader.tensors if t.name == tensor.name)
    data = np.asarray(stored.data)
    if data.ndim == 1:  # F32/F16 vectors keep no row structure; quantizable tensors are ≥ 2-D
        data = data.reshape(1, -1)
    data = data.reshape(tensor.n_mat, tensor.rows, -1)[:, rows]
    values = dequantize(np.ascontiguousarray(data), tensor.source_type)
    return np.asarray(values, dtype=np.float32).reshape(tensor.n_mat, len(rows), tensor.columns)


def measure_options(reader: GGUFReader, tensors: list[Tensor], types: tuple[GGMLQuantizationType, ...],
                    imatrix: Imatrix, statistics: Imatrix, quantizer: GgmlQuantizer, *, max_rows: int = 1024,
                    threads: int = 1, on_done: Callable[[int], None] | None = None) -> dict[str, list[Option]]:
    """Every tensor's options: bytes and importance-weighted error of each candidate type (threads share ggml)."""
    def measure(tensor: Tensor) -> list[Option]:
        rows = sampled_rows(tensor.rows, max_rows)
        weights = tensor_weights(reader, tensor, rows)
        vectors = importance_vectors(imatrix, tensor)
        energy = error_energy(statistics, tensor)
        scale = tensor.rows / len(rows)
        options = []
        for qtype in candidate_types(tensor, types, imatrix, quantizer):
            restored = quantizer.roundtrip(qtype, weights, vectors)
            column_error = np.square(weights.astype(np.float64) - restored).sum(axis=1)
            error = float((column_error * energy).sum()) * scale
            options.append(Option(qtype, tensor.n_mat * tensor.rows * quantizer.row_size(qtype, tensor.columns),
                                  error))
        if not options:
            raise AllocateError(f"{tensor.name} ({tensor.columns} columns): none of the candidate types fits it; "
                                "add a type whose block size divides the columns (e.g. Q8_0, IQ4_NL, Q5_0)")
        if on_done is not None:
            on_done(1)
        return options

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(measure, tensors))
    return {tensor.name: options for tensor, options in zip(tensors, results)}


def padded(nbytes: int, alignment: int) -> int:
    return -(-nbytes // alignment) * alignment


def solve(options: dict[str, list[Option]], budget: int, factors: dict[str, float], groups: dict[str, str],
          alignment: int = 32) -> tuple[dict[str, Option], float, str]:
    """Minimise Σ factor[group]·error subject to Σ padded bytes ≤ budget (one option per tensor), by DP."""
    names = sorted(options)
    sizes = [[padded(o.nbytes, alignment) for o in options[n]] for n in names]
    costs = [[factors.get(groups[n], 1.0) * o.error for o in options[n]] for n in names]
    smallest = sum(min(s) for s in sizes)
    if smallest > budget:
        raise AllocateError(f"the budget leaves {budget} bytes for the quantized tensors; even the smallest types "
                            f"need {smallest} bytes: raise the target or add smaller --types")
    gcd = math.gcd(*(s for row in sizes for s in row))
    unit = max(gcd, -(-budget // DP_STATES))
    capacity = budget // unit
    units = [[-(-s // unit) for s in row] for row in sizes]  # rounded up: any DP solution fits the exact budget
    best = np.zeros(capacity + 1)  # best[c]: least cost of the tensors so far within c units
    back = np.zeros((len(names), capacity + 1), dtype=np.int16)
    for index, (row_units, row_costs) in enumerate(zip(units, costs)):
        new = np.full(capacity + 1, np.inf)
        for choice, (width, cost) in enumerate(zip(row_units, row_costs)):
            if width > capacity:
                continue
            candidate = np.full(capacity + 1, np.inf)
            candidate[width:] = best[:capacity + 1 - width] + cost
            better = candidate < new
            new[better] = candidate[better]
            back[index, better] = choice
        best = new
    if not np.isfinite(best[capacity]):
        raise AllocateError(f"no choice of types fits {budget} bytes at a resolution of {unit} bytes; raise the "
                            "target or add smaller --types")
    chosen, remaining = {}, capacity
    for index in range(len(names) - 1, -1, -1):
        choice = int(back[index, remaining])
        chosen[names[index]] = options[names[index]][choice]
        remaining -= units[index][choice]
    method = "exact (DP over the gcd of all sizes)" if unit == gcd else f"DP at {unit}-byte resolution (sizes rounded up)"
    return dict(sorted(chosen.items())), float(best[capacity]), method


def recipe_lines(choice: dict[str, Option]) -> list[str]:
    """llama-quantize --tensor-type-file lines: anchored, escaped regexes (it regex-searches lowercased names)."""
    return [f"^{re.escape(name).lower()}$={option.qtype.name.lower()}" for name, option in choice.items()]


def parse_size(text: str) -> int:
    """'10.2GiB', '800MB', '123456' → bytes (binary units for *iB, decimal for kB/MB/GB)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgGtT]i?[bB]|[bB])?\s*", text)
    if not match:
        raise AllocateError(f"{text!r}: expected a size like 10.2GiB, 800MB or a byte count")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    scale = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}[unit]
    return int(number * scale)


def as_types(names: str) -> tuple[GGMLQuantizationType, ...]:
    try:
        return tuple(dict.fromkeys(quant_type(n.strip()) for n in names.split(",") if n.strip()))
    except ValueError as error:
        raise AllocateError(str(error)) from None
