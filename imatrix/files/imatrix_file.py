"""llama.cpp importance-matrix files: the in-memory form and GGUF / legacy `.dat` read and write (merging: merge.py).

Contract: ../shared/docs/IMATRIX_SPEC.md §4 (formats), §4.3 (merge), §5.1 (how llama-quantize turns sums into
importance), §12 (gguf-py pitfalls), §14 (what b11434 adds: `.in_sum`, `.stats`, `imatrix.stats_schema`,
`imatrix.n_layer_nextn`, rounded chunk counts). GGUF goes through gguf.GGUFWriter / gguf.GGUFReader; the legacy byte
layout is in `imatrix.files.legacy_dat`, the `.stats` numbers in `imatrix.files.tensor_stats`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFType, GGUFValueType, GGUFWriter, Keys

from calibkit.atomic import atomic_path
from imatrix.files import legacy_dat
from imatrix.files.tensor_stats import STATS_SCHEMA, stats_tensors

SUMS_SUFFIX = ".in_sum2"
COUNTS_SUFFIX = ".counts"
ACTIVATIONS_SUFFIX = ".in_sum"
STATS_SUFFIX = ".stats"
# b11434's keys (common/imatrix-loader.h); gguf-py's Keys.IMatrix does not have them yet
KEY_STATS_SCHEMA = "imatrix.stats_schema"
KEY_N_LAYER_NEXTN = "imatrix.n_layer_nextn"
GGUF_MAGIC = b"GGUF"
DEFAULT_CHUNK_SIZE = 512  # llama-imatrix's default -c, used to read .dat files (spec §4.3)


class ImatrixFileError(Exception):
    """An imatrix file (or a set of them) is unusable; the message names the file or tensor and what is wrong."""


def rows_to_chunks(n_rows: int, chunk_size: int) -> int:
    """llama-imatrix's chunk count for a token-row count: rounded to nearest, (n + c/2) // c (b11434)."""
    return (int(n_rows) + int(chunk_size) // 2) // int(chunk_size)


@dataclass
class ImatrixEntry:
    """Raw statistics of one weight: Σx² per input column and the token rows they came from.

    `sums` is (n_counts, n_columns) expert-major; `counts` is (n_counts,). Dense weights have one count. A 3-D weight
    used through plain MUL_MAT (one count for all slices) is stored as a single row of n_mat·ne0 columns, exactly as
    llama-imatrix writes it. `activation_sums` is Σx (signed) in the same shape (b11434's `.in_sum`), or None where
    the source did not have it (older llama.cpp, .dat files, merges with such files).
    """

    sums: np.ndarray
    counts: np.ndarray
    activation_sums: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.sums = np.ascontiguousarray(self.sums, dtype=np.float32)
        self.counts = np.ascontiguousarray(self.counts, dtype=np.float32).reshape(-1)
        if self.sums.ndim == 1 or (self.counts.size == 1 and self.sums.ndim == 2):
            self.sums = self.sums.reshape(1, -1)  # one count: all slices form one row, as llama-imatrix stores it
        if self.sums.ndim != 2 or self.sums.shape[0] != self.counts.shape[0] or self.sums.size == 0:
            raise ValueError(f"sums {self.sums.shape} do not match counts {self.counts.shape}")
        if self.activation_sums is not None:
            activations = np.ascontiguousarray(self.activation_sums, dtype=np.float32)
            if activations.size != self.sums.size:
                raise ValueError(f"activation sums {activations.shape} do not match sums {self.sums.shape}")
            self.activation_sums = activations.reshape(self.sums.shape)

    @property
    def n_values(self) -> int:
        return int(self.sums.size)

    def means(self) -> np.ndarray:
        """Per-column mean of x² in float32 exactly as llama-quantize computes it: sum/count, 1.0 where count == 0."""
        ones = np.ones_like(self.sums)
        counts = self.counts[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts > 0, self.sums / np.where(counts > 0, counts, 1), ones).astype(np.float32)


@dataclass
class Imatrix:
    """A whole imatrix: entries keyed by GGUF tensor name (with ".weight"), plus llama-imatrix's metadata."""

    entries: dict[str, ImatrixEntry]
    datasets: list[str]
    chunk_count: int
    chunk_size: int
    source_format: str = "gguf"  # what it was read from: "gguf", "dat" or "memory"
    notes: list[str] = field(default_factory=list)  # non-fatal findings of the reader, for `inspect`
    n_layer_nextn: int = 0  # how many of the top blocks are NextN/MTP layers (imatrix.n_layer_nextn), 0 = none

    def without_activations(self) -> list[str]:
        """Names of the entries that have no activation sums (in_sum)."""
        return sorted(name for name, entry in self.entries.items() if entry.activation_sums is None)


# ----------------------------------------------------------------------------------------------------- GGUF writing


def write_gguf(imatrix: Imatrix, path: str | os.PathLike) -> None:
    """Write the GGUF imatrix b11434's llama-imatrix writes, byte for byte for the same sums (spec §14.1)."""
    write_gguf_tensors(imatrix, path, general_type=GGUFType.IMATRIX)


def write_gguf_tensors(
    imatrix: Imatrix,
    path: str | os.PathLike,
    *,
    general_type: str,
    extra: dict[str, dict[str, np.ndarray]] | None = None,
) -> None:
    """Write an imatrix-layout GGUF; `extra[suffix][name]` adds `<name><suffix>` tensors after each entry's own.

    KV in b11434's order: general.type, imatrix.datasets, chunk_count (u32), chunk_size (u32), n_layer_nextn (u32, only
    when > 0), stats_schema. Per entry, names sorted: in_sum2, counts, in_sum (when present), stats.
    """
    if not imatrix.datasets or not all(imatrix.datasets):
        raise ImatrixFileError(
            f"{path}: no dataset name to store; llama-quantize refuses an imatrix without imatrix.datasets "
            "(give the calibration file name)"
        )
    for counter in ("chunk_count", "chunk_size", "n_layer_nextn"):
        value = getattr(imatrix, counter)
        if not 0 <= value < 2**32:
            raise ImatrixFileError(f"{path}: {counter} = {value} does not fit the uint32 llama.cpp reads")
    extra = extra or {}
    stats = stats_tensors(imatrix.entries, imatrix.n_layer_nextn)
    with atomic_path(path) as tmp:
        writer = GGUFWriter(tmp, arch="")  # an empty arch leaves general.architecture out, like llama-imatrix
        writer.add_type(general_type)
        writer.add_array(Keys.IMatrix.DATASETS, list(imatrix.datasets))
        writer.add_uint32(Keys.IMatrix.CHUNK_COUNT, int(imatrix.chunk_count))
        writer.add_uint32(Keys.IMatrix.CHUNK_SIZE, int(imatrix.chunk_size))
        if imatrix.n_layer_nextn > 0:
            writer.add_uint32(KEY_N_LAYER_NEXTN, int(imatrix.n_layer_nextn))
        writer.add_array(KEY_STATS_SCHEMA, list(STATS_SCHEMA))
        for name in sorted(imatrix.entries, key=lambda key: key.encode("utf-8")):
            entry = imatrix.entries[name]
            writer.add_tensor(name + SUMS_SUFFIX, _ggml_layout(entry.sums, entry))
            writer.add_tensor(name + COUNTS_SUFFIX, _ggml_layout(entry.counts.reshape(-1, 1), entry))
            if entry.activation_sums is not None:
                writer.add_tensor(name + ACTIVATIONS_SUFFIX, _ggml_layout(entry.activation_sums, entry))
            writer.add_tensor(name + STATS_SUFFIX, stats[name])
            for suffix, tensors in extra.items():
                writer.add_tensor(name + suffix, _ggml_layout(np.asarray(tensors[name], np.float32), entry))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def _ggml_layout(array: np.ndarray, entry: ImatrixEntry) -> np.ndarray:
    """Shape a per-entry array as ggml_n_dims would: one count → 1-D, else (n_counts, columns)."""
    rows = entry.counts.shape[0]
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(rows, -1)
    return flat.reshape(-1) if rows == 1 else flat


# ----------------------------------------------------------------------------------------------------- .dat writing


def write_dat(imatrix: Imatrix, path: str | os.PathLike) -> None:
    """Write llama.cpp's legacy `.dat` (spec §4.1.1): values = mean·ncall, count-0 experts as 1·ncall, empty entries skipped."""
    if imatrix.chunk_size <= 0:
        raise ImatrixFileError(f"{path}: chunk_size {imatrix.chunk_size} must be positive to compute ncall")
    entries = []
    for name, entry in imatrix.entries.items():
        counts = np.rint(entry.counts.astype(np.float64)).astype(np.int64)
        if not counts.any():
            warnings.warn(f"{name} has no data (all counts 0); the .dat format cannot hold it, skipping", stacklevel=2)
            continue
        if not counts.all():
            share = 100.0 * np.count_nonzero(counts) / counts.size
            warnings.warn(f"{name} has partial data ({share:.2f}% of experts); missing experts stored as 1", stacklevel=2)
        ncall = int((counts.max() + imatrix.chunk_size - 1) // imatrix.chunk_size)
        entries.append(legacy_dat.LegacyEntry(name, ncall, _legacy_values(entry, ncall)))
    if not entries:
        raise ImatrixFileError(f"{path}: no entry has data; a .dat file needs at least one")
    dropped = len(imatrix.entries) - len(imatrix.without_activations())
    if dropped:
        warnings.warn(f"{path}: the legacy .dat format has no activation sums; the in_sum of {dropped} entries is not "
                      "written (write GGUF to keep them: --output-format gguf)", stacklevel=2)
    dataset = imatrix.datasets[-1] if imatrix.datasets else ""
    payload = legacy_dat.encode(entries, int(imatrix.chunk_count), dataset)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def _legacy_values(entry: ImatrixEntry, ncall: int) -> np.ndarray:
    """(sum/count)·ncall in float32 as save_imatrix_legacy computes it; a count-0 expert becomes (1/1)·ncall."""
    counts = entry.counts[:, None]
    zero = counts == 0
    sums = np.where(zero, np.float32(1), entry.sums)
    return ((sums / np.where(zero, np.float32(1), counts)) * np.float32(ncall)).astype(np.float32).reshape(-1)


# ----------------------------------------------------------------------------------------------------- reading


def read_imatrix(path: str | os.PathLike, *, chunk_size: int | None = None) -> Imatrix:
    """Read a GGUF or legacy imatrix (detected by the GGUF magic); legacy values become raw sums like llama.cpp's loader."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ImatrixFileError(f"{path}: cannot read ({exc.strerror})") from None
    if magic == GGUF_MAGIC:
        imatrix, _type, _extra = read_gguf_tensors(path)
        return imatrix
    return read_dat(path, chunk_size=chunk_size)


def read_dat(path: str | os.PathLike, *, chunk_size: int | None = None) -> Imatrix:
    """Read a legacy `.dat`: sum = value·chunk_size, count = ncall·chunk_size (chunk size 512 unless given)."""
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk_size <= 0:
        raise ImatrixFileError(f"{path}: chunk size {chunk_size} must be positive")
    try:
        parsed = legacy_dat.decode(Path(path).read_bytes())
    except legacy_dat.LegacyFormatError as exc:
        raise ImatrixFileError(
            f"{path}: neither a GGUF imatrix (no GGUF magic) nor a legacy .dat imatrix: {exc}"
        ) from None
    entries: dict[str, ImatrixEntry] = {}
    for item in parsed.entries:
        if item.name in entries:
            raise ImatrixFileError(f"{path}: tensor {item.name} appears twice")
        _check_finite(path, item.name, item.values)
        sums = (item.values * np.float32(chunk_size)).reshape(1, -1)
        entries[item.name] = ImatrixEntry(sums, np.array([item.ncall * chunk_size], np.float32))
    max_count = max(int(entry.counts.max()) for entry in entries.values())
    notes = [] if parsed.dataset is not None else ["no dataset trailer"]
    return Imatrix(
        entries,
        [parsed.dataset] if parsed.dataset else [],
        rows_to_chunks(max_count, chunk_size),
        chunk_size,
        source_format="dat",
        notes=notes + [f"legacy file read with chunk size {chunk_size} (the format does not store it)"],
    )


def read_gguf_tensors(path: str | os.PathLike) -> tuple[Imatrix, str | None, dict[str, dict[str, np.ndarray]]]:
    """Read a GGUF imatrix; also return general.type and other `<name>.<suffix>` tensors as {".suffix": {name: array}}.

    `.in_sum` becomes the entries' activation sums; `.stats` is skipped (recomputed on write, as llama.cpp does).
    """
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # gguf-py raises assorted ValueError/IndexError/struct.error on damaged files
        raise ImatrixFileError(f"{path}: damaged or truncated GGUF file ({type(exc).__name__}: {exc})") from None
    sums, counts, extra = _collect_tensors(path, reader)
    if not sums and not counts:
        found = reader.fields.get(Keys.General.TYPE)
        kind = found.contents() if found is not None else "unknown"
        raise ImatrixFileError(
            f"{path}: a GGUF file without imatrix entries (general.type {kind!r}, {len(reader.tensors)} tensors, "
            "none named *.in_sum2/*.counts); is this a model instead of an imatrix?"
        )
    activations = extra.pop(ACTIVATIONS_SUFFIX, {})
    extra.pop(STATS_SUFFIX, None)
    entries = _pair_entries(path, sums, counts, activations)
    general_type, datasets, chunk_count, chunk_size, n_layer_nextn, notes = _read_metadata(path, reader, entries)
    if general_type != GGUFType.IMATRIX:
        notes.append(f"general.type is {general_type!r}, not {GGUFType.IMATRIX!r}")
    missing = len(entries) - len(activations)
    if missing:
        notes.append(f"{missing} of {len(entries)} entries have no activation sums (in_sum): written by an older "
                     "llama.cpp or from a .dat; statistics use the legacy layout")
    for suffix, tensors in sorted(extra.items()):
        notes.append(f"{len(tensors)} extra *{suffix} tensors (not part of the imatrix, ignored by llama-quantize)")
    imatrix = Imatrix(entries, datasets, chunk_count, chunk_size, source_format="gguf", notes=notes,
                      n_layer_nextn=n_layer_nextn)
    return imatrix, general_type, extra


def _collect_tensors(path, reader: GGUFReader):
    """Split GGUF tensors into sums, counts and other suffixed tensors, refusing non-F32 imatrix data."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    extra: dict[str, dict[str, np.ndarray]] = {}
    for tensor in reader.tensors:
        is_f32 = tensor.tensor_type == GGMLQuantizationType.F32
        if tensor.name.endswith((SUMS_SUFFIX, COUNTS_SUFFIX, ACTIVATIONS_SUFFIX)) and not is_f32:
            raise ImatrixFileError(
                f"{path}: tensor {tensor.name} is {tensor.tensor_type.name}; llama.cpp reads only F32 imatrix data"
            )
        if not is_f32:
            continue  # not imatrix data (e.g. the weights of a model given by mistake)
        if tensor.name.endswith(SUMS_SUFFIX):
            sums[tensor.name[: -len(SUMS_SUFFIX)]] = np.array(tensor.data, np.float32).reshape(-1)  # copy from mmap
        elif tensor.name.endswith(COUNTS_SUFFIX):
            counts[tensor.name[: -len(COUNTS_SUFFIX)]] = np.array(tensor.data, np.float32).reshape(-1)
        elif "." in tensor.name:
            base, _, suffix = tensor.name.rpartition(".")
            extra.setdefault("." + suffix, {})[base] = tensor.data  # still mapped; copied only if it belongs to an entry
    stray = sorted(set(extra.get(ACTIVATIONS_SUFFIX, {})) - set(sums))
    if stray:
        raise ImatrixFileError(f"{path}: mismatched sums and counts: {stray[0]}{ACTIVATIONS_SUFFIX} has no "
                               f"{stray[0]}{SUMS_SUFFIX}")
    extra = {
        suffix: {base: np.array(data, np.float32).reshape(-1) for base, data in tensors.items() if base in sums}
        for suffix, tensors in extra.items()
    }
    return sums, counts, {suffix: tensors for suffix, tensors in extra.items() if tensors}


def _pair_entries(path, sums: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                  activations: dict[str, np.ndarray]) -> dict[str, ImatrixEntry]:
    """Pair *.in_sum2 with *.counts (and *.in_sum) like common_imatrix_load, checking what llama.cpp trips over."""
    entries: dict[str, ImatrixEntry] = {}
    for name in sorted(set(sums) | set(counts)):
        if name not in sums or name not in counts:
            missing = SUMS_SUFFIX if name not in sums else COUNTS_SUFFIX
            raise ImatrixFileError(f"{path}: mismatched sums and counts: {name} has no {name}{missing} tensor")
        values, n = sums[name], counts[name]
        if n.size == 0 or values.size == 0 or values.size % n.size:
            raise ImatrixFileError(
                f"{path}: {name} has {values.size} sums for {n.size} counts; sums must be a multiple of counts"
            )
        _check_finite(path, name, values)
        if not np.isfinite(n).all() or (n < 0).any():
            raise ImatrixFileError(f"{path}: {name} has negative or non-finite counts")
        active = activations.get(name)
        if active is not None and active.size != values.size:
            raise ImatrixFileError(f"{path}: mismatched sums and counts: {name}{ACTIVATIONS_SUFFIX} has "
                                   f"{active.size} values, {name}{SUMS_SUFFIX} {values.size}")
        rounded = np.floor(n.astype(np.float64) + 0.5).astype(np.float32)  # lround, as the loader does
        entries[name] = ImatrixEntry(values.reshape(n.size, -1), rounded, active)
    return entries


def _read_metadata(path, reader: GGUFReader, entries: dict[str, ImatrixEntry]):
    """general.type, datasets, the uint32 counters (another type aborts llama.cpp, so it is an error) and NextN layers."""
    notes: list[str] = []
    type_field = reader.fields.get(Keys.General.TYPE)
    general_type = type_field.contents() if type_field is not None else None
    datasets_field = reader.fields.get(Keys.IMatrix.DATASETS)
    datasets = list(datasets_field.contents()) if datasets_field is not None else []
    counters = {}
    for key in (Keys.IMatrix.CHUNK_COUNT, Keys.IMatrix.CHUNK_SIZE, KEY_N_LAYER_NEXTN):
        found = reader.fields.get(key)
        if found is None:
            counters[key] = None
            continue
        if found.types != [GGUFValueType.UINT32]:
            kind = found.types[0].name if found.types else "unknown"
            raise ImatrixFileError(f"{path}: {key} is {kind}; llama.cpp reads it as UINT32 and aborts otherwise")
        counters[key] = int(found.contents())
    if datasets_field is None or counters[Keys.IMatrix.CHUNK_COUNT] is None or counters[Keys.IMatrix.CHUNK_SIZE] is None:
        notes.append("missing imatrix.* metadata: llama-quantize refuses this file ('missing imatrix metadata')")
    chunk_size = counters[Keys.IMatrix.CHUNK_SIZE] or DEFAULT_CHUNK_SIZE
    chunk_count = counters[Keys.IMatrix.CHUNK_COUNT]
    if chunk_count is None:
        chunk_count = rows_to_chunks(max(int(entry.counts.max()) for entry in entries.values()), chunk_size)
    return general_type, datasets, chunk_count, chunk_size, counters[KEY_N_LAYER_NEXTN] or 0, notes


def _check_finite(path, name: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ImatrixFileError(f"{path}: {name} holds {bad} non-finite values; llama-quantize would reject it")
