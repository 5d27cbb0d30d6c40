"""Hybrid importance: mix E[a²] with ‖W[:,i]‖²·E[a²], and the raw sidecar GGUF that lets α change without a GPU.

The sidecar is an imatrix-layout GGUF with its own general.type (RAW_TYPE) and one more tensor per entry,
`<name>.col_energy` = ‖W[:,i]‖² per expert and input column. Its in_sum2/counts/in_sum are the plain collection, so
llama-quantize and `read_imatrix` also read it as the plain (α = 0-shaped) imatrix. Mixing changes only Σx²: the
activation sums Σx stay those measured.
"""

from __future__ import annotations

import os

import numpy as np

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, ImatrixFileError, read_gguf_tensors, write_gguf_tensors

RAW_TYPE = "imatrix-hybrid-raw"
ENERGY_SUFFIX = ".col_energy"


def write_raw(imatrix: Imatrix, column_energy: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write the raw sidecar: the plain sums/counts plus `<name>.col_energy` for every entry (atomic)."""
    energy = {name: _energy_for(name, imatrix.entries[name], column_energy) for name in imatrix.entries}
    write_gguf_tensors(imatrix, path, general_type=RAW_TYPE, extra={ENERGY_SUFFIX: energy})


def read_raw(path: str | os.PathLike) -> tuple[Imatrix, dict[str, np.ndarray]]:
    """Read a raw sidecar back into the plain imatrix and {name: (n_counts, columns) float32 column energy}."""
    imatrix, general_type, extra = read_gguf_tensors(path)
    if general_type != RAW_TYPE:
        raise ImatrixFileError(
            f"{path}: general.type is {general_type!r}, not {RAW_TYPE!r}; give the raw sidecar written by "
            "`imatrix collect --hybrid`, not a finished imatrix"
        )
    stored = extra.get(ENERGY_SUFFIX, {})
    missing = sorted(set(imatrix.entries) - set(stored))
    if missing:
        raise ImatrixFileError(f"{path}: no {ENERGY_SUFFIX} tensor for {missing[0]} ({len(missing)} entries lack one)")
    energy = {}
    for name, entry in imatrix.entries.items():
        try:
            energy[name] = _energy_for(name, entry, stored)
        except ValueError as exc:
            raise ImatrixFileError(f"{path}: {exc}") from None
    return imatrix, energy


def mix(imatrix: Imatrix, column_energy: dict[str, np.ndarray], alpha: float | dict[str, float]) -> Imatrix:
    """Imatrix whose sum/count is (1-α)·m/mean(m) + α·h/mean(h) per tensor and expert (m = E[a²], h = ‖W[:,i]‖²·m)."""
    entries = {}
    for name, entry in imatrix.entries.items():
        weight = _alpha_for(name, alpha)
        energy = _energy_for(name, entry, column_energy).astype(np.float64)
        counts = entry.counts.astype(np.float64)[:, None]
        active = counts > 0
        means = np.divide(entry.sums.astype(np.float64), counts, out=np.zeros(entry.sums.shape), where=active)
        target = (1.0 - weight) * _normalised(means) + weight * _normalised(energy * means)
        sums = np.where(active, target * counts, 0.0)
        entries[name] = ImatrixEntry(sums.astype(np.float32), entry.counts.copy(), entry.activation_sums)  # Σx as is
    return Imatrix(entries, list(imatrix.datasets), imatrix.chunk_count, imatrix.chunk_size, source_format="memory")


def _normalised(rows: np.ndarray) -> np.ndarray:
    """Divide each row (expert) by its mean over columns; a row with mean 0 stays 0."""
    row_means = rows.mean(axis=1, keepdims=True)
    return np.divide(rows, row_means, out=np.zeros_like(rows), where=row_means > 0)


def _alpha_for(name: str, alpha: float | dict[str, float]) -> float:
    if isinstance(alpha, dict):
        if name not in alpha:
            raise ValueError(f"no alpha given for tensor {name}")
        value = float(alpha[name])
    else:
        value = float(alpha)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha {value} for {name} is outside [0, 1]")
    return value


def _energy_for(name: str, entry: ImatrixEntry, column_energy: dict[str, np.ndarray]) -> np.ndarray:
    """The entry's column energy shaped like its sums; a missing or wrongly sized array is an error naming the tensor."""
    if name not in column_energy:
        raise ValueError(f"no column energy for tensor {name}")
    energy = np.asarray(column_energy[name], dtype=np.float32)
    if energy.size != entry.n_values:
        raise ValueError(f"column energy of {name} has {energy.size} values, its imatrix entry {entry.n_values}")
    if not np.isfinite(energy).all() or (energy < 0).any():
        raise ValueError(f"column energy of {name} has negative or non-finite values")
    return energy.reshape(entry.sums.shape)
