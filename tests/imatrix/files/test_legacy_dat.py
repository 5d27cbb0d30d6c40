"""Legacy .dat bytes: the layout written field by field as spec §4.1 gives it (built here with struct), entries sorted
bytewise, the optional trailer, and precise errors for truncated or foreign bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from imatrix.files.legacy_dat import LegacyEntry, LegacyFormatError, decode, encode


def reference_bytes(entries: list[tuple[str, int, list[float]]], last_chunk: int, dataset: str) -> bytes:
    """int32 n_entries; per entry: int32 len, name, int32 ncall, int32 nval, float32 × nval; int32 last_chunk,
    int32 len, dataset."""
    out = struct.pack("<i", len(entries))
    for name, ncall, values in entries:
        raw = name.encode()
        out += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        out += struct.pack(f"<{len(values)}f", *values)
    return out + struct.pack("<ii", last_chunk, len(dataset.encode())) + dataset.encode()


def test_encode_is_the_spec_layout_sorted_bytewise():
    entries = [LegacyEntry("blk.0.ffn_up.weight", 3, np.array([1.5, 2.0], dtype=np.float32)),
               LegacyEntry("blk.0.attn_q.weight", 3, np.array([0.25, 4.0, 8.0], dtype=np.float32)),
               LegacyEntry("Zeta", 1, np.array([1.0], dtype=np.float32))]  # "Z" sorts before "b" bytewise
    expected = reference_bytes([("Zeta", 1, [1.0]), ("blk.0.attn_q.weight", 3, [0.25, 4.0, 8.0]),
                                ("blk.0.ffn_up.weight", 3, [1.5, 2.0])], 12, "calib.txt")
    assert encode(entries, 12, "calib.txt") == expected


def test_decode_round_trip_and_optional_trailer():
    data = reference_bytes([("a.weight", 2, [1.0, 2.0]), ("b.weight", 0, [0.0])], 7, "data.txt")
    decoded = decode(data)
    assert [(e.name, e.ncall, e.values.tolist()) for e in decoded.entries] == [("a.weight", 2, [1.0, 2.0]),
                                                                              ("b.weight", 0, [0.0])]
    assert (decoded.last_chunk, decoded.dataset) == (7, "data.txt")
    without_trailer = data[: -len(struct.pack("<ii", 7, 8) + b"data.txt")]
    bare = decode(without_trailer)
    assert (bare.last_chunk, bare.dataset, len(bare.entries)) == (None, None, 2)


@pytest.mark.parametrize("data, message", [
    (b"", "truncated at byte 0: the entry count needs 4 bytes"),
    (struct.pack("<i", 0), "entry count is 0"),
    (struct.pack("<ii", 1, 10_000), "entry 1 at byte 4: name length 10000 is not plausible"),
    (struct.pack("<ii", 1, 3) + b"a\x00b" + struct.pack("<ii", 1, 1), "is not a tensor name"),
    (struct.pack("<ii", 1, 1) + b"x" + struct.pack("<ii", 1, 2) + struct.pack("<f", 1.0),
     "the 2 values of x needs 8 bytes, only 4 left"),
    (struct.pack("<ii", 1, 1) + b"x" + struct.pack("<ii", -1, 1) + struct.pack("<f", 1.0), "ncall -1"),
    (reference_bytes([("x", 1, [1.0])], 1, "d") + b"junk", "4 unexpected bytes after the trailer"),
])
def test_foreign_or_cut_bytes_are_refused_with_the_place(data, message):
    with pytest.raises(LegacyFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(data)
