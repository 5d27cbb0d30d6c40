"""Merging imatrices like `llama-imatrix --in-file A --in-file B` (spec §4.3, §14.2): sums and counts added,
activation sums kept only where every input has them, chunk count rounded (rows_to_chunks)."""

from __future__ import annotations

import warnings

import numpy as np

from imatrix.files.imatrix_file import Imatrix, ImatrixEntry, ImatrixFileError, rows_to_chunks


def merge(imatrices: list[Imatrix], *, chunk_size: int | None = None, labels: list[str] | None = None) -> Imatrix:
    """Add sums and counts like b11434's llama-imatrix --in-file (spec §4.3, §14.2); chunk_count rounded (rows_to_chunks).

    An entry keeps its activation sums (in_sum) only when every input that has the entry has them, as llama.cpp does;
    unlike llama.cpp, which clears them silently, a warning names the entries and the inputs that lack them.
    `labels` name the inputs in messages (default: "input N").
    """
    if not imatrices:
        raise ValueError("merge needs at least one imatrix")
    labels = labels or [f"input {i}" for i in range(1, len(imatrices) + 1)]
    chunk_size = int(chunk_size or imatrices[0].chunk_size)
    if chunk_size <= 0:
        raise ImatrixFileError(f"chunk size {chunk_size} must be positive")
    sums: dict[str, np.ndarray] = {}
    activations: dict[str, np.ndarray | None] = {}
    counts: dict[str, np.ndarray] = {}
    had: dict[str, bool] = {}  # entry → some input had its in_sum
    lacking: dict[str, list[str]] = {}  # entry → the inputs that have it without in_sum
    for imatrix, label in zip(imatrices, labels):
        _check_chunk_size(imatrix, label, chunk_size)
        for name in sorted(imatrix.entries):
            entry = imatrix.entries[name]
            if entry.activation_sums is None:
                lacking.setdefault(name, []).append(label)
            else:
                had[name] = True
            if name not in sums:
                sums[name] = entry.sums.reshape(-1) + np.float32(0)  # 0 + x, as llama.cpp's zeroed accumulators
                activations[name] = None if entry.activation_sums is None else entry.activation_sums.reshape(-1) + np.float32(0)
                counts[name] = np.rint(entry.counts.astype(np.float64)).astype(np.int64)
                continue
            if sums[name].size != entry.n_values:
                raise ImatrixFileError(
                    f"{name}: {label} has {entry.n_values} values but the inputs before it have "
                    f"{sums[name].size}; these imatrices are for different models"
                )
            sums[name] += entry.sums.reshape(-1)  # float32 accumulation, as llama.cpp does
            if activations[name] is not None and entry.activation_sums is not None:
                activations[name] += entry.activation_sums.reshape(-1)
            else:
                activations[name] = None
            counts[name] = _add_counts(name, label, counts[name], entry.counts)
    _warn_dropped_activations(had, lacking)
    entries = {
        name: ImatrixEntry(sums[name].reshape(counts[name].size, -1), counts[name].astype(np.float32),
                           activations[name])
        for name in sums
    }
    max_count = max(int(c.max()) for c in counts.values())
    datasets = [name for imatrix in imatrices for name in imatrix.datasets]
    nextn = [imatrix.n_layer_nextn for imatrix in imatrices if imatrix.n_layer_nextn > 0]
    if len(set(nextn)) > 1:
        warnings.warn(f"NextN layer counts differ between the inputs ({sorted(set(nextn))}); using {nextn[0]}",
                      stacklevel=2)
    return Imatrix(entries, datasets, rows_to_chunks(max_count, chunk_size), chunk_size, source_format="memory",
                   n_layer_nextn=nextn[0] if nextn else 0)


def _check_chunk_size(imatrix: Imatrix, label: str, chunk_size: int) -> None:
    if imatrix.source_format == "gguf" and imatrix.chunk_size != chunk_size:
        warnings.warn(f"{label}: chunk size {imatrix.chunk_size} != {chunk_size}; the merged file says {chunk_size} "
                      "(llama-imatrix also keeps the first)", stacklevel=3)


def _warn_dropped_activations(had: dict[str, bool], lacking: dict[str, list[str]]) -> None:
    """Name the entries that lost their in_sum because some inputs had it and others did not, and those inputs."""
    dropped = sorted(name for name, labels in lacking.items() if labels and had.get(name))
    if not dropped:
        return
    inputs = sorted({label for name in dropped for label in lacking[name]})
    warnings.warn(f"activation sums (in_sum) dropped for {len(dropped)} entries (first: {dropped[0]}): "
                  f"{', '.join(inputs)} {'has' if len(inputs) == 1 else 'have'} none for them, and a merged in_sum "
                  "needs every input's (as in llama-imatrix); those entries' statistics use the legacy layout",
                  stacklevel=3)


def _add_counts(name: str, label: str, have: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Add token counts; a single count is broadcast to the other side's expert count (old files, legacy inputs)."""
    new = np.rint(new.astype(np.float64)).astype(np.int64)
    if have.size != new.size:
        if have.size == 1:
            have = np.full(new.size, have[0], np.int64)
        elif new.size == 1:
            new = np.full(have.size, new[0], np.int64)
        else:
            raise ImatrixFileError(
                f"{name}: {label} has {new.size} expert counts but the inputs before it have {have.size}"
            )
    return have + new
