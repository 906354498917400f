"""Reading the user's files (operating-system errors become one-line InputFileErrors) and
writing files atomically (:func:`atomic_write`, the one home of temporary file, fsync, rename)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy.lib.format as npy

from superspike.errors import InputFileError


@contextmanager
def reading(path: str | Path, kind: str) -> Iterator[None]:
    """Turn a missing file, a directory, a permission problem or another OS error met inside the
    block into ``InputFileError(path, ...)``; ``kind`` names what the file should be
    ("a ras file"). A device, pipe or socket is refused before the block runs: /dev/zero or a
    FIFO would be read without end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # the block meets the problem and reports it
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise InputFileError(path, f"is not a regular file (a device, pipe or socket), not {kind}")
    try:
        yield
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a directory, not {kind}") from None
    except PermissionError:
        raise InputFileError(path, "permission denied") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None


def check_regular(path: str | Path, kind: str) -> None:
    """Refuse a device, pipe or socket before a library opens it (see :func:`reading`)."""
    with reading(path, kind):
        pass


def read_bytes(path: str | Path, kind: str, limit: int | None = None) -> bytes:
    """The file's bytes (at most ``limit``), with one-line errors (see :func:`reading`)."""
    with reading(path, kind):
        if limit is None:
            return Path(path).read_bytes()
        with open(path, "rb") as fh:
            return fh.read(limit)


def npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, Any]:
    """(shape, fortran order, dtype) from the header of an ``.npy`` stream, read before its data
    (format versions 1.0 and 2.0; ValueError for others)."""
    version = npy.read_magic(fh)
    if version == (1, 0):
        return npy.read_array_header_1_0(fh)
    if version == (2, 0):
        return npy.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy version {version}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that a reader, a crash or a full disk never leaves a torn file:
    the block writes a temporary file beside it, which is flushed, fsynced and renamed over
    ``path`` when the block ends without an exception (then the folder is fsynced too, so the
    rename survives a power cut). On an exception the temporary file is removed and ``path`` is
    left as it was; an OSError (a full disk) is raised naming ``path``. ``mode`` is "wb" or "w"
    (text: UTF-8, lines end in \\n)::

        with atomic_write(run / "config.toml") as fh:
            tomli_w.dump(data, fh)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    # the process id keeps two processes that write the same file from sharing a temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **({"encoding": "utf-8", "newline": "\n"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            # a failed write or fsync (a full disk) names the file the user knows, not the temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    _fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
