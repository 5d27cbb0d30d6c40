"""Input discovery and decoding: files, folders, globs, .gz/.zst, each handed to readers as a SourceFile.

Formats are detected from content, never from the extension alone (the extension only selects decompression,
and even that is confirmed by the magic bytes).
"""

from __future__ import annotations

import errno
import glob
import gzip
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
HEAD_CHARS = 65536
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is rejected, not parsed
CONTROL_BYTES = bytes([*range(0, 8), *range(14, 27), *range(28, 32)])  # C0 controls text does not use


class SourceError(Exception):
    """A whole file could not be read (missing, not a regular file, unreadable, undecodable, corrupt compression)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # a worker process hands it to the parent: pickle both arguments, not the message
        return (type(self), (self.path, self.reason))


def safe_name(path: str) -> str:
    """The path as printable UTF-8: bytes of a non-UTF-8 file name (held by Python as surrogate escapes) shown as
    \\xNN, so reports and parquet files can carry it."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


FILE_TYPES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def _not_regular(mode: int) -> str | None:
    kind = next((name for test, name in FILE_TYPES if test(mode)), None if stat.S_ISREG(mode) else "not a file")
    return f"{kind}, not a regular file: skipped without opening" if kind else None


def read_regular_file(path: str) -> bytes:
    """The bytes of a regular file; SourceError (with the reason) for anything else, decided by file type before
    opening: a FIFO would block a read for ever, a device could have effects or never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise SourceError(safe_name(path), _stat_reason(path, error)) from None
    if stat.S_ISDIR(mode):  # listed by expand_inputs because it could not be walked
        try:
            os.scandir(path).close()
        except OSError as error:
            raise SourceError(safe_name(path), f"cannot list this folder: {error.strerror or error}") from None
    if (reason := _not_regular(mode)) is not None:
        raise SourceError(safe_name(path), reason)
    if safe_name(path) != path:
        raise SourceError(safe_name(path), "file name is not valid UTF-8 (shown with \\x escapes); rename it")
    try:  # O_NONBLOCK: had it become a FIFO since the stat, opening does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise SourceError(path, f"cannot read: {error.strerror or error}") from None
    try:
        if (reason := _not_regular(os.fstat(fd).st_mode)) is not None:
            raise SourceError(path, reason)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError as error:
        raise SourceError(path, f"cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)


def _stat_reason(path: str, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno == errno.ENOENT and os.path.islink(path):
        return f"dangling symbolic link (to {safe_name(os.readlink(path))}, which does not exist)"
    return f"cannot read: {error.strerror or error}"


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

    def __post_init__(self) -> None:
        self.data = to_utf8(self.data, self.path)  # UTF-16/32 with a BOM: every reader sniffs UTF-8

    @classmethod
    def open(cls, path: str | os.PathLike) -> SourceFile:
        path = str(path)
        return cls(path, decompress(read_regular_file(path), path))

    @cached_property
    def text(self) -> str:
        """The whole file as text: UTF-8 (BOM stripped); undecodable bytes are an error."""
        try:
            return self.data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise SourceError(self.path, f"not UTF-8 text (byte {error.start})") from error

    @cached_property
    def head(self) -> str:
        """The first HEAD_CHARS characters, decoded leniently: for sniffing only."""
        return self.data[: HEAD_CHARS * 4].decode("utf-8-sig", errors="replace")[:HEAD_CHARS]

    @property
    def is_binary(self) -> bool:
        """NUL bytes, and control bytes making up over 1% of the first 8 KB: binary. A stray raw NUL in a JSONL
        line is not: that line is rejected by its reader, and the file's other lines are read."""
        sample = self.data[:8192]
        if b"\x00" not in sample:
            return False
        return (len(sample) - len(sample.translate(None, CONTROL_BYTES))) * 100 > len(sample)

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


# longest first: the UTF-32 LE mark starts with the UTF-16 LE one
BYTE_ORDER_MARKS = ((b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"), (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"),
                    (b"\xfe\xff", "utf-16-be", "UTF-16"), (b"\xff\xfe", "utf-16-le", "UTF-16"))


def to_utf8(data: bytes, path: str) -> bytes:
    """UTF-16/32 text with a byte-order mark re-encoded as UTF-8 before any reader sniffs it; other bytes as they
    are (UTF-8, with or without its BOM, or binary formats that sniff their own magic)."""
    for mark, codec, name in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            try:
                return data[len(mark) :].decode(codec).encode("utf-8")
            except UnicodeDecodeError as error:
                raise SourceError(path, f"not {name} text (byte {error.start + len(mark)})") from None
    return data


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files, folders (walked recursively) and globs → a sorted, de-duplicated list of file paths.

    A path that names nothing raises SourceError, so a typo never silently reads zero files. Everything else that is
    listed — dangling or looping symbolic links, FIFOs, devices, a sub-folder that cannot be listed — is returned,
    for the readers to reject with its reason (SourceFile.open), one counted rejection each.
    """
    found: set[str] = set()
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches or not all(os.path.lexists(m) for m in matches):
            raise SourceError(safe_name(item), "no such file, folder or glob match")
        for match in matches:
            if os.path.isdir(match):
                unlisted: list[str] = []
                for root, dirs, files in os.walk(match, onerror=lambda error: unlisted.append(error.filename)):
                    dirs.sort()
                    found.update(os.path.join(root, name) for name in files)
                found.update(str(folder) for folder in unlisted if folder)
            else:
                found.add(match)
    return sorted(found)
