"""Checkpoints: the whole simulation state plus the run's progress, in one npz written
atomically (:func:`superspike.io.files.atomic_write`). No pickling: plain arrays only.

Keys: ``state/`` + :meth:`State.to_arrays` (``state/clock``, ``state/group/NAME/FIELD``,
``state/conn/NAME/FIELD``, ...) and ``progress/`` + what the run loop needs to continue (cost
lines written, spike records per group, ...).

A checkpoint is a file like any other the user hands over: :func:`load_checkpoint` checks every
member's header (name, dtype, shape) against the network before reading its data, so a hostile
archive cannot make it unpickle, allocate beyond the network's own state or read a compressed
bomb; :func:`check_progress` checks every progress field's type and range and its consistency
with the run's files (spike records, cost lines) before the run uses them.

A run writes its checkpoints through a :class:`CheckpointWriter`: the state is copied at once and
the file written by a background thread while the simulation goes on.
"""

from __future__ import annotations

import math
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from superspike.engine import State
from superspike.errors import InputFileError
from superspike.io.files import atomic_write, npy_header, reading
from superspike.network import Network

CHECKPOINT = "checkpoint.npz"
#: progress fields that are one number each (spk_<group> too)
_SCALARS = ("curve_rows", "last_line", "wall", "finished")
MAX_RECENT = 10_000_000  #: most output spikes of one loop period a checkpoint may hold


def save_checkpoint(path: Path, state: State, progress: dict[str, np.ndarray]) -> None:
    """Write state and progress atomically: a reader sees the old checkpoint or the new one."""
    _write(path, state.to_arrays(), progress)


def _write(path: Path, state_arrays: dict[str, np.ndarray], progress: dict[str, np.ndarray]) -> None:
    arrays = {f"state/{k}": v for k, v in state_arrays.items()}
    arrays.update({f"progress/{k}": np.asarray(v) for k, v in progress.items()})
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


class CheckpointWriter:
    """Writes one run's checkpoints in the background, one at a time.

    :meth:`save` copies the state and returns; a thread then runs ``sync`` (which makes the files
    the checkpoint counts durable: the spike files and the learning curve, whose buffers the
    caller has flushed) and writes the checkpoint with :func:`save_checkpoint`. The next
    :meth:`save` and :meth:`wait` first wait for it and raise its error, if any (an OSError: a
    full disk). A process killed meanwhile leaves the previous checkpoint, whole.
    :attr:`done` is the ``info`` of the last checkpoint known to be on disk (None before).
    With :attr:`background` False, :meth:`save` writes in the calling thread (the order of a run's
    writes is then fixed, which fault-injection tests enumerate)."""

    background: bool = True

    def __init__(self, done: dict[str, Any] | None = None) -> None:
        self.done = done
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(
        self,
        path: Path,
        state: State,
        progress: dict[str, np.ndarray],
        sync: Callable[[], None] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Start writing a checkpoint of ``state`` (copied now) and ``progress``."""
        self.wait()
        snapshot = {k: np.array(v, copy=True) for k, v in state.to_arrays().items()}

        def write() -> None:
            try:
                if sync is not None:
                    sync()
                _write(path, snapshot, progress)
                self.done = info
            except BaseException as exc:  # raised in the run's thread by wait()
                self._error = exc

        if not self.background:
            write()
            return self.wait()
        self._thread = threading.Thread(target=write, name="superspike-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        """Block until the checkpoint being written is on disk; raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc


def _expected_progress(network: Network, name: str) -> tuple[int, ...] | None:
    """The shape a progress member must have, or None if it does not belong (-1: any length)."""
    if name in _SCALARS or (name.startswith("spk_") and name[4:] in {g.name for g in network.spec.groups}):
        return ()
    if name == "tracker_counts":
        return (len(network.spec.lif_groups),)
    if name in ("recent_steps", "recent_ids"):
        return (-1,)
    return None


def _check_members(path: Path, network: Network) -> None:
    """Every member's npy header, before any data is read: known name, numeric dtype, shape."""
    template = State.initial(network).to_arrays()
    try:
        with reading(path, "a checkpoint (.npz)"), zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as fh:
                    shape, _, dtype = npy_header(fh)
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise InputFileError(path, f"array {key!r} has dtype {dtype}; a checkpoint holds numbers only")
                if key.startswith("state/"):
                    ref = template.get(key.removeprefix("state/"))
                    if ref is None:
                        raise InputFileError(path, f"array {key!r} does not belong to this run's network")
                    want: tuple[int, ...] | None = ref.shape
                elif key.startswith("progress/"):
                    want = _expected_progress(network, key.removeprefix("progress/"))
                    if want is None:
                        raise InputFileError(path, f"array {key!r} is not a progress field of this run")
                else:
                    raise InputFileError(path, f"array {key!r} is neither state/ nor progress/")
                if want == (-1,):
                    ok = len(shape) == 1 and shape[0] <= MAX_RECENT
                else:
                    ok = tuple(shape) == tuple(want)
                if not ok:
                    expected = f"a length of at most {MAX_RECENT}" if want == (-1,) else f"{want}"
                    raise InputFileError(path, f"array {key!r} has shape {tuple(shape)}, expected {expected}")
    except InputFileError:
        raise
    except Exception as exc:  # corrupt zip members and npy headers raise many types
        raise InputFileError(path, f"unreadable checkpoint ({type(exc).__name__}: {exc})") from None


def load_checkpoint(path: Path, network: Network) -> tuple[State, dict[str, np.ndarray]]:
    """Read a checkpoint written by :func:`save_checkpoint` for ``network``."""
    if not Path(path).exists():
        raise InputFileError(path, "no checkpoint here (the run wrote none yet: start it anew with --force)")
    _check_members(Path(path), network)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except FileNotFoundError:
        raise InputFileError(path, "no checkpoint here (the run wrote none yet: start it anew with --force)") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"unreadable checkpoint ({exc})") from None
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputFileError(path, f"array {key!r} holds NaN or infinite values; the checkpoint cannot be trusted")
        # spike rings, refractory counters and window states are never negative (the clock: below)
        if key.startswith("state/") and key != "state/clock" and value.dtype.kind == "i" and value.size:
            if value.min() < 0:
                raise InputFileError(path, f"array {key!r} holds negative values; the checkpoint cannot be trusted")
    state_arrays = {k.removeprefix("state/"): v for k, v in arrays.items() if k.startswith("state/")}
    progress = {k.removeprefix("progress/"): v for k, v in arrays.items() if k.startswith("progress/")}
    try:
        state = State.from_arrays(state_arrays, network)
    except (KeyError, ValueError) as exc:
        raise InputFileError(path, f"does not fit the run's configuration ({exc})") from None
    return state, progress


