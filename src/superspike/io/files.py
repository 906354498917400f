"""Opening the user's files: operating-system errors become one-line InputFileErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from superspike.errors import InputFileError


@contextmanager
def reading(path: str | Path, kind: str) -> Iterator[None]:
    """Turn a missing file, a directory, a permission problem or another OS error met inside the
    block into ``InputFileError(path, ...)``; ``kind`` names what the file should be
    ("a ras file")."""
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


def read_bytes(path: str | Path, kind: str, limit: int | None = None) -> bytes:
    """The file's bytes (at most ``limit``), with one-line errors (see :func:`reading`)."""
    with reading(path, kind):
        if limit is None:
            return Path(path).read_bytes()
        with open(path, "rb") as fh:
            return fh.read(limit)
