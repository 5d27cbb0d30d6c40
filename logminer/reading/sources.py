"""Input discovery and decoding: files, folders, globs, .gz/.zst, each handed to readers as a SourceFile.

Formats are detected from content, never from the extension alone (the extension only selects decompression,
and even that is confirmed by the magic bytes).
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
HEAD_CHARS = 65536
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is rejected, not parsed


class SourceError(Exception):
    """A whole file could not be read (missing, undecodable, corrupt compression)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def decompress(raw: bytes, path: str) -> bytes:
    try:
        if raw.startswith(GZIP_MAGIC):
            return gzip.decompress(raw)
        if raw.startswith(ZSTD_MAGIC):
            import zstandard

            stream = zstandard.ZstdDecompressor().decompressobj()
            data = stream.decompress(raw)
            if not stream.eof:  # decompressobj returns what it has for a cut-off frame instead of raising
                raise SourceError(path, "cannot decompress: truncated zstd stream")
            return data
    except SourceError:
        raise
    except Exception as error:  # corrupt or truncated archive
        raise SourceError(path, f"cannot decompress: {error}") from error
    return raw


@dataclass
class SourceFile:
    """One input file, decompressed; `path` is the name used in every report and output row."""

    path: str
    data: bytes = field(repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SourceFile:
        path = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as error:
            raise SourceError(path, f"cannot read: {error.strerror or error}") from error
        return cls(path, decompress(raw, path))

    @cached_property
    def text(self) -> str:
        """The whole file as text: UTF-8 (BOM stripped), else UTF-16 with a BOM; undecodable bytes are an error."""
        data = self.data
        encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            name = "UTF-16" if encoding == "utf-16" else "UTF-8"
            raise SourceError(self.path, f"not {name} text (byte {error.start})") from error

    @cached_property
    def head(self) -> str:
        """The first HEAD_CHARS characters, decoded leniently: for sniffing only."""
        return self.data[: HEAD_CHARS * 4].decode("utf-8-sig", errors="replace")[:HEAD_CHARS]

    @property
    def is_binary(self) -> bool:
        return b"\x00" in self.data[:8192] and not self.data.startswith((b"\xff\xfe", b"\xfe\xff"))

    def lines(self) -> Iterator[tuple[int, int, bytes]]:
        """(1-based line number, byte offset, raw line without the newline) for every line."""
        data = self.data
        offset = 0
        number = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            if end < 0:
                end = len(data)
            number += 1
            yield number, offset, data[offset:end].rstrip(b"\r")
            offset = end + 1


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files, folders (walked recursively) and globs → a sorted, de-duplicated list of file paths.

    A path that names nothing raises SourceError, so a typo never silently reads zero files.
    """
    found: set[str] = set()
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise SourceError(item, "no such file, folder or glob match")
        for match in matches:
            if os.path.isdir(match):
                for root, dirs, files in os.walk(match):
                    dirs.sort()
                    found.update(os.path.join(root, name) for name in files)
            else:
                found.add(match)
    return sorted(found)
