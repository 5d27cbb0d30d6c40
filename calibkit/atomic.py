"""Outputs written whole: atomic file writes (temporary file in the same folder, fsync, rename over the target),
folders published as one unit (a temporary sibling swapped into place), a lock per output so two runs never mix,
removal of what a killed run left, and file hashing for manifests."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except OSError as error:
        if error.filename is None:  # a writer's failed write (e.g. a full disk) names no file: name the target
            raise OSError(error.errno, error.strerror or str(error), str(target)) from error
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_atomic(target: str | os.PathLike, data: bytes | str) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)


def write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call writer(tmp_path) (e.g. a polars write_parquet) and move the result into place atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (manifests, checkpoints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- outputs published as a unit


class OutputBusy(Exception):
    """Another run holds the output's lock; the message names the output and that run's process id."""


class OutputRefused(Exception):
    """The output path holds something this command did not write, which publishing would replace."""


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `target` (a `.NAME.lock` file beside it) for the whole run; a second run on
    the same output fails at once. The lock file stays (removing it would let a third run lock a fresh file while
    the second still holds the old one); the kernel releases the lock when the process ends, even by SIGKILL."""
    import fcntl

    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputBusy(f"{target}: another run (process {holder}) is writing this output; wait for it to "
                             "finish or choose another output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def leftovers(target: str | os.PathLike) -> list[Path]:
    """What killed runs left beside `target`: temporary files of atomic writes (.NAME.*.tmp), unpublished and
    replaced folders (.NAME.tmp-*, .NAME.old-*) and ingest's part folders (.NAME.parts.*)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    patterns = [f".{target.name}.*.tmp", f".{target.name}.tmp-*", f".{target.name}.old-*", f".{target.name}.parts.*"]
    return sorted({path for pattern in patterns for path in target.parent.glob(pattern)})


def remove_leftovers(*targets: str | os.PathLike) -> list[Path]:
    """Remove `leftovers` of every target; call it while holding the output's lock (no live run owns them)."""
    removed = []
    for target in targets:
        for path in leftovers(target):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def fsync_folder(folder: str | os.PathLike) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE, through ctypes: Python has no binding);
    False where the system or file system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), str(second))


@contextmanager
def publish_folder(target: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Write a whole output folder as one unit: lock `target`, remove what killed runs left, yield a fresh
    temporary sibling to fill (write `marker`, the manifest, last); on success the sibling replaces `target` in one
    rename, so a reader sees the previous complete folder or the new one, never a mix; on error (or a kill) `target`
    is untouched. An existing `target` is only replaced when it is empty or holds `marker` (a previous output); a
    symbolic link to a folder is followed (the folder it names is replaced, the link stays)."""
    target = Path(os.path.realpath(target))
    with output_lock(target):
        remove_leftovers(target)
        if target.exists() and not _replaceable(target, marker):
            raise OutputRefused(f"{target}: exists and is not an output of this command (no {marker}); not "
                                "replacing it: give a new or empty folder")
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            os.chmod(staging, 0o777 & ~_umask())
            yield staging
            fsync_folder(staging)
            if not target.exists():
                os.rename(staging, target)
            elif _exchange(staging, target):
                pass  # staging now names the previous output
            else:  # two renames: for an instant `target` is absent, never mixed
                previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.rename(target, previous / "replaced")
                os.rename(staging, target)
                staging = previous
            fsync_folder(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _replaceable(target: Path, marker: str) -> bool:
    if target.is_symlink() or not target.is_dir():
        return False
    return (target / marker).is_file() or not any(target.iterdir())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def manifest_files(folder: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file in `folder` (names relative to it, sorted), for the manifest written last."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name not in exclude}
