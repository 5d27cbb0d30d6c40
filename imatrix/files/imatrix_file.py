"""llama.cpp importance-matrix files: the in-memory form, GGUF and legacy `.dat` read/write, and `--in-file` merging.

Contract: ../shared/docs/IMATRIX_SPEC.md §4 (formats), §4.3 (merge), §5.1 (how llama-quantize turns sums into
importance), §12 (gguf-py pitfalls). GGUF goes through gguf.GGUFWriter / gguf.GGUFReader; the legacy byte layout is in
`imatrix.files.legacy_dat`.
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

SUMS_SUFFIX = ".in_sum2"
COUNTS_SUFFIX = ".counts"
GGUF_MAGIC = b"GGUF"
DEFAULT_CHUNK_SIZE = 512  # llama-imatrix's default -c, used to read .dat files (spec §4.3)


class ImatrixFileError(Exception):
    """An imatrix file (or a set of them) is unusable; the message names the file or tensor and what is wrong."""


@dataclass
class ImatrixEntry:
    """Raw statistics of one weight: Σx² per input column and the token rows they came from.

    `sums` is (n_counts, n_columns) expert-major; `counts` is (n_counts,). Dense weights have one count. A 3-D weight
    used through plain MUL_MAT (one count for all slices) is stored as a single row of n_mat·ne0 columns, exactly as
    llama-imatrix writes it.
    """

    sums: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        self.sums = np.ascontiguousarray(self.sums, dtype=np.float32)
        self.counts = np.ascontiguousarray(self.counts, dtype=np.float32).reshape(-1)
        if self.sums.ndim == 1 or (self.counts.size == 1 and self.sums.ndim == 2):
            self.sums = self.sums.reshape(1, -1)  # one count: all slices form one row, as llama-imatrix stores it
        if self.sums.ndim != 2 or self.sums.shape[0] != self.counts.shape[0] or self.sums.size == 0:
            raise ValueError(f"sums {self.sums.shape} do not match counts {self.counts.shape}")

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


# ----------------------------------------------------------------------------------------------------- GGUF writing


def write_gguf(imatrix: Imatrix, path: str | os.PathLike) -> None:
    """Write the GGUF imatrix llama-imatrix writes (byte for byte): KV general.type, datasets, u32 counters, sorted keys."""
    write_gguf_tensors(imatrix, path, general_type=GGUFType.IMATRIX)


def write_gguf_tensors(
    imatrix: Imatrix,
    path: str | os.PathLike,
    *,
    general_type: str,
    extra: dict[str, dict[str, np.ndarray]] | None = None,
) -> None:
    """Write an imatrix-layout GGUF; `extra[suffix][name]` adds `<name><suffix>` tensors after each entry's pair."""
    if not imatrix.datasets or not all(imatrix.datasets):
        raise ImatrixFileError(
            f"{path}: no dataset name to store; llama-quantize refuses an imatrix without imatrix.datasets "
            "(give the calibration file name)"
        )
    for counter in ("chunk_count", "chunk_size"):
        value = getattr(imatrix, counter)
        if not 0 <= value < 2**32:
            raise ImatrixFileError(f"{path}: {counter} = {value} does not fit the uint32 llama.cpp reads")
    extra = extra or {}
    with atomic_path(path) as tmp:
        writer = GGUFWriter(tmp, arch="")  # an empty arch leaves general.architecture out, like llama-imatrix
        writer.add_type(general_type)
        writer.add_array(Keys.IMatrix.DATASETS, list(imatrix.datasets))
        writer.add_uint32(Keys.IMatrix.CHUNK_COUNT, int(imatrix.chunk_count))
        writer.add_uint32(Keys.IMatrix.CHUNK_SIZE, int(imatrix.chunk_size))
        for name in sorted(imatrix.entries, key=lambda key: key.encode("utf-8")):
            entry = imatrix.entries[name]
            writer.add_tensor(name + SUMS_SUFFIX, _ggml_layout(entry.sums, entry))
            writer.add_tensor(name + COUNTS_SUFFIX, _ggml_layout(entry.counts.reshape(-1, 1), entry))
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
        max_count // chunk_size,
        chunk_size,
        source_format="dat",
        notes=notes + [f"legacy file read with chunk size {chunk_size} (the format does not store it)"],
    )


def read_gguf_tensors(path: str | os.PathLike) -> tuple[Imatrix, str | None, dict[str, dict[str, np.ndarray]]]:
    """Read a GGUF imatrix; also return general.type and other `<name>.<suffix>` tensors as {".suffix": {name: array}}."""
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
    entries = _pair_entries(path, sums, counts)
    general_type, datasets, chunk_count, chunk_size, notes = _read_metadata(path, reader, entries)
    if general_type != GGUFType.IMATRIX:
        notes.append(f"general.type is {general_type!r}, not {GGUFType.IMATRIX!r}")
    for suffix, tensors in sorted(extra.items()):
        notes.append(f"{len(tensors)} extra *{suffix} tensors (not part of the imatrix, ignored by llama-quantize)")
    imatrix = Imatrix(entries, datasets, chunk_count, chunk_size, source_format="gguf", notes=notes)
    return imatrix, general_type, extra


