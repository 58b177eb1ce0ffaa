"""Low-level HDF5 file handling: recognising, opening, locking and recovering dataset files.

* :func:`is_hdf5` looks for the HDF5 signature (at byte 0 or a power-of-two user-block offset)
  without going through the HDF5 library, so a text file or a locked file is classified fast.
* :func:`open_read` opens a file read-only. A file that a writer holds open in SWMR mode, or that a
  killed writer left behind, cannot be opened normally; it is then opened in SWMR-read mode
  without file locking, which HDF5 guarantees to be consistent for a SWMR writer's files.
* :class:`WriterLock` is an advisory ``flock`` held by ``generate`` on its ``.partial`` file for
  the whole run, so two processes never write (or resume) the same file; a second writer is told
  which process holds it (:func:`lock_holder`, from ``/proc/locks``).
* :func:`commit` is the only way a ``.partial`` becomes a dataset: it reads the closed file back,
  checks counts and every sample's checksum, then fsyncs and renames. HDF5's own locking is
  switched off on that file (``locking=False``) because a SWMR writer drops it anyway and it would
  conflict with ours; readers of a ``.partial`` therefore also open it with ``locking=False``.
* :func:`clear_write_flags` does what ``h5clear -s`` does: a SWMR writer killed with SIGKILL leaves
  the "open for writing" flags set in the version-3 superblock and HDF5 then refuses to open the
  file for writing. ``generate(resume=True)`` clears them while holding the writer lock. The
  superblock checksum (Jenkins lookup3, as HDF5 computes it) is verified before and rewritten after.

Crash safety covers a killed process (SIGKILL, OOM killer, a scheduler's time limit): every
completed write is in the operating system's page cache. It does not cover a power failure:
batches are flushed to the OS, not ``fsync``-ed (the completed file is, before its rename).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import h5py

from sciops.datasets.checksums import verify_file
from sciops.datasets.resources import SpaceReserve, is_write_failure

try:  # POSIX only; on other platforms the writer lock is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | os.PathLike) -> bool:
    """True if ``path`` carries the HDF5 signature at offset 0, 512, 1024, 2048, ..."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def check_exists(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such sciops dataset", os.fspath(path))
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a sciops dataset (an HDF5 file)")
    return path


def open_read(path: str | os.PathLike, *, locking: bool = True) -> h5py.File:
    """Open ``path`` read-only (FileNotFoundError if missing, ValueError if not an HDF5 file).

    ``locking=False`` skips HDF5's file lock; the writer uses it on the ``.partial`` it holds.
    """
    path = check_exists(path)
    if not is_hdf5(path):
        raise ValueError(f"{path} is not a sciops dataset (not an HDF5 file)")
    try:
        return h5py.File(path, "r") if locking else h5py.File(path, "r", locking=False)
    except (OSError, RuntimeError) as first:
        reason = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
        if "truncated file" in reason:  # HDF5's SWMR open retries such a file without end
            raise ValueError(f"{path} is truncated (HDF5: {reason}); expected a complete file: regenerate it, "
                             "or finish it with sciops generate --resume if it is a .partial") from None
        if not superblock_intact(path) or not write_flags(path):
            # HDF5's SWMR open retries a damaged superblock without end: only a file a writer has
            # (or had) open, with an intact superblock, is worth opening that way
            raise ValueError(f"{path} is damaged or not a sciops dataset (HDF5 cannot open it: {reason}); "
                             f"regenerate it") from None
        try:  # being written (SWMR), or left open-for-write by a killed writer
            return h5py.File(path, "r", swmr=True, locking=False)
        except (OSError, RuntimeError):
            raise ValueError(f"{path} is not a sciops dataset (HDF5 cannot open it: {reason})") from None


def write_guarded(partial: str | os.PathLike, reserve_bytes: int, open_file, write) -> BaseException | None:
    """Open an HDF5 file with ``open_file()``, run ``write(h5)`` and close it, keeping
    ``reserve_bytes`` free beside it (:class:`~sciops.datasets.resources.SpaceReserve`).

    A write the machine refuses (full disk, read-only, permissions) gives the reserve back, frees the
    writing frames' HDF5 objects and closes the file cleanly; the failure is then returned (not
    raised) so the caller can say what it leaves behind. Any other error is raised as usual.
    """
    h5 = None
    failure = None
    with SpaceReserve(partial, reserve_bytes) as reserve:
        try:
            h5 = open_file()
            write(h5)
        except (OSError, RuntimeError) as exc:
            if not is_write_failure(exc):
                raise
            reserve.release()  # room for HDF5 to flush and close the file cleanly ...
            failure = exc.with_traceback(None)  # ... once the writing frames' HDF5 objects are gone
        finally:
            if h5 is not None:
                try:
                    h5.close()
                except (OSError, RuntimeError) as exc:
                    failure = failure or exc.with_traceback(None)
    return failure


