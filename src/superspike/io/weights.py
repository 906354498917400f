"""Weight archives (``weights.npz``): float32 arrays ``w0, w1, ...`` indexed [pre, post] and
feedback matrices ``b1, ...`` indexed [upper layer, lower layer]. Loaded with pickling off."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from superspike.errors import InputFileError


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

    ``feedback_shapes`` lists the feedback matrices the network needs; a missing one is an
    error only if it is listed. Raises InputFileError naming the array and the problem.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"not a readable npz archive ({exc})") from None
    with archive:
        names = set(archive.files)

        def get(name: str, shape: tuple[int, int]) -> np.ndarray:
            if name not in names:
                raise InputFileError(path, f"array {name!r} is missing (has: {', '.join(sorted(names)) or 'none'})")
            try:
                arr = archive[name]
            except ValueError:
                raise InputFileError(path, f"array {name!r} is an object array; refusing to unpickle") from None
            if arr.dtype != np.float32:
                raise InputFileError(path, f"array {name!r} has dtype {arr.dtype}, expected float32")
            if arr.shape != shape:
                raise InputFileError(path, f"array {name!r} has shape {arr.shape}, expected {shape}")
            if not np.isfinite(arr).all():
                raise InputFileError(path, f"array {name!r} holds NaN or infinite values")
            return np.array(arr)

        weights = [get(f"w{c}", s) for c, s in enumerate(shapes)]
        feedback = {c: get(f"b{c}", s) for c, s in feedback_shapes.items() if f"b{c}" in names}
        return weights, feedback
