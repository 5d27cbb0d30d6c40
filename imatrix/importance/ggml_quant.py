"""ctypes binding to llama.cpp's own tensor quantizer (libggml-base), so Python can quantize one tensor exactly as
llama-quantize does (spec §13): ggml_quantize_chunk per expert slice, with that slice's importance vector.

Why hand-written: no maintained Python package wraps ggml's C quantizer; gguf-py only ships numpy quantizers for a
few legacy types and dequantizers. Dequantization uses gguf.quants.dequantize (numpy, bit-identical to ggml's
to_float on the types tested).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize


class GgmlLibraryMissing(RuntimeError):
    """llama.cpp's libggml-base shared library could not be found or loaded."""


def quant_type(name_or_type: str | int | GGMLQuantizationType) -> GGMLQuantizationType:
    """GGMLQuantizationType from a ggml type name (case-insensitive, e.g. 'iq2_xs') or id; ValueError otherwise."""
    if isinstance(name_or_type, GGMLQuantizationType):
        return name_or_type
    if isinstance(name_or_type, int):
        return GGMLQuantizationType(name_or_type)
    try:
        return GGMLQuantizationType[name_or_type.upper()]
    except KeyError:
        known = ", ".join(t.name for t in GGMLQuantizationType)
        raise ValueError(f"unknown ggml tensor type {name_or_type!r}; known: {known}") from None


def block_size(qtype: GGMLQuantizationType) -> int:
    """Number of weights per quantization block (1 for F32/F16/BF16)."""
    return GGML_QUANT_SIZES[qtype][0]


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the C signatures (ggml.h) of the four functions used."""
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    lib.ggml_quantize_init.restype = None
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,  # enum ggml_type
        ctypes.c_void_p,  # const float * src
        ctypes.c_void_p,  # void * dst
        ctypes.c_int64,  # start (element index of the first row)
        ctypes.c_int64,  # nrows
        ctypes.c_int64,  # n_per_row
        ctypes.c_void_p,  # const float * imatrix (n_per_row floats) or NULL
    ]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t


@dataclass
class GgmlQuantizer:
    """llama.cpp's quantizer loaded from one libggml-base; thread-safe (ctypes releases the GIL during calls)."""

    path: Path
    lib: ctypes.CDLL = field(repr=False)
    _initialised: set = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> GgmlQuantizer:
        """Load the library at `path`, or the one next to the llama.cpp tools (imatrix.llamacpp.tools.ggml_library_path)."""
        if path is None:
            from imatrix.llamacpp.tools import ggml_library_path

            path = ggml_library_path()
            if path is None:
                raise GgmlLibraryMissing(
                    "llama.cpp's libggml-base was not found (install the tools: pip install 'calibkit[llamacpp]', "
                    "or set LLAMA_CPP_BIN to the folder holding llama-quantize and libggml-base.so)"
                )
        path = Path(path)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as error:
            raise GgmlLibraryMissing(f"{path}: cannot load llama.cpp's libggml-base ({error})") from error
        _bind(lib)
        return cls(path=path, lib=lib)

    def requires_imatrix(self, qtype: GGMLQuantizationType) -> bool:
        """True for the types ggml refuses to quantize without an importance vector (IQ2_XXS, IQ2_XS, IQ1_*)."""
        return bool(self.lib.ggml_quantize_requires_imatrix(int(qtype)))

    def row_size(self, qtype: GGMLQuantizationType, n_per_row: int) -> int:
        """Bytes of one quantized row of n_per_row weights."""
        return int(self.lib.ggml_row_size(int(qtype), int(n_per_row)))

    def _init_type(self, qtype: GGMLQuantizationType) -> None:
        with self._lock:
            if qtype not in self._initialised:
                self.lib.ggml_quantize_init(int(qtype))  # builds the IQ grids once; must precede threaded use
                self._initialised.add(qtype)

    def quantize(
        self, qtype: GGMLQuantizationType, weights: np.ndarray, importance: np.ndarray | None = None
    ) -> np.ndarray:
        """Quantize float weights (rows, n_per_row) or (n_mat, rows, n_per_row) to ggml bytes
        (..., rows, row_size) as llama-quantize does: one ggml_quantize_chunk per matrix, with that matrix's
        importance row (importance shape (n_per_row,) or (n_mat, n_per_row), float32 means of x²)."""
        qtype = quant_type(qtype)
        stacked = np.ascontiguousarray(weights, dtype=np.float32)
        if stacked.ndim == 2:
            stacked = stacked[None]
        if stacked.ndim != 3:
            raise ValueError(f"weights must be 2-D or 3-D, got shape {weights.shape}")
        n_mat, nrows, n_per_row = stacked.shape
        if n_per_row % block_size(qtype):
            raise ValueError(
                f"{qtype.name} needs rows divisible by {block_size(qtype)}, got {n_per_row} columns "
                "(llama-quantize would use a fallback type)"
            )
        vectors = self._importance_rows(qtype, importance, n_mat, n_per_row)
        self._init_type(qtype)
        row_bytes = self.row_size(qtype, n_per_row)
        out = np.empty((n_mat, nrows, row_bytes), dtype=np.uint8)
        for mat in range(n_mat):
            vector = vectors[mat] if vectors is not None else None
            written = self.lib.ggml_quantize_chunk(
                int(qtype),
                stacked[mat].ctypes.data,
                out[mat].ctypes.data,
                0,
                nrows,
                n_per_row,
                vector.ctypes.data if vector is not None else None,
            )
            if written != nrows * row_bytes:
                raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {nrows * row_bytes}")
        return out if weights.ndim == 3 else out[0]

    def _importance_rows(
        self, qtype: GGMLQuantizationType, importance: np.ndarray | None, n_mat: int, n_per_row: int
    ) -> np.ndarray | None:
        """Importance as a contiguous float32 (n_mat, n_per_row) array, checked so ggml never aborts the process."""
        if importance is None:
            if self.requires_imatrix(qtype):
                raise ValueError(f"{qtype.name} cannot be quantized without an importance vector")
            return None
        vectors = np.ascontiguousarray(importance, dtype=np.float32).reshape(-1, n_per_row)
        if vectors.shape[0] != n_mat:
            raise ValueError(f"importance has {vectors.shape[0]} rows of {n_per_row}, weights have {n_mat} matrices")
        if not np.isfinite(vectors).all():
            raise ValueError("importance vector contains non-finite values")
        return vectors

    def roundtrip(
        self, qtype: GGMLQuantizationType, weights: np.ndarray, importance: np.ndarray | None = None
    ) -> np.ndarray:
        """Quantize then dequantize (gguf.quants.dequantize): the float weights the quantized model will hold."""
        qtype = quant_type(qtype)
        data = self.quantize(qtype, weights, importance)
        return dequantize(data, qtype).reshape(np.shape(weights)).astype(np.float32, copy=False)
