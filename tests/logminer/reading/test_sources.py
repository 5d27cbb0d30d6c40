"""Input sources: gzip and zstd are opened transparently (a cut-off archive is an error naming the file), text is
UTF-8 or UTF-16 with a BOM, lines keep their numbers, and inputs expand to a sorted list where a typo is an error."""

from __future__ import annotations

import gzip

import pytest
import zstandard

from logminer.reading.sources import SourceError, SourceFile, expand_inputs


def test_compressed_files_read_as_their_content(tmp_path):
    content = '{"role": "user", "content": "héllo"}\n' * 3
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(content.encode()))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(content.encode()))
    for name in ("a.jsonl.gz", "a.jsonl.zst"):
        assert SourceFile.open(tmp_path / name).text == content
    cut = zstandard.ZstdCompressor().compress(content.encode() * 100)[:-8]
    (tmp_path / "cut.zst").write_bytes(cut)
    with pytest.raises(SourceError, match="cut.zst: cannot decompress"):
        SourceFile.open(tmp_path / "cut.zst")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(content.encode())[:20])
    with pytest.raises(SourceError, match="cut.gz: cannot decompress"):
        SourceFile.open(tmp_path / "cut.gz")


def test_text_encodings_and_binary(tmp_path):
    (tmp_path / "bom8.txt").write_bytes("\ufeffplain".encode())
    (tmp_path / "utf16.txt").write_bytes("wide text".encode("utf-16"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert SourceFile.open(tmp_path / "bom8.txt").text == "plain"
    utf16 = SourceFile.open(tmp_path / "utf16.txt")
    assert utf16.text == "wide text" and not utf16.is_binary
    with pytest.raises(SourceError, match=r"latin1.txt: not UTF-8 text \(byte 3\)"):
        SourceFile.open(tmp_path / "latin1.txt").text
    assert SourceFile("x.bin", b"\x00\x01binary").is_binary
    with pytest.raises(SourceError, match="missing.jsonl: cannot read"):
        SourceFile.open(tmp_path / "missing.jsonl")


def test_lines_keep_numbers_and_offsets():
    source = SourceFile("x.jsonl", b"first\r\n\nthird\nlast")
    assert list(source.lines()) == [(1, 0, b"first"), (2, 7, b""), (3, 8, b"third"), (4, 14, b"last")]


def test_inputs_expand_sorted_and_typos_fail(tmp_path):
    (tmp_path / "logs" / "b").mkdir(parents=True)
    for name in ("logs/z.jsonl", "logs/a.jsonl", "logs/b/c.json", "other.txt"):
        (tmp_path / name).write_text("x")
    found = expand_inputs([str(tmp_path / "logs"), str(tmp_path / "*.txt"), str(tmp_path / "logs" / "a.jsonl")])
    assert found == sorted(str(tmp_path / n) for n in ("logs/a.jsonl", "logs/b/c.json", "logs/z.jsonl", "other.txt"))
    with pytest.raises(SourceError, match="no such file, folder or glob match"):
        expand_inputs([str(tmp_path / "log")])
    with pytest.raises(SourceError, match="no such file"):
        expand_inputs([str(tmp_path / "*.nothing")])