def check_progress(
    path: Path, progress: dict[str, np.ndarray], network: Network, clock: int, end: int, record_bytes: int = 8
) -> None:
    """Every progress field present, of its type and range, and consistent with the run's files
    in ``path.parent``: the spike records it counts exist in each ``<group>.spk``, the cost lines
    in learning_curve.tsv; ``clock`` (the state's) lies within the run (``end`` steps)."""
    spec = network.spec
    where = path

    def bad(problem: str) -> InputFileError:
        return InputFileError(where, f"{problem}; the checkpoint cannot be trusted (start the run anew with --force)")

    names = [g.name for g in spec.groups]
    needed = [*_SCALARS, "tracker_counts", "recent_steps", "recent_ids", *(f"spk_{n}" for n in names)]
    missing = [k for k in needed if k not in progress]
    if missing:
        raise bad(f"progress lacks {', '.join(missing)}")

    def integer(key: str, lo: int, hi: int) -> int:
        v = progress[key]
        if v.dtype.kind not in "iub" or v.shape != ():
            raise bad(f"progress {key} must be an integer, got {v.dtype} {v.shape}")
        n = int(v)
        if not lo <= n <= hi:
            raise bad(f"progress {key} = {n} lies outside {lo}..{hi}")
        return n

    if not 0 <= clock <= end:
        raise bad(f"the clock {clock} lies outside the run's 0..{end} steps")
    integer("finished", 0, 1)
    integer("last_line", 0, clock)
    wall = progress["wall"]
    if wall.shape != () or wall.dtype.kind not in "iuf" or not (math.isfinite(float(wall)) and float(wall) >= 0):
        raise bad(f"progress wall must be a non-negative number of seconds, got {wall.ravel()[:1]}")
    counts = progress["tracker_counts"]
    if counts.dtype.kind not in "iu" or (counts.size and counts.min() < 0):
        raise bad("progress tracker_counts must be non-negative integers")
    steps, ids = progress["recent_steps"], progress["recent_ids"]
    if steps.shape != ids.shape or (steps.size and (steps.dtype.kind not in "iu" or ids.dtype.kind not in "iu")):
        raise bad("progress recent_steps and recent_ids must be integer arrays of equal length")
    nout = sum(g.n for g in spec.output_groups)
    if steps.size and (steps.min() < 0 or steps.max() > clock or ids.min() < 0 or ids.max() >= nout):
        raise bad(f"progress recent spikes lie outside steps 0..{clock} or ids 0..{nout - 1}")
    run_dir = path.parent
    for name in names:
        n = integer(f"spk_{name}", 0, 2**62)
        spk = run_dir / f"{name}.spk"
        have = max(spk.stat().st_size // record_bytes - 1, 0) if spk.is_file() else 0
        if n > have:  # the words of RunDirectory.truncate, which checks the same once the files are open
            raise InputFileError(
                spk,
                f"holds {have} spike records, but the checkpoint counts {n}; the run directory is damaged "
                "(start the run anew with --force)",
            )
    curve = run_dir / "learning_curve.tsv"
    lines = 0
    if curve.is_file():
        with open(curve, "rb") as fh:
            lines = max(sum(1 for line in fh if line.strip()) - 1, 0)
    integer("curve_rows", 0, lines)
