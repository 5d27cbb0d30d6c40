"""Plain text catch-all: one single-turn document per text file; binary and undecodable data refused."""

from __future__ import annotations

from logminer.reading.formats import plain_text
from logminer.reading.sources import SourceFile
from logminer.schema import Rejected, Skipped


def test_text_and_code(example_logs):
    [notes] = list(plain_text.parse(SourceFile.open(example_logs / "plain-text" / "release_notes.txt")))
    [code] = list(plain_text.parse(SourceFile.open(example_logs / "plain-text" / "fib.py")))
    assert [t.role for t in notes.turns] == ["user"] and notes.metadata == {"kind": "text"}
    assert code.metadata == {"kind": "code"} and code.turns[0].text.startswith('"""Fibonacci')
    assert (notes.line_start, notes.line_end, notes.records) == (1, 6, 6)  # wc -l: 6 lines, 2 of them blank


def test_real_corpora(real_logs):
    wiki = real_logs / "plain-text" / "wikitext-2-raw-v1_wiki.test.raw"
    [session] = list(plain_text.parse(SourceFile.open(wiki)))
    assert "\r" not in session.turns[0].text  # CRLF normalised
    assert session.line_end == session.records == 2891  # MANIFEST: 2891 lines (wc -l)
    [code] = list(plain_text.parse(SourceFile.open(real_logs / "plain-code" / "sweagent_agents.py")))
    assert code.metadata["kind"] == "code" and code.line_end == code.records == 1294


def test_refusals(tmp_path):
    assert not plain_text.sniff(SourceFile("a.bin", b"\x00\x01\x02\x03"))
    assert not plain_text.sniff(SourceFile("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1")))
    assert plain_text.sniff(SourceFile("utf16.txt", "\ufeffhello".encode("utf-16-le")))
    cut = ("é" * 70000).encode("utf-8")  # a character cut at the sniff window is not an error
    assert plain_text.sniff(SourceFile("long.txt", cut))
    [event] = list(plain_text.parse(SourceFile("blank.txt", b"  \n\n")))
    assert isinstance(event, Skipped) and event.records == 2
    [event] = list(plain_text.parse(SourceFile("bad.txt", b"ok\n\xff\xfe\xfd")))
    assert isinstance(event, Rejected) and "UTF-8" in event.reason and event.records == 2
