"""Calibration text → token chunks exactly as llama-imatrix builds them (spec §2).

`.txt`: the whole file, one trailing newline stripped, special-token text NOT parsed by default (llama-imatrix's
default; `parse_special=True` is its `--parse-special`). `.parquet` (from `logminer split`): the column named `text`
holds one chat-template-rendered document per row; documents are joined with calibkit.calibration_text.DOCUMENT_SEPARATOR, so the
token stream equals that of the split's calibration.txt, and special tokens ARE parsed by default because the
template put them there on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibkit.calibration_text import DOCUMENT_SEPARATOR
from calibkit.calibration_text import TEXT_COLUMN as PARQUET_TEXT_COLUMN

DEFAULT_CTX = 512


class ChunkingError(ValueError):
    """Input that cannot be chunked; the message names the file or option and what is needed."""


@dataclass(frozen=True)
class ChunkOptions:
    """llama-imatrix's -c, --chunks and --chunk (skip)."""

    ctx_size: int = DEFAULT_CTX
    max_chunks: int = -1
    skip_chunks: int = 0


@dataclass(frozen=True)
class Tokenized:
    """The token stream of the calibration data and what produced it."""

    ids: np.ndarray  # int64, BOS first when add_bos
    add_bos: bool
    bos_id: int | None


def read_text(path: str | Path) -> str:
    """A .txt file as llama.cpp's `-f` reads it: raw bytes decoded as UTF-8, one trailing newline removed."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ChunkingError(f"{path}: not UTF-8 text (byte {error.start}): {error.reason}") from error
    return text[:-1] if text.endswith("\n") else text


def read_parquet_text(path: str | Path) -> str:
    """Documents of a logminer split (column `text`), joined exactly as the split's calibration.txt joins them."""
    import polars as pl

    path = Path(path)
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except Exception as error:  # polars raises several types for corrupt/foreign files
        raise ChunkingError(f"{path}: not a readable parquet file ({error})") from error
    if PARQUET_TEXT_COLUMN not in schema.names():
        raise ChunkingError(f"{path}: no {PARQUET_TEXT_COLUMN!r} column (columns: {', '.join(schema.names())})")
    texts = pl.scan_parquet(path).select(pl.col(PARQUET_TEXT_COLUMN).drop_nulls()).collect().to_series().to_list()
    text = DOCUMENT_SEPARATOR.join(texts)
    return text[:-1] if text.endswith("\n") else text


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".parquet"


def read_calibration(path: str | Path) -> str:
    return read_parquet_text(path) if is_parquet(path) else read_text(path)


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether the tokenizer itself puts BOS in front of a text (its post-processor / add_bos_token)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def resolve_add_bos(tokenizer, gguf_add_bos: bool | None, source: str) -> tuple[bool, int | None]:
    """(add_bos, bos_id): the GGUF's tokenizer.ggml.add_bos_token wins when given; the tokenizer must be able to."""
    add_bos = tokenizer_adds_bos(tokenizer) if gguf_add_bos is None else gguf_add_bos
    if add_bos and tokenizer.bos_token_id is None:
        raise ChunkingError(f"{source}: the GGUF sets tokenizer.ggml.add_bos_token but the tokenizer has no BOS token")
    return add_bos, tokenizer.bos_token_id if add_bos else None


def tokenize(text: str, tokenizer, *, parse_special: bool, add_bos: bool) -> Tokenized:
    """common_tokenize(text, add_special=true, parse_special): BOS once at the start, no other special tokens added."""
    encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=not parse_special,
                        verbose=False)["input_ids"]  # verbose=False: no "longer than model_max_length" warning
    bos = tokenizer.bos_token_id if add_bos else None
    ids = ([bos] if add_bos else []) + list(encoded)
    return Tokenized(np.asarray(ids, dtype=np.int64), add_bos, bos)


def make_chunks(tokens: Tokenized, options: ChunkOptions, source: str = "input") -> np.ndarray:
    """(n_chunk, ctx) token ids: --chunk skip, whole chunks only, first token of each chunk replaced by BOS."""
    n_ctx, n_tokens = options.ctx_size, len(tokens.ids)
    if n_ctx < 2:
        raise ChunkingError(f"--ctx-size {n_ctx}: must be at least 2")
    if n_tokens < 2 * n_ctx:
        raise ChunkingError(f"{source}: {n_tokens} tokens, llama-imatrix needs at least 2*ctx = {2 * n_ctx} "
                            f"for -c {n_ctx}; give more text or a smaller --ctx-size")
    skip = options.skip_chunks
    if skip < 0 or (skip > 0 and (skip + 2) * n_ctx >= n_tokens):
        raise ChunkingError(f"--chunk {skip}: {source} has {n_tokens} tokens, skipping {skip} chunks of {n_ctx} "
                            f"needs more than {(skip + 2) * n_ctx}")
    ids = tokens.ids[skip * n_ctx:]
    n_chunk = len(ids) // n_ctx
    if options.max_chunks >= 0:
        n_chunk = min(n_chunk, options.max_chunks)
    if n_chunk == 0:
        raise ChunkingError(f"--chunks {options.max_chunks}: no chunk to process")
    chunks = ids[: n_chunk * n_ctx].reshape(n_chunk, n_ctx).copy()
    if tokens.add_bos:
        chunks[:, 0] = tokens.bos_id
    return chunks
