"""Memory and disk: what a job will need, what the machine has, and one-line errors for writes.

* :class:`WriteError` (an ``OSError`` with ``errno``): a write that failed, named by path and
  cause ("no space left on device", "read-only file system", "permission denied"). Every sciops
  writer raises it at the first failed write, after making the output safe; its message says what
  happened to the unfinished file (kept and resumable, or removed).
* :func:`check_writable` creates and removes a probe file beside an output path, so an output the
  process cannot create (a read-only mount, ``/proc``, a full disk) is refused before any work.
  ``os.access`` is not enough: it says yes to root on read-only and pseudo file systems.
* :class:`SpaceReserve` keeps some space free beside an HDF5 output (what a close may still have
  to write) and gives it back when a write fails, so the file can still be closed cleanly.
* :func:`available_memory` and :func:`free_disk` read what this process may still use: the least
  of ``MemAvailable``, the cgroup's ``memory.max`` less its usage, and ``RLIMIT_AS``; and the free
  bytes of the file system that will hold a path.
* :func:`check_fits` refuses work whose estimate exceeds them (``ResourceError``, a ``ValueError``;
  ``force=True`` skips it), naming the estimate, what is available and the largest setting that
  fits when the caller knows one.
"""
from __future__ import annotations

import errno
import os
import resource
import uuid
from pathlib import Path

_CAUSES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
           errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
           errno.EPERM: "operation not permitted", errno.EIO: "input/output error",
           errno.EFBIG: "file too large for this process's size limit"}


def format_bytes(nbytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover


class WriteError(OSError):
    """A write that failed; ``str()`` is the one-line message (path, cause, state of the output)."""

    def __init__(self, path: str | os.PathLike, cause: BaseException | int, state: str = "") -> None:
        code = cause if isinstance(cause, int) else error_number(cause)
        reason = _CAUSES.get(code) or (os.strerror(code) if code else _first_line(cause))
        if isinstance(cause, int) and code not in _CAUSES:  # e.g. ENOENT in /proc: the folder takes no files
            reason = f"cannot create a file in {Path(path).parent} ({os.strerror(code)})"
        super().__init__(code or errno.EIO, reason, os.fspath(path))
        self.message = f"cannot write {os.fspath(path)}: {reason}" + (f"; {state}" if state else "")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # OSError pickles its args; ours differ (a worker's error reaches the driver)
        return _rebuild_write_error, (self.filename, self.errno, self.message)


def _rebuild_write_error(path, code, message) -> WriteError:
    error = WriteError(path, code)
    error.message = message
    return error


class ResourceError(ValueError):
    """Work refused up front because its estimate exceeds the memory or disk available."""


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def error_number(exc: BaseException) -> int | None:
    """The errno behind ``exc``: its own, or one HDF5 / torch wrote into the message ("errno = 28")."""
    if isinstance(exc, OSError) and exc.errno in _CAUSES:
        return exc.errno
    text = str(exc)
    for code, name in ((errno.ENOSPC, "No space left"), (errno.EDQUOT, "quota exceeded"),
                       (errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")):
        if name in text or f"errno = {code}," in text:
            return code
    return exc.errno if isinstance(exc, OSError) and exc.errno else None


def is_write_failure(exc: BaseException) -> bool:
    """True for the failures a user fixes on the machine (space, quota, read-only, permissions)."""
    return error_number(exc) in _CAUSES


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Raise ``WriteError`` (or ``NotADirectoryError``) unless a file can be created beside ``path``."""
    path = Path(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{what} {path}: {parent} is not a directory")
    probe = parent / f".sciops-probe-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 512)  # a full disk still lets an empty file be created
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in _CAUSES:
            raise WriteError(path, exc, f"{what} checked before any work") from None
        raise WriteError(path, exc.errno or errno.EIO, f"{what} checked before any work") from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return path


class SpaceReserve:
    """Disk space held back beside an HDF5 output while it is written, given back on a failed write.

    HDF5 must flush its caches to close a file; when a full disk makes that close fail, the library
    crashes at interpreter exit (a segfault) and the file's metadata stay unflushed. Deleting the
    reserve first lets the close succeed, so the samples recorded so far stay readable and the
    error is reported in one line. ``nbytes`` should cover what the close may flush (one batch).
    """

    def __init__(self, beside: str | os.PathLike, nbytes: int) -> None:
        self.beside = Path(beside)
        self.path = self.beside.with_name(f".{self.beside.name}.reserve")
        self.nbytes = int(nbytes)

    def __enter__(self) -> "SpaceReserve":
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.nbytes)
            finally:
                os.close(fd)
        except OSError as exc:
            self.release()
            raise WriteError(self.beside, exc, f"no room for the {format_bytes(self.nbytes)} kept free while writing "
                                               f"it; nothing written") from None
        return self

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        self.release()


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes (for an unprivileged writer) on the file system that holds ``path``'s folder."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _cgroup_free() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def available_memory() -> int | None:
    """Bytes this process may still allocate, or None where the platform does not say."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    cgroup = _cgroup_free()
    if cgroup is not None:
        candidates.append(cgroup)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            vm = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            vm = _rss()
        candidates.append(soft - vm)
    return max(0, min(candidates)) if candidates else None


def check_fits(what: str, memory: int, disk: int, output: str | os.PathLike, *, force: bool = False,
               fits_hint: str = "") -> None:
    """``ResourceError`` if ``memory`` bytes exceed :func:`available_memory` or ``disk`` bytes exceed
    :func:`free_disk` of ``output`` (unless ``force``)."""
    if force:
        return
    problems = []
    have = available_memory()
    if have is not None and memory > have:
        problems.append(f"needs about {format_bytes(memory)} of memory, {format_bytes(have)} available")
    free = free_disk(output)
    if disk > free:
        problems.append(f"writes up to {format_bytes(disk)}, {format_bytes(free)} free on the disk of {output}")
    if problems:
        hint = f"; {fits_hint}" if fits_hint else ""
        raise ResourceError(f"{what} {' and '.join(problems)}{hint} (estimates; --force runs it anyway)")
