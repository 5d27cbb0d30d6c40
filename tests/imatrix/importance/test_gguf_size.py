"""ggml's metadata size of llama-quantize's output equals the data offset of the same header written independently
by gguf-py, with the keys llama-quantize sets, removes and adds (imatrix strings cut to 127 bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter

from imatrix.importance.gguf_size import (
    GGML_QNT_VERSION,
    IMATRIX_STRING_LIMIT,
    quantized_metadata,
)
from tests.real_components import require_ggml_library

TENSORS = {"token_embd.weight": (64, 48), "blk.0.attn_q.weight": (64, 64), "output_norm.weight": (64,)}


def _write(path: Path, keys) -> Path:
    """A small GGUF (f32 tensors of odd byte sizes, so padding counts) with `keys` set by `keys(writer)`."""
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    keys(writer)
    rng = np.random.default_rng(0)
    for name, shape in TENSORS.items():
        writer.add_tensor(name, rng.normal(size=shape[::-1]).astype(np.float32)[..., :shape[0] - 3])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _as_quantized(writer, file_type: int, imatrix: str | None = None, dataset: str | None = None, chunks: int = 0):
    writer.add_uint32("general.quantization_version", GGML_QNT_VERSION)
    writer.add_uint32("general.file_type", file_type)
    if imatrix is not None:
        writer.add_string("quantize.imatrix.file", imatrix[:IMATRIX_STRING_LIMIT])
        writer.add_string("quantize.imatrix.dataset", dataset[:IMATRIX_STRING_LIMIT])
        writer.add_uint32("quantize.imatrix.entries_count", 0)
        writer.add_uint32("quantize.imatrix.chunks_count", chunks)


def test_meta_size_without_imatrix_equals_gguf_py_data_offset_and_file_adds_up(tmp_path):
    quantizer = require_ggml_library()
    source = _write(tmp_path / "source.gguf", lambda w: (w.add_uint32("split.count", 1), w.add_uint16("split.no", 0)))
    expected = _write(tmp_path / "expected.gguf", lambda w: _as_quantized(w, 7))
    meta, alignment = quantized_metadata(quantizer, source, file_type=7, imatrix_argument=None, imatrix_dataset=None,
                                         chunk_count=0)
    reader = GGUFReader(str(expected))
    assert alignment == 32 and meta == reader.data_offset
    data = sum(-(-int(t.n_bytes) // alignment) * alignment for t in reader.tensors)
    assert meta + data == expected.stat().st_size


def test_imatrix_keys_are_counted_with_their_strings_cut_to_127_bytes(tmp_path):
    quantizer = require_ggml_library()
    source = _write(tmp_path / "source.gguf", lambda w: _as_quantized(w, 1))
    path, dataset = "/calib/" + "x" * 200 + ".imatrix.gguf", "agents-" + "y" * 150 + ".parquet"
    expected = _write(tmp_path / "expected.gguf", lambda w: _as_quantized(w, 20, path, dataset, 37))
    meta, _ = quantized_metadata(quantizer, source, file_type=20, imatrix_argument=path, imatrix_dataset=dataset,
                                 chunk_count=37)
    assert meta == GGUFReader(str(expected)).data_offset  # uncut, the strings are 131 bytes longer
