"""Text → chunks exactly like llama-imatrix (spec §2), counted by hand on a word-level tokenizer."""

from __future__ import annotations

import polars as pl
import pytest

from imatrix.collect.chunks import (
    ChunkingError,
    ChunkOptions,
    Tokenized,
    make_chunks,
    read_calibration,
    read_parquet_text,
    read_text,
    resolve_add_bos,
    tokenize,
    tokenizer_adds_bos,
)

WORDS = ["<s>", "[UNK]", "<start_of_turn>", "<", ">", "start_of_turn"] + [f"w{i}" for i in range(100)]


def word_tokenizer(with_bos: bool = True):
    """Whitespace word tokenizer: token id of `wN` is N + 6; BOS `<s>` is 0 and is added by the post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if with_bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                        bos_token="<s>" if with_bos else None)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>"]})
    return tokenizer


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i % 100}" for i in range(start, start + n))


def stream(n_words: int) -> Tokenized:
    tokenizer = word_tokenizer()
    return tokenize(words(n_words), tokenizer, parse_special=False, add_bos=True)


def test_bos_once_then_words():
    tokens = stream(5)
    assert tokens.ids.tolist() == [0, 6, 7, 8, 9, 10]


def test_chunks_overwrite_first_token_with_bos_and_drop_partial():
    tokens = stream(22)  # 23 tokens with BOS → 5 chunks of 4, 3 tokens dropped
    chunks = make_chunks(tokens, ChunkOptions(ctx_size=4))
    assert chunks.shape == (5, 4)
    assert chunks[0].tolist() == [0, 6, 7, 8]
    assert chunks[1].tolist() == [0, 10, 11, 12]  # real token w3 (id 9) lost to BOS
    assert chunks[4].tolist() == [0, 22, 23, 24]


def test_chunks_limit_and_skip():
    tokens = stream(22)
    assert make_chunks(tokens, ChunkOptions(4, max_chunks=2)).shape == (2, 4)
    skipped = make_chunks(tokens, ChunkOptions(4, skip_chunks=2))  # drops tokens 0..7
    assert skipped.shape == (3, 4)
    assert skipped[0].tolist() == [0, 14, 15, 16]
    with pytest.raises(ChunkingError, match="--chunk 4"):
        make_chunks(tokens, ChunkOptions(4, skip_chunks=4))  # (4+2)*4 = 24 >= 23


def test_too_short_says_how_many_tokens():
    with pytest.raises(ChunkingError, match="7 tokens.*at least 2\\*ctx = 8"):
        make_chunks(stream(6), ChunkOptions(4), "short.txt")
    assert make_chunks(stream(7), ChunkOptions(4)).shape == (2, 4)


def test_no_bos_tokenizer_keeps_first_tokens():
    tokenizer = word_tokenizer(with_bos=False)
    assert not tokenizer_adds_bos(tokenizer)
    add_bos, _ = resolve_add_bos(tokenizer, None, "m")
    tokens = tokenize(words(8), tokenizer, parse_special=False, add_bos=add_bos)
    assert make_chunks(tokens, ChunkOptions(4))[1].tolist() == [10, 11, 12, 13]
    with pytest.raises(ChunkingError, match="add_bos_token.*no BOS"):
        resolve_add_bos(tokenizer, True, "model.gguf")


def test_parse_special_switch():
    tokenizer = word_tokenizer()
    text = "<start_of_turn> w1"
    assert tokenize(text, tokenizer, parse_special=True, add_bos=True).ids.tolist() == [0, 2, 7]
    assert tokenize(text, tokenizer, parse_special=False, add_bos=True).ids.tolist() == [0, 3, 5, 4, 7]


def test_one_trailing_newline_stripped_backslashes_kept(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_bytes(b"a\\nb\n\n")
    assert read_text(path) == "a\\nb\n"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ChunkingError, match="not UTF-8"):
        read_text(path)


def test_parquet_documents_joined_like_a_txt(tmp_path):
    path = tmp_path / "calibration.parquet"
    pl.DataFrame({"id": [1, 2], "text": ["first doc", "second doc\n"]}).write_parquet(path)
    assert read_parquet_text(path) == "first doc\n\nsecond doc"  # logminer DOCUMENT_SEPARATOR
    assert read_calibration(path) == "first doc\n\nsecond doc"
    pl.DataFrame({"body": ["x"]}).write_parquet(path)
    with pytest.raises(ChunkingError, match="no 'text' column.*body"):
        read_parquet_text(path)
    path.write_bytes(b"not parquet")
    with pytest.raises(ChunkingError, match="not a readable parquet"):
        read_parquet_text(path)


@pytest.mark.slow
def test_gemma_tokenizer_special_text_is_plain_unless_parse_special():
    from imatrix.model.loading import gguf_add_bos, load_tokenizer, resolve_source

    source = resolve_source("gemma3-270m")
    tokenizer = load_tokenizer(source)
    assert gguf_add_bos(source) is True
    add_bos, bos = resolve_add_bos(tokenizer, gguf_add_bos(source), source.label)
    assert (add_bos, bos) == (True, 2)
    plain = tokenize("<start_of_turn>user", tokenizer, parse_special=False, add_bos=True).ids
    special = tokenize("<start_of_turn>user", tokenizer, parse_special=True, add_bos=True).ids
    start_of_turn = tokenizer.convert_tokens_to_ids("<start_of_turn>")
    assert special.tolist()[:2] == [2, start_of_turn]
    assert start_of_turn not in plain.tolist() and len(plain) > len(special) + 2
    assert tokenize("The capital of France is", tokenizer, parse_special=False,
                    add_bos=True).ids.tolist() == [2, 818, 5279, 529, 7001, 563]  # spec §9


def test_split_parquet_reads_as_its_calibration_txt(tmp_path, example_logs):
    """imatrix collect on calibration.parquet sees the same text as llama-imatrix -f calibration.txt."""
    from click.testing import CliRunner

    from imatrix.collect.chunks import read_parquet_text, read_text
    from logminer.cli import main

    result = CliRunner().invoke(main, ["split", str(example_logs), "-o", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    parquet_text = read_parquet_text(tmp_path / "split" / "calibration.parquet")
    assert parquet_text and parquet_text == read_text(tmp_path / "split" / "calibration.txt")
