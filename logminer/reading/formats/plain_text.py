"""The catch-all: any text file (UTF-8, or UTF-16 with a BOM) is one document, a single-turn session.

Generic calibration text (wikitext, source code) enters the pipeline this way. The document is one `user` turn
(newlines normalised to \\n); metadata `kind` is "code" for source-file extensions or a shebang, else "text".
Must stay last in FORMAT_MODULES: it accepts everything that is not binary and decodes as text.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator

from logminer.reading.formats.jsondoc import content_hash, stable_id
from logminer.reading.registry import Format
from logminer.reading.sources import HEAD_CHARS, SourceError, SourceFile
from logminer.schema import Rejected, Session, Skipped, Turn

NAME = "plain-text"
RECORD_UNIT = "line"  # every line of the file, blank ones included (the document consumes them all)

CODE_EXTENSIONS = frozenset(
    ".py .pyi .js .jsx .ts .tsx .mjs .cjs .go .rs .c .h .cc .cpp .cxx .hpp .hh .java .kt .kts .scala .rb .php .pl "
    ".pm .lua .r .jl .swift .m .mm .cs .fs .hs .ml .ex .exs .erl .clj .dart .sh .bash .zsh .fish .ps1 .sql .cu "
    ".cuh .metal .vue .svelte .zig .nim .v .sv .vhd .cmake .gradle .toml .yaml .yml .ini .cfg .mk .proto .tf".split()
)
CODE_FILE_NAMES = frozenset({"Makefile", "Dockerfile", "CMakeLists.txt", "Justfile", "BUILD", "WORKSPACE"})


def sniff(source: SourceFile) -> bool:
    if source.is_binary or source.head.lstrip().startswith(("{", "[")):
        return False  # JSON that no reader claimed is an unknown shape or broken: detect.py rejects it with why
    data = source.data
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:  # final=False: a character cut at the end of the sample is not an error
        decoder.decode(data[: HEAD_CHARS * 4], final=len(data) <= HEAD_CHARS * 4)
    except UnicodeDecodeError:
        return False
    return True


def document_kind(path: str, text: str) -> str:
    """"code" for source files (by extension, name or shebang), "text" otherwise."""
    name = os.path.basename(path)
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    if os.path.splitext(name)[1].lower() in CODE_EXTENSIONS or name in CODE_FILE_NAMES or text.startswith("#!"):
        return "code"
    return "text"


def parse(source: SourceFile) -> Iterator[Session | Skipped | Rejected]:
    try:
        text = source.text
    except SourceError as error:  # every line is lost with the file
        data = source.data
        yield Rejected(source.path, 0, error.reason, records=data.count(b"\n") + (not data.endswith(b"\n")))
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if not text.strip():
        yield Skipped(source.path, 0, "empty text file", records=lines)
        return
    yield Session(
        session_id=stable_id(NAME, content_hash(source)),
        agent=NAME,
        source_file=source.path,
        turns=[Turn(role="user", text=text)],
        line_start=1,
        line_end=lines,
        byte_start=0,
        byte_end=len(source.data),
        records=lines,
        metadata={"kind": document_kind(source.path, text)},
    )


FORMAT = Format(NAME, RECORD_UNIT, sniff=sniff, parse=parse)
