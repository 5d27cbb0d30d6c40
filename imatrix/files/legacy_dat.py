"""Byte layout of llama.cpp's legacy `.dat` imatrix (spec §4.1): encode and strictly decode, nothing more.

Written by hand because no library reads or writes this format (gguf-py only knows GGUF). The numbers it carries
(value = mean·ncall) are interpreted in `imatrix.files.imatrix_file`; this module only moves bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

INT32 = struct.Struct("<i")
# A tensor name longer than this is not a tensor name: a foreign file is being misread.
MAX_NAME_BYTES = 4096


class LegacyFormatError(ValueError):
    """The bytes are not a well-formed legacy imatrix; the message says where and why (no file name)."""


@dataclass
class LegacyEntry:
    name: str
    ncall: int
    values: np.ndarray  # float32, flat, nval = ne0 * n_mat


@dataclass
class LegacyFile:
    entries: list[LegacyEntry]
    last_chunk: int | None = None  # optional trailer
    dataset: str | None = None  # optional trailer
    trailing_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def encode(entries: list[LegacyEntry], last_chunk: int, dataset: str) -> bytes:
    """Serialise entries (sorted bytewise by name, as std::sort does) plus the last_chunk/dataset trailer."""
    out = bytearray(INT32.pack(len(entries)))
    for entry in sorted(entries, key=lambda e: e.name.encode("utf-8")):
        name = entry.name.encode("utf-8")
        values = np.ascontiguousarray(entry.values, dtype="<f4").reshape(-1)
        out += INT32.pack(len(name)) + name
        out += INT32.pack(entry.ncall) + INT32.pack(values.size)
        out += values.tobytes()
    dataset_bytes = dataset.encode("utf-8")
    out += INT32.pack(last_chunk) + INT32.pack(len(dataset_bytes)) + dataset_bytes
    return bytes(out)


class _Cursor:
    """Reads little-endian fields from a byte string and says at which offset something is missing."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.offset

    def int32(self, what: str) -> int:
        return INT32.unpack(self.take(4, what))[0]

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or size > self.left:
            raise LegacyFormatError(
                f"truncated at byte {self.offset}: {what} needs {size} bytes, only {self.left} left"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def decode(data: bytes) -> LegacyFile:
    """Parse a legacy file; stricter than llama.cpp (name sanity, no garbage after the trailer) to reject foreign files."""
    cursor = _Cursor(data)
    n_entries = cursor.int32("the entry count")
    if n_entries < 1:
        raise LegacyFormatError(f"entry count is {n_entries}; a legacy imatrix holds at least one entry")
    entries = [_decode_entry(cursor, index) for index in range(n_entries)]
    result = LegacyFile(entries)
    if cursor.left >= 4:
        result.last_chunk = cursor.int32("the last_chunk trailer")
    if cursor.left >= 4:
        start = cursor.offset
        length = cursor.int32("the dataset name length")
        if length < 0 or length > cursor.left:
            raise LegacyFormatError(f"dataset name length {length} at byte {start} exceeds the {cursor.left} bytes left")
        result.dataset = _utf8(cursor.take(length, "the dataset name"), f"dataset name at byte {start + 4}")
    if cursor.left:
        raise LegacyFormatError(f"{cursor.left} unexpected bytes after the trailer at byte {cursor.offset}")
    return result


def _decode_entry(cursor: _Cursor, index: int) -> LegacyEntry:
    where = f"entry {index + 1}"
    start = cursor.offset
    name_len = cursor.int32(f"the name length of {where}")
    if not 0 < name_len <= MAX_NAME_BYTES:
        raise LegacyFormatError(f"{where} at byte {start}: name length {name_len} is not plausible")
    name = _utf8(cursor.take(name_len, f"the name of {where}"), f"name of {where}")
    if not name.isprintable():
        raise LegacyFormatError(f"{where} at byte {start}: name {name!r} is not a tensor name")
    ncall = cursor.int32(f"ncall of {name}")
    nval = cursor.int32(f"the value count of {name}")
    if ncall < 0 or nval < 1:
        raise LegacyFormatError(f"{name}: ncall {ncall}, value count {nval} (need ncall >= 0 and at least one value)")
    values = np.frombuffer(cursor.take(4 * nval, f"the {nval} values of {name}"), dtype="<f4").astype(np.float32)
    return LegacyEntry(name, ncall, values)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LegacyFormatError(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
