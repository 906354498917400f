"""Checkpoints: the whole simulation state plus the run's progress, in one npz written
atomically (:func:`superspike.io.files.atomic_write`). No pickling: plain arrays only.

Keys: ``state/`` + :meth:`State.to_arrays` (``state/clock``, ``state/group/NAME/FIELD``,
``state/conn/NAME/FIELD``, ...) and ``progress/`` + what the run loop needs to continue (cost
lines written, spike records per group, ...)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from superspike.engine import State
from superspike.errors import InputFileError
from superspike.io.files import atomic_write
from superspike.network import Network

CHECKPOINT = "checkpoint.npz"


def save_checkpoint(path: Path, state: State, progress: dict[str, np.ndarray]) -> None:
    """Write state and progress atomically: a reader sees the old checkpoint or the new one."""
    arrays = {f"state/{k}": v for k, v in state.to_arrays().items()}
    arrays.update({f"progress/{k}": np.asarray(v) for k, v in progress.items()})
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def load_checkpoint(path: Path, network: Network) -> tuple[State, dict[str, np.ndarray]]:
    """Read a checkpoint written by :func:`save_checkpoint` for ``network``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except FileNotFoundError:
        raise InputFileError(path, "no checkpoint here (the run wrote none yet: start it anew with --force)") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"unreadable checkpoint ({exc})") from None
    state_arrays = {k.removeprefix("state/"): v for k, v in arrays.items() if k.startswith("state/")}
    progress = {k.removeprefix("progress/"): v for k, v in arrays.items() if k.startswith("progress/")}
    try:
        state = State.from_arrays(state_arrays, network)
    except (KeyError, ValueError) as exc:
        raise InputFileError(path, f"does not fit the run's configuration ({exc})") from None
    return state, progress