def _collect_tensors(path, reader: GGUFReader):
    """Split GGUF tensors into sums, counts and other suffixed tensors, refusing non-F32 data."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    extra: dict[str, dict[str, np.ndarray]] = {}
    for tensor in reader.tensors:
        is_f32 = tensor.tensor_type == GGMLQuantizationType.F32
        if tensor.name.endswith((SUMS_SUFFIX, COUNTS_SUFFIX)) and not is_f32:
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
    extra = {
        suffix: {base: np.array(data, np.float32).reshape(-1) for base, data in tensors.items() if base in sums}
        for suffix, tensors in extra.items()
    }
    return sums, counts, {suffix: tensors for suffix, tensors in extra.items() if tensors}


def _pair_entries(path, sums: dict[str, np.ndarray], counts: dict[str, np.ndarray]) -> dict[str, ImatrixEntry]:
    """Pair *.in_sum2 with *.counts like common_imatrix_load, checking what llama.cpp would trip over."""
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
        rounded = np.floor(n.astype(np.float64) + 0.5).astype(np.float32)  # lround, as the loader does
        entries[name] = ImatrixEntry(values.reshape(n.size, -1), rounded)
    return entries


def _read_metadata(path, reader: GGUFReader, entries: dict[str, ImatrixEntry]):
    """general.type, datasets and the two uint32 counters; a counter of another type aborts llama.cpp, so it is an error."""
    notes: list[str] = []
    type_field = reader.fields.get(Keys.General.TYPE)
    general_type = type_field.contents() if type_field is not None else None
    datasets_field = reader.fields.get(Keys.IMatrix.DATASETS)
    datasets = list(datasets_field.contents()) if datasets_field is not None else []
    counters = {}
    for key in (Keys.IMatrix.CHUNK_COUNT, Keys.IMatrix.CHUNK_SIZE):
        found = reader.fields.get(key)
        if found is None:
            counters[key] = None
            continue
        if found.types != [GGUFValueType.UINT32]:
            kind = found.types[0].name if found.types else "unknown"
            raise ImatrixFileError(f"{path}: {key} is {kind}; llama.cpp reads it as UINT32 and aborts otherwise")
        counters[key] = int(found.contents())
    if datasets_field is None or None in counters.values():
        notes.append("missing imatrix.* metadata: llama-quantize refuses this file ('missing imatrix metadata')")
    chunk_size = counters[Keys.IMatrix.CHUNK_SIZE] or DEFAULT_CHUNK_SIZE
    chunk_count = counters[Keys.IMatrix.CHUNK_COUNT]
    if chunk_count is None:
        chunk_count = max(int(entry.counts.max()) for entry in entries.values()) // chunk_size
    return general_type, datasets, chunk_count, chunk_size, notes


def _check_finite(path, name: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ImatrixFileError(f"{path}: {name} holds {bad} non-finite values; llama-quantize would reject it")


# ----------------------------------------------------------------------------------------------------- merging


def merge(imatrices: list[Imatrix], *, chunk_size: int | None = None) -> Imatrix:
    """Add sums and counts like llama-imatrix --in-file (spec §4.3); chunk_count = max(count) // chunk_size."""
    if not imatrices:
        raise ValueError("merge needs at least one imatrix")
    chunk_size = int(chunk_size or imatrices[0].chunk_size)
    if chunk_size <= 0:
        raise ImatrixFileError(f"chunk size {chunk_size} must be positive")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for position, imatrix in enumerate(imatrices, start=1):
        for name in sorted(imatrix.entries):
            entry = imatrix.entries[name]
            if name not in sums:
                sums[name] = entry.sums.reshape(-1).copy()
                counts[name] = np.rint(entry.counts.astype(np.float64)).astype(np.int64)
                continue
            if sums[name].size != entry.n_values:
                raise ImatrixFileError(
                    f"{name}: input {position} has {entry.n_values} values but the inputs before it have "
                    f"{sums[name].size}; these imatrices are for different models"
                )
            sums[name] += entry.sums.reshape(-1)  # float32 accumulation, as llama.cpp does
            counts[name] = _add_counts(name, position, counts[name], entry.counts)
    entries = {
        name: ImatrixEntry(sums[name].reshape(counts[name].size, -1), counts[name].astype(np.float32)) for name in sums
    }
    max_count = max(int(c.max()) for c in counts.values())
    datasets = [name for imatrix in imatrices for name in imatrix.datasets]
    return Imatrix(entries, datasets, max_count // chunk_size, chunk_size, source_format="memory")


def _add_counts(name: str, position: int, have: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Add token counts; a single count is broadcast to the other side's expert count (old files, legacy inputs)."""
    new = np.rint(new.astype(np.float64)).astype(np.int64)
    if have.size != new.size:
        if have.size == 1:
            have = np.full(new.size, have[0], np.int64)
        elif new.size == 1:
            new = np.full(have.size, new[0], np.int64)
        else:
            raise ImatrixFileError(
                f"{name}: input {position} has {new.size} expert counts but the inputs before it have {have.size}"
            )
    return have + new
