"""Hybrid α gate: per tensor, pick the mix α of E[a²] and ‖W[:,i]‖²·E[a²] whose quantization error on held-out
(validation) activations is lowest.

For each tensor, each requested llama-quantize type and each α in the grid: importance = hybrid.mix(calibration, α)
as llama-quantize will read it (sum/count), quantize the model's float weights to the tensor's *final* type with
llama.cpp's own quantizer (imatrix.importance.ggml_quant), dequantize, and score Σ_i E_val[a_i²]·‖(W − Q)[:,i]‖². The final
type of every tensor comes from a real llama-quantize output (see `final_types_*`), so fallbacks (640 columns →
IQ4_NL / Q5_0), ftype mixtures (first ffn_down at Q2_K, attn_v bumps) and tensors copied unchanged are all scored as
llama-quantize will really treat them.

Scope: one α per tensor (hybrid.mix takes one α per tensor); for MoE tensors the error is summed over experts, and an
expert never routed on the validation text weighs nothing. Weights come from a GGUF (the file llama-quantize will
read); Hugging Face checkpoints are not read here.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from imatrix.files.imatrix_file import Imatrix, write_gguf
from imatrix.importance.ggml_quant import block_size, quant_type
from imatrix.importance.hybrid import mix

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
UNQUANTIZED = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}

# A roundtrip turns float weights (n_mat, rows, cols) + importance (n_mat, cols) into the dequantized weights.
Roundtrip = Callable[[GGMLQuantizationType, np.ndarray, "np.ndarray | None"], np.ndarray]


class GateError(ValueError):
    """Inputs the gate cannot use; the message names the file, tensor or option."""


@dataclass(frozen=True)
class GateOptions:
    """How to gate: α grid, CPU threads for the quantizer, torch device for the error sums."""

    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    threads: int = max(1, os.cpu_count() or 1)
    device: str = "cpu"


@dataclass(frozen=True)
class TensorTarget:
    """One tensor under one requested llama-quantize type: the type it ends up with and how that was found."""

    name: str
    requested: str
    final_type: GGMLQuantizationType
    source_type: GGMLQuantizationType
    type_method: str

    @property
    def copied(self) -> bool:
        """llama-quantize copies a tensor already stored in its final type (llama-quant.cpp: cur_type == new_type)."""
        return self.final_type == self.source_type


@dataclass(frozen=True)
class TensorScore:
    """Validation error of one target at every α of the grid."""

    target: TensorTarget
    errors: tuple[float, ...]


@dataclass(frozen=True)
class GateResult:
    """All scores, the α chosen per tensor, and which quantizer scored them ("ggml" or "rtn-proxy")."""

    alphas: tuple[float, ...]
    scores: list[TensorScore]
    chosen: dict[str, float]
    quantizer: str


# ------------------------------------------------------------------------------------------------ final types


def final_types_from_gguf(path: str | os.PathLike) -> dict[str, GGMLQuantizationType]:
    """Tensor types of a quantized GGUF (e.g. llama-quantize's output): the exact final type of every tensor."""
    reader = GGUFReader(path)
    return {tensor.name: GGMLQuantizationType(int(tensor.tensor_type)) for tensor in reader.tensors}


def final_types_by_llama_quantize(
    model: Path, imatrix: Imatrix, requested: str, threads: int
) -> dict[str, GGMLQuantizationType]:
    """Run llama-quantize (with the plain calibration imatrix, since some choices depend on having one) into a
    temporary file and read back the type of every tensor; ~20 s for Gemma 3 270M on 2 cores."""
    from imatrix.llamacpp import tools as llamacpp

    with tempfile.TemporaryDirectory(prefix="imatrix-gate-") as folder:
        imatrix_path = Path(folder) / "plain.imatrix.gguf"
        quantized = Path(folder) / f"types-{requested}.gguf"
        write_gguf(imatrix, imatrix_path)
        llamacpp.quantize(model, quantized, requested, imatrix=imatrix_path, threads=threads)
        return final_types_from_gguf(quantized)


# llama-quant.cpp: llama_ftype_get_default_type for the ftypes whose name is not a ggml type name.
FTYPE_DEFAULT_TYPE = {
    "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K", "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S", "IQ3_XS": "IQ3_S", "IQ3_M": "IQ3_S",
}
# llama-quant.cpp: tensor_type_fallback, used when a tensor's columns are not a multiple of the block size.
FALLBACK_TYPE = {
    **{name: "IQ4_NL" for name in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS")},
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}


def approximate_final_types(model: GGUFReader, requested: str) -> dict[str, GGMLQuantizationType]:
    """Without llama-quantize: the ftype's default type with llama.cpp's column-divisibility fallback, ignoring the
    per-tensor mixture rules (attn_v bumps, first ffn_down, embeddings). Labelled "approximate" in every output."""
    base = quant_type(FTYPE_DEFAULT_TYPE.get(requested.upper(), requested))
    types = {}
    for tensor in model.tensors:
        columns = int(tensor.shape[0])
        chosen = base
        if columns % block_size(chosen):
            chosen = quant_type(FALLBACK_TYPE.get(chosen.name, "F16"))
            if columns % block_size(chosen):
                chosen = GGMLQuantizationType.F16
        types[tensor.name] = chosen
    return types


def targets_for(
    model: GGUFReader, imatrix: Imatrix, requested: str, final_types: dict[str, GGMLQuantizationType], method: str
) -> list[TensorTarget]:
    """One TensorTarget per imatrix entry; an entry without a model tensor or final type is an error naming it."""
    tensors = {tensor.name: tensor for tensor in model.tensors}
    targets = []
    for name in sorted(imatrix.entries):
        if name not in tensors:
            raise GateError(f"imatrix tensor {name} is not in the model")
        if name not in final_types:
            raise GateError(f"no final type for {name} under {requested} (the quantized reference lacks it)")
        source = GGMLQuantizationType(int(tensors[name].tensor_type))
        targets.append(TensorTarget(name, requested, final_types[name], source, method))
    return targets


# ------------------------------------------------------------------------------------------------ weights and stats


def model_weights(model: GGUFReader, name: str) -> np.ndarray:
    """Float32 weights (n_mat, rows, columns) as llama-quantize sees them: the stored tensor dequantized."""
    tensor = next((t for t in model.tensors if t.name == name), None)
    if tensor is None:
        raise GateError(f"tensor {name} is not in the model")
    qtype = GGMLQuantizationType(int(tensor.tensor_type))
    values = np.array(dequantize(np.asarray(tensor.data), qtype), dtype=np.float32)  # a writable copy for torch
    dims = [int(d) for d in tensor.shape]  # ggml order: columns, rows, experts...
    return values.reshape(int(np.prod(dims[2:], dtype=np.int64)), dims[1], dims[0])


def per_matrix(name: str, values: np.ndarray, n_mat: int, columns: int) -> np.ndarray:
    """Reshape an imatrix entry's (n_counts, n_values) array to (n_mat, columns), checking its size."""
    if values.size != n_mat * columns:
        raise GateError(f"{name}: imatrix entry has {values.size} values, the weight has {n_mat}×{columns}")
    return np.ascontiguousarray(values, dtype=np.float32).reshape(n_mat, columns)


def validation_energy(validation: Imatrix, name: str, n_mat: int, columns: int) -> np.ndarray:
    """E_val[a²] per matrix and column; an expert never routed on the validation text weighs 0 (it saw no input)."""
    if name not in validation.entries:
        raise GateError(f"validation statistics lack tensor {name}")
    entry = validation.entries[name]
    counts = entry.counts[:, None]
    means = np.divide(entry.sums, counts, out=np.zeros_like(entry.sums), where=counts > 0)
    return per_matrix(name, means, n_mat, columns)


# ------------------------------------------------------------------------------------------------ scoring


def weighted_error(weights, dequantized: np.ndarray, energy: np.ndarray, device: str) -> float:
    """Σ_e Σ_i energy[e, i]·‖(W − Q)[e, :, i]‖², summed in float64 on `device` (weights may already be a tensor)."""
    import torch

    reference = weights if isinstance(weights, torch.Tensor) else torch.from_numpy(weights).to(device)
    difference = reference.double() - torch.from_numpy(dequantized).to(device).double()
    column_error = difference.square().sum(dim=-2)
    return float((column_error * torch.from_numpy(energy).to(device).double()).sum())


def score_target(
    target: TensorTarget, weights: np.ndarray, vectors: list[np.ndarray], energy: np.ndarray,
    roundtrip: Roundtrip, device: str,
) -> TensorScore:
    """Errors of one tensor at every α (vectors[k] = importance at alphas[k]); copied tensors score 0 at every α."""
    if target.copied:
        return TensorScore(target, tuple(0.0 for _ in vectors))
    import torch

    reference = torch.from_numpy(weights).to(device)
    importance_used = target.final_type not in UNQUANTIZED
    errors = []
    for vector in vectors:
        dequantized = roundtrip(target.final_type, weights, vector if importance_used else None)
        errors.append(weighted_error(reference, dequantized, energy, device))
    return TensorScore(target, tuple(errors))


def choose_alpha(alphas: tuple[float, ...], scores: list[TensorScore]) -> float:
    """α with the lowest error; several types are combined as Σ_t err_t(α)/err_t(α₀); ties go to the smaller α."""
    total = np.zeros(len(alphas))
    for score in scores:
        errors = np.asarray(score.errors, dtype=np.float64)
        total += errors / errors[0] if errors[0] > 0 else errors
    return alphas[int(np.argmin(total))]  # argmin returns the first (smallest) α among equal totals


def gate(
    calibration: Imatrix,
    column_energy: dict[str, np.ndarray],
    validation: Imatrix,
    model: GGUFReader,
    targets: list[TensorTarget],
    roundtrip: Roundtrip,
    options: GateOptions,
    quantizer: str,
    progress: Callable[[int], None] | None = None,
) -> GateResult:
    """Score every target at every α (quantizer on `options.threads` CPU threads) and pick α per tensor."""
    alphas = tuple(sorted(set(options.alphas)))
    mixes = [mix(calibration, column_energy, alpha) for alpha in alphas]

    def job(target: TensorTarget) -> TensorScore:
        weights = model_weights(model, target.name)
        n_mat, _, columns = weights.shape
        vectors = [per_matrix(target.name, m.entries[target.name].means(), n_mat, columns) for m in mixes]
        energy = validation_energy(validation, target.name, n_mat, columns)
        return score_target(target, weights, vectors, energy, roundtrip, options.device)

    results: dict[tuple[str, str], TensorScore] = {}
    with ThreadPoolExecutor(max_workers=max(1, options.threads)) as pool:
        futures = {pool.submit(job, target): target for target in targets}
        for future in as_completed(futures):
            target = futures[future]
            results[(target.name, target.requested)] = future.result()
            if progress is not None:
                progress(1)
    scores = [results[key] for key in sorted(results)]
    by_tensor: dict[str, list[TensorScore]] = {}
    for score in scores:
        by_tensor.setdefault(score.target.name, []).append(score)
    chosen = {name: choose_alpha(alphas, group) for name, group in by_tensor.items()}
    return GateResult(alphas, scores, chosen, quantizer)


def gated_imatrix(calibration: Imatrix, column_energy: dict[str, np.ndarray], result: GateResult) -> Imatrix:
    """The imatrix to hand llama-quantize: each tensor mixed at its chosen α (entries not gated keep α = 0)."""
    alphas = {name: result.chosen.get(name, 0.0) for name in calibration.entries}
    return mix(calibration, column_energy, alphas)


# ------------------------------------------------------------------------------------------------ RTN proxy


def rtn_bits(qtype: GGMLQuantizationType) -> int:
    """Bit width the proxy uses for a ggml type: floor of its bits per weight (IQ2_XS 2.31 → 2, Q4_K 4.5 → 4)."""
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    return min(8, max(2, math.floor(size * 8 / block)))


def rtn_roundtrip(qtype: GGMLQuantizationType, weights: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    """Documented proxy, NOT llama.cpp's quantizer: symmetric round-to-nearest in blocks of 32 columns at
    `rtn_bits(qtype)` bits, the block scale picked from 13 candidates (0.6–1.2 × max|w|/2^(b−1)) by the
    importance-weighted squared error Σ_j imp_j·(w_j − s·q_j)². F32/F16/BF16 are only rounded to their precision."""
    qtype = quant_type(qtype)
    if qtype in UNQUANTIZED:
        dtype = np.float16 if qtype == GGMLQuantizationType.F16 else np.float32  # BF16 is left unrounded
        return weights.astype(dtype).astype(np.float32)
    n_mat, rows, columns = weights.shape
    if columns % 32:
        raise GateError(f"rtn proxy needs columns divisible by 32, got {columns}")
    levels = 2 ** (rtn_bits(qtype) - 1)
    imp = np.ones((n_mat, columns), np.float32) if importance is None else np.asarray(importance, np.float32)
    blocks = weights.reshape(n_mat, rows, columns // 32, 32).astype(np.float64)
    block_imp = np.broadcast_to(imp.reshape(n_mat, 1, columns // 32, 32), blocks.shape)
    amax = np.abs(blocks).max(axis=-1, keepdims=True)
    best = np.zeros_like(blocks)
    best_error = np.full(amax.shape, np.inf)
    for factor in np.linspace(0.6, 1.2, 13):
        scale = np.where(amax > 0, amax * factor / levels, 1.0)
        candidate = np.clip(np.rint(blocks / scale), -levels, levels - 1) * scale
        error = (block_imp * (blocks - candidate) ** 2).sum(axis=-1, keepdims=True)
        better = error < best_error
        best = np.where(better, candidate, best)
        best_error = np.where(better, error, best_error)
    return best.reshape(weights.shape).astype(np.float32)