def commit(partial: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Verify a closed ``.partial`` and rename it to ``path``: every sample written, ``complete`` set,
    every checksum matching (read back through a fresh handle, so from the file, not a cache); then
    fsync and ``os.replace``. A file that fails is left as it is and a ``CorruptDatasetError`` says why."""
    from sciops.datasets import schema as S

    partial, path = Path(partial), Path(path)
    with open_read(partial, locking=False) as h5:
        attrs = S.decode_attrs(h5.attrs)
        n, written = int(attrs.get(S.ATTR_N_SAMPLES, -1)), int(attrs.get(S.ATTR_N_WRITTEN, -2))
        if not attrs.get(S.ATTR_COMPLETE) or written != n:
            raise S.CorruptDatasetError(f"{partial}: {written} of {n} samples recorded after writing all of them; "
                                        f"not renamed to {path.name}")
        first_bad = verify_file(h5, partial)
    if first_bad < n:
        raise S.CorruptDatasetError(f"{partial}: sample {first_bad} read back differs from what was written "
                                    f"(checksum); not renamed to {path.name}")
    with open(partial, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, path)
    return path


# --- writer lock --------------------------------------------------------------------------------
def lock_holder(path: str | os.PathLike) -> int | None:
    """The process id holding a ``flock`` on ``path``, from ``/proc/locks`` (Linux); None elsewhere."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
                    return int(parts[4])
    except (OSError, ValueError):
        pass
    return None


class WriterLock:
    """Exclusive advisory lock on ``path`` (created empty if absent), held until :meth:`release`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> "WriterLock":
        if fcntl is None:  # pragma: no cover
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                holder = lock_holder(self.path)
                who = f"process {holder}" if holder else "another process"
                raise ValueError(f"{self.path} is being written by {who} now; wait for it to finish or stop "
                                 f"it before resuming or overwriting") from None
            return self  # the filesystem cannot lock (ENOLCK, EOPNOTSUPP): go on without
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def open_swmr_write(path: str | os.PathLike, libver) -> h5py.File:
    """Open an existing file for writing directly in SWMR mode (no window in plain write mode),
    without HDF5 file locking (the caller holds a :class:`WriterLock`)."""
    from h5py._hl.files import make_fapl  # h5py's own file-access property list, as File() builds it

    fapl = make_fapl(None, libver, None, None, None, locking=False)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


# --- superblock status flags ----------------------------------------------------------------------
_MASK = 0xFFFFFFFF
SUPER_WRITE_ACCESS = 0x01  # H5F_SUPER_WRITE_ACCESS: open for writing
SUPER_SWMR_WRITE_ACCESS = 0x04  # H5F_SUPER_SWMR_WRITE_ACCESS: open for writing in SWMR mode


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, HDF5's metadata checksum (H5_checksum_lookup3)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _MASK
    if n == 0:
        return c
    i = 0
    while n - i > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _MASK
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK  # noqa: E702
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK  # noqa: E702
        i += 12
    tail = bytes(data[i:]) + bytes(12 - (n - i))
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c ^= b; c = (c - _rot(b, 14)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _MASK  # noqa: E702
    return c


def write_flags(path: str | os.PathLike) -> int:
    """The superblock's file-consistency flags (0 for a cleanly closed file or an old superblock)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:8] != HDF5_SIGNATURE or len(head) < 12 or head[8] < 2:
        return 0
    return head[11]


def killed_before_swmr(path: str | os.PathLike) -> bool:
    """True for a file whose writer died while it was open for writing outside SWMR mode (or before
    HDF5 wrote a superblock): its metadata may be torn. ``generate`` stores no sample before it
    switches to SWMR mode, so such a ``.partial`` holds nothing worth keeping."""
    if not is_hdf5(path) or os.path.getsize(path) < 48:  # no complete superblock yet
        return True
    flags = write_flags(path)
    return bool(flags & SUPER_WRITE_ACCESS) and not flags & SUPER_SWMR_WRITE_ACCESS


def superblock_intact(path: str | os.PathLike) -> bool:
    """True if the version-2/3 superblock at offset 0 matches its checksum (older versions: True)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:8] != HDF5_SIGNATURE or len(head) < 12:
                return False
            if head[8] < 2:
                return True
            body_len = 12 + 4 * head[9]
            fh.seek(0)
            block = fh.read(body_len + 4)
    except OSError:
        return False
    return len(block) == body_len + 4 and lookup3(block[:body_len]) == int.from_bytes(block[body_len:], "little")


def clear_write_flags(path: str | os.PathLike) -> bool:
    """Reset the open-for-writing flags a killed SWMR writer left in the superblock (``h5clear -s``).

    Only for files written by ``generate`` (superblock version >= 2 at offset 0). Returns True if
    flags were cleared. Raises ValueError if the superblock is not what is expected.
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != HDF5_SIGNATURE or len(head) < 12:
            raise ValueError(f"{path}: no HDF5 superblock at offset 0; cannot clear its write flags")
        if head[8] < 2 or head[11] == 0:
            return False
        size_of_offsets = head[9]
        body_len = 12 + 4 * size_of_offsets  # signature..flags, 4 addresses
        fh.seek(0)
        block = bytearray(fh.read(body_len + 4))
        stored = int.from_bytes(block[body_len:], "little")
        if len(block) != body_len + 4 or lookup3(bytes(block[:body_len])) != stored:
            raise ValueError(f"{path}: the HDF5 superblock checksum does not match; the file is damaged")
        block[11] = 0
        block[body_len:] = lookup3(bytes(block[:body_len])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True
