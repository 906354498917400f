"""Weight archives (``weights.npz``), as :func:`numpy.savez` writes them.

Format: a zip archive of ``.npy`` arrays, all float32, named by the network's graph
(docs/FORMATS.md):

- ``w/<connection>``: the weights (V) of each connection, shape ``[pre, post]``
  (``w/input-hidden0``, ``w/hidden0-output``, ``w/hidden0-hidden0``, ``w/skip``, ...).
- ``b/<feedback edge>``: the fixed feedback matrices of random, uniform or direct feedback,
  shape ``[src, dst]`` (the group whose error is fed back, the hidden group it reaches). For
  random and uniform feedback an edge is named after the connection it runs back along
  (``b/hidden0-output``), for direct feedback ``<output group>-<hidden group>``. Symmetric
  feedback needs none. ``b/`` arrays the network does not use are ignored (not read); a missing
  one is drawn from the seed (the caller says so).

Chain archives of earlier versions, ``w0, w1, ...`` and ``b1, b2, ...``, still load onto a chain
network (input -> hidden0 -> ... -> output, as ``--hidden`` builds it without ``--recurrent``):
``wK`` is the K-th connection of the chain and ``bK`` the feedback matrix that runs back along it.

:func:`load_weights` reads the archive with pickling off: it inspects each array's header
(shape, dtype) before reading its data, so object arrays are refused, never unpickled, and a
corrupt or hostile file cannot make it allocate more than the network's own size. Missing
arrays, arrays that do not belong to the network, wrong shapes or dtypes, NaN or infinite
values and unreadable files are :class:`~superspike.errors.InputFileError`, naming the file, the
array and the problem.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from superspike.errors import InputFileError
from superspike.io.files import atomic_write, npy_header, reading

_LEGACY = re.compile(r"^[wb][0-9]+$")


def save_weights(
    path: str | Path, weights: Mapping[str, np.ndarray], feedback: Mapping[str, np.ndarray] | None = None
) -> None:
    """Save the weights ``w/<connection>`` and feedback matrices ``b/<edge>`` (float32), atomically."""
    arrays = {f"w/{name}": np.asarray(w, dtype=np.float32) for name, w in weights.items()}
    arrays.update({f"b/{name}": np.asarray(b, dtype=np.float32) for name, b in (feedback or {}).items()})
    with atomic_write(path) as fh:  # a file object: np.savez would append .npz to a name
        np.savez(fh, **arrays)


def load_weights(
    path: str | Path,
    shapes: Mapping[str, tuple[int, int]],
    feedback_shapes: Mapping[str, tuple[int, int]],
    *,
    chain: bool = False,
    w_max: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Load and check a weight archive against the network's shapes.

    ``shapes``: ``[pre, post]`` of every connection by name, in creation order;
    ``feedback_shapes``: ``[src, dst]`` of the fixed feedback matrices the network uses.
    Every connection's weights must be present; a feedback matrix may be missing (the caller
    then draws it). ``chain``: the network is a plain chain, so an archive of the earlier
    ``w0, w1, ..., b1, ...`` form is read by position. ``w_max``: weights beyond +-w_max are an
    error (the first update would clip them). Returns float32 arrays by connection and edge name.
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
        conns = list(shapes)
        legacy = bool(names) and all(_LEGACY.match(n) for n in names)
        if legacy:
            # earlier chain archives: wK is connection K, bK the matrix back along connection K
            if not chain:
                raise InputFileError(
                    path,
                    "holds a chain archive (w0, w1, ...), which loads only onto a chain network (--hidden); "
                    f"name the arrays w/<connection> (connections: {', '.join(conns)})",
                )
            w_key = {c: f"w{k}" for k, c in enumerate(conns)}
            b_key = {e: f"b{conns.index(e)}" for e in feedback_shapes if e in conns}
            fb = [f"b{k}" for k in range(1, len(conns))]
            for name, member in names.items():
                if not member.endswith(".npy") or name not in (*w_key.values(), *fb):
                    raise InputFileError(
                        path,
                        f"array {name!r} does not belong to a chain network of {len(conns)} connections "
                        f"(expects {', '.join(w_key.values())}; feedback {', '.join(fb) or 'none'})",
                    )
        else:
            w_key = {c: f"w/{c}" for c in conns}
            b_key = {e: f"b/{e}" for e in feedback_shapes}
            for name, member in names.items():
                if not member.endswith(".npy") or not (name in w_key.values() or name.startswith("b/")):
                    raise InputFileError(
                        path,
                        f"array {name!r} does not belong to this network (expects w/<connection> for "
                        f"{', '.join(conns)}, and b/<feedback edge>)",
                    )

        def get(name: str, shape: tuple[int, int]) -> np.ndarray:
            if name not in names:
                have = ", ".join(sorted(names)) or "none"
                raise InputFileError(path, f"array {name!r} is missing (the archive has: {have})")
            return _read_member(path, archive, names[name], name, shape)

        weights = {c: get(w_key[c], s) for c, s in shapes.items()}
        feedback = {e: get(b_key[e], s) for e, s in feedback_shapes.items() if e in b_key and b_key[e] in names}
    if w_max is not None:
        for c, w in weights.items():
            if w.size and np.abs(w).max() > w_max:  # the first update would clip them: say so instead
                what = w_key[c] + (f" (connection {c})" if legacy else "")
                raise InputFileError(
                    path, f"{what} has weights outside [-{w_max}, {w_max}] V (rule.w_max); clip them or raise w_max"
                )
    return weights, feedback


def _read_member(path: Path, archive: zipfile.ZipFile, member: str, name: str, shape: tuple[int, int]) -> np.ndarray:
    """One float32 array of the expected shape, its header checked before its data is read."""
    try:
        with archive.open(member) as fh:
            got_shape, fortran, dtype = npy_header(fh)
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
        return "holds a single .npy array, not an npz archive of w/<connection> arrays (save with numpy.savez)"
    if not head:
        return "is empty, not an npz archive"
    return "not an npz archive (a zip of .npy arrays w/<connection>, ...)"


def _one_line(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
