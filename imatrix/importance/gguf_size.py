"""The exact size of the file llama-quantize will write, from ggml's own gguf code (ctypes on libggml-base).

llama-quantize (src/llama-quant.cpp, tools/quantize/quantize.cpp at b11434) copies the input's KV pairs, sets
general.quantization_version and general.file_type (u32), removes the split.* keys, and adds the imatrix keys
(quantize.imatrix.file and .dataset as strings cut to 127 bytes, .entries_count and .chunks_count as u32); the tensor
infos keep their names and ranks. The metadata size therefore does not depend on the tensor types, and the file is
that metadata plus every tensor's bytes padded to the alignment. Why ctypes: gguf-py cannot load a file into a
context and report ggml's meta size; ggml's gguf_get_meta_size is the number llama-quantize itself writes.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from imatrix.importance.ggml_quant import GgmlQuantizer

GGML_QNT_VERSION = 2
IMATRIX_STRING_LIMIT = 127  # quantize.cpp copies the strings into a 128-byte override field


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


def _bind(lib: ctypes.CDLL) -> None:
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _InitParams]
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    lib.gguf_set_val_u32.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.gguf_set_val_str.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.gguf_remove_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.gguf_remove_key.restype = ctypes.c_int64
    lib.gguf_get_meta_size.argtypes = [ctypes.c_void_p]
    lib.gguf_get_meta_size.restype = ctypes.c_size_t
    lib.gguf_get_alignment.argtypes = [ctypes.c_void_p]
    lib.gguf_get_alignment.restype = ctypes.c_size_t


def quantized_metadata(quantizer: GgmlQuantizer, model: Path, *, file_type: int, imatrix_argument: str | None,
                       imatrix_dataset: str | None, chunk_count: int) -> tuple[int, int]:
    """(metadata bytes, alignment) of llama-quantize's output for `model` with `--imatrix imatrix_argument`."""
    lib = quantizer.lib
    _bind(lib)
    context = lib.gguf_init_from_file(str(model).encode(), _InitParams(True, None))
    if not context:
        raise ValueError(f"{model}: ggml cannot read this GGUF file")
    try:
        lib.gguf_set_val_u32(context, b"general.quantization_version", GGML_QNT_VERSION)
        lib.gguf_set_val_u32(context, b"general.file_type", file_type)
        for key in (b"split.no", b"split.count", b"split.tensors.count"):
            lib.gguf_remove_key(context, key)
        if imatrix_argument is not None:
            lib.gguf_set_val_str(context, b"quantize.imatrix.file",
                                 imatrix_argument.encode()[:IMATRIX_STRING_LIMIT])
            if imatrix_dataset is not None:
                lib.gguf_set_val_str(context, b"quantize.imatrix.dataset",
                                     imatrix_dataset.encode()[:IMATRIX_STRING_LIMIT])
            lib.gguf_set_val_u32(context, b"quantize.imatrix.entries_count", 0)
            if chunk_count > 0:
                lib.gguf_set_val_u32(context, b"quantize.imatrix.chunks_count", chunk_count)
        return int(lib.gguf_get_meta_size(context)), int(lib.gguf_get_alignment(context))
    finally:
        lib.gguf_free(context)
