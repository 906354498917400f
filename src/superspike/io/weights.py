"""Weight archives (``weights.npz``), as :func:`numpy.savez` writes them.

Format: a zip archive of ``.npy`` arrays, all float32.

- ``w0, w1, ...``: forward weights (V) of connection c (input -> first hidden layer is ``w0``,
  the last one ends at the output group), shape ``[pre, post]``.
- ``b1, b2, ...``: fixed feedback matrices of random or uniform feedback, ``b{c}`` carrying the
  error of the layer above connection c down to the layer that connection ends at, shape
  ``[upper layer, lower layer]``. Symmetric feedback needs none; a ``b{c}`` the network does not
  use is ignored.

:func:`load_weights` reads the archive with pickling off: it inspects each array's header
(shape, dtype) before reading its data, so object arrays are refused, never unpickled, and a
corrupt or hostile file cannot make it allocate more than the network's own size. Missing
arrays, arrays that do not belong to the network, wrong shapes or dtypes, NaN or infinite
values and unreadable files are :class:`~superspike.errors.InputFileError`, naming the file, the
array and the problem.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import numpy.lib.format as npy

from superspike.errors import InputFileError
from superspike.io.files import reading


def save_weights(path: str | Path, weights: list[np.ndarray], feedback: dict[int, np.ndarray]) -> None:
    """Save forward weights ``w{c}`` and feedback matrices ``b{c}`` (float32)."""
    arrays = {f"w{c}": np.asarray(w, dtype=np.float32) for c, w in enumerate(weights)}
    arrays.update({f"b{c}": np.asarray(b, dtype=np.float32) for c, b in feedback.items()})
    with open(path, "wb") as fh:  # a file object: np.savez would append .npz to a name
        np.savez(fh, **arrays)


def load_weights(
    path: str | Path, shapes: list[tuple[int, int]], feedback_shapes: dict[int, tuple[int, int]]
) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Load and check a weight archive against the network's shapes.

    ``shapes`` are the ``[pre, post]`` shapes of ``w0, w1, ...``; ``feedback_shapes`` the
    feedback matrices the network uses. Every ``w{c}`` must be present; a ``b{c}`` may be missing
    (the caller then draws it). Returns float32 arrays.
    """
    path = Path(path)
    try:
        with reading(path, "a weight archive (.npz)"):
            archive = zipfile.ZipFile(path)
    except InputFileError:
        raise
    except Exception:  # zipfile raises many types on arbitrary bytes
        raise InputFileError(path, _not_npz(path)) from None
    with archive:
        try:
            members = {info.filename: info for info in archive.infolist()}
        except Exception:
            raise InputFileError(path, "not a readable npz archive") from None
        names = {m.removesuffix(".npy"): m for m in members}
        n_conn = len(shapes)
        expected = [f"w{c}" for c in range(n_conn)] + [f"b{c}" for c in range(1, n_conn)]
        for name, member in names.items():
            if not member.endswith(".npy") or name not in expected:
                raise InputFileError(
                    path,
                    f"array {name!r} does not belong to a network with {n_conn} connections "
                    f"(expects {', '.join(expected[:n_conn])}; feedback {', '.join(expected[n_conn:]) or 'none'})",
                )

        def get(name: str, shape: tuple[int, int]) -> np.ndarray:
            if name not in names:
                have = ", ".join(sorted(names)) or "none"
                raise InputFileError(path, f"array {name!r} is missing (the archive has: {have})")
            return _read_member(path, archive, names[name], name, shape)

        weights = [get(f"w{c}", s) for c, s in enumerate(shapes)]
        feedback = {c: get(f"b{c}", s) for c, s in feedback_shapes.items() if f"b{c}" in names}
        return weights, feedback


def _read_member(path: Path, archive: zipfile.ZipFile, member: str, name: str, shape: tuple[int, int]) -> np.ndarray:
    """One float32 array of the expected shape, its header checked before its data is read."""
    try:
        with archive.open(member) as fh:
            version = npy.read_magic(fh)
            if version == (1, 0):
                got_shape, fortran, dtype = npy.read_array_header_1_0(fh)
            elif version == (2, 0):
                got_shape, fortran, dtype = npy.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if dtype.hasobject:
                raise InputFileError(path, f"array {name!r} is an object array; refusing to unpickle it")
            if dtype.kind != "f" or dtype.itemsize != 4:
                raise InputFileError(path, f"array {name!r} has dtype {dtype}, expected float32")
            if tuple(got_shape) != tuple(shape):
                raise InputFileError(path, f"array {name!r} has shape {tuple(got_shape)}, expected {tuple(shape)}")
            count = int(np.prod(shape))
            data = fh.read(count * 4)
            if len(data) != count * 4:
                raise ValueError(f"{len(data)} of {count * 4} data bytes")
    except InputFileError:
        raise
    except Exception as exc:  # corrupt zip members and npy headers raise many types
        raise InputFileError(path, f"array {name!r} is unreadable ({type(exc).__name__}: {_one_line(exc)})") from None
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    arr = np.array(arr, dtype=np.float32, order="C")  # a writable native copy of the read-only buffer
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputFileError(
            path, f"array {name!r} holds NaN or infinite values (first at {tuple(int(i) for i in bad)})"
        )
    return arr


def _not_npz(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:  # pragma: no cover - it was just opened
        head = b""
    if head == b"\x93NUMPY":
        return "holds a single .npy array, not an npz archive of w0, w1, ... (save with numpy.savez)"
    if not head:
        return "is empty, not an npz archive"
    return "not an npz archive (a zip of .npy arrays w0, w1, ...)"


def _one_line(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
