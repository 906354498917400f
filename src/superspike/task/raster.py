"""Spike rasters and tasks: what the network is given (input) and asked to produce (target)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from superspike.errors import ConfigError, InputFileError, UserError
from superspike.io.ras import RasHeader, read_ras_data
from superspike.network.graph import MAX_GROUP_SIZE
from superspike.params import steps
from superspike.task.windows import ErrorWindows


@dataclass(frozen=True)
class Raster:
    """Spikes of a group of ``n`` neurons: times (s, float64) and ids (0-based, int64)."""

    times: np.ndarray
    ids: np.ndarray
    n: int
    source: str = "<memory>"  #: file it came from, for messages
    lines: np.ndarray | None = field(default=None, repr=False, compare=False)  #: line of each spike in source

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64)
        ids = np.asarray(self.ids, dtype=np.int64)
        if times.shape != ids.shape or times.ndim != 1:
            raise UserError(f"{self.source}: times and ids must be 1-D arrays of equal length")
        if self.n < 1:
            raise UserError(f"{self.source}: a group needs at least one neuron, got {self.n}")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n):
            raise UserError(f"{self.source}: neuron ids must lie in 0..{self.n - 1}")
        if len(times) and not (np.isfinite(times).all() and times.min() >= 0):
            raise UserError(f"{self.source}: spike times must be finite and non-negative")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "ids", ids)


@dataclass(frozen=True)
class Task:
    """An input raster replayed on a loop grid and the target raster the output should produce.

    ``grid`` is the loop period in s: both rasters repeat every ``floor(grid/dt)`` steps (MODEL.md 6.2).
    ``windows``, if given, replaces the output error target - own by the window-of-opportunity
    error (:mod:`superspike.task.windows`, docs/TASKS.md, xor); the target raster is then for display.

    A task may instead be a *stream* of segments (MODEL.md 3.6): ``stream(k)`` makes segment k
    (k = 0, 1, ...), an ordinary task of the same ``grid`` and group sizes, which covers steps
    ``k * period .. (k + 1) * period - 1``; it depends on k (and whatever the stream was made
    from, e.g. a seed) only, so any segment can be made again at any time. The task itself is
    then segment 0 (``stream(0)`` equals it). A looped task is the special case in which every segment is the task.
    """

    input: Raster
    target: Raster
    grid: float
    name: str = "custom"
    description: str = ""
    notes: dict = field(default_factory=dict)
    windows: ErrorWindows | None = None
    #: segment k of a stream (None: the task loops); see :meth:`segment`
    stream: Callable[[int], Task] | None = field(default=None, compare=False, repr=False)

    def segment(self, k: int) -> Task:
        """Segment k of the task: for a looped task the task itself, for a stream ``stream(k)``."""
        if k < 0:
            raise ValueError(f"segments are numbered from 0, got {k}")
        return self if self.stream is None else self.stream(k)

    @property
    def is_stream(self) -> bool:
        """Whether every loop period brings a fresh segment (else the task loops)."""
        return self.stream is not None

    @property
    def nin(self) -> int:
        """Number of input neurons."""
        return self.input.n

    @property
    def nout(self) -> int:
        """Number of output neurons."""
        return self.target.n


#: largest group size taken from a file, declared in its header or inferred from its ids: the
#: size cap of every group (:data:`superspike.network.graph.MAX_GROUP_SIZE`)
MAX_INFERRED_GROUP = MAX_GROUP_SIZE


def load_raster(
    path: str | Path,
    n: int | None,
    *,
    id_offset: int = 0,
    drop_out_of_range: bool = False,
    role: str = "target",
) -> tuple[Raster, RasHeader, int]:
    """Read a ras file as a Raster of ``n`` neurons; also return its header and how many spikes were dropped.

    ``n`` defaults to the header's ``neurons N``, else to the largest id + 1 (at most
    :data:`MAX_INFERRED_GROUP`). ``id_offset`` is added to every id. An id outside 0..n-1 is an
    error naming the file, the line and the ways out (for a target: ``--id-offset N``,
    ``--drop-out-of-range``, ``--nout``), unless ``drop_out_of_range``: then those spikes are
    dropped and their number returned, for the caller to report. ``role`` is "input" or "target".
    """
    if role not in ("input", "target"):
        raise ValueError(f"role must be 'input' or 'target', got {role!r}")
    group, size_opt = ("input", "--nin") if role == "input" else ("output", "--nout")
    data = read_ras_data(path)
    times, ids, header, lines = data.times, data.ids, data.header, data.lines
    if id_offset:
        if abs(id_offset) > 2**32:
            raise ConfigError("id_offset", f"must lie in -2**32..2**32, got {id_offset}")
        ids = ids + id_offset
    if n is not None:
        origin = f"{size_opt} {n}"
    elif header.neurons is not None:
        n, origin = header.neurons, f"'neurons {header.neurons}' in the file's header"
        if n > MAX_GROUP_SIZE:
            raise InputFileError(
                path,
                f"header: 'neurons {n}' is more than the largest group ({MAX_GROUP_SIZE} neurons); "
                f"give the group size with {size_opt}",
            )
    else:
        top = int(np.argmax(ids))
        n, origin = max(int(ids[top]) + 1, 1), "the largest id + 1"
        if n > MAX_INFERRED_GROUP:
            raise InputFileError(
                path,
                f"{role} id {ids[top]} would make a group of {n} neurons; give the group size with {size_opt}",
                int(lines[top]),
            )
    if n < 1:
        raise ConfigError(size_opt.lstrip("-"), f"must be a positive number of neurons, got {n}")
    outside = (ids < 0) | (ids >= n)
    dropped = int(outside.sum())
    if dropped and not drop_out_of_range:
        k = int(np.argmax(outside))
        shown = f"{ids[k]} ({ids[k] - id_offset} in the file, offset {id_offset})" if id_offset else f"{ids[k]}"
        if role == "target":
            ways = (
                "pass --id-offset N (added to every target id), --drop-out-of-range (drop them), "
                f"or a larger {size_opt}"
            )
        else:
            ways = f"pass a larger {size_opt}"
        raise InputFileError(
            path,
            f"{role} id {shown} is outside the {group} group of {n} neurons (ids 0..{n - 1}, from {origin}; "
            f"{dropped} such spikes); {ways}",
            int(lines[k]),
        )
    if dropped:
        keep = ~outside
        times, ids, lines = times[keep], ids[keep], lines[keep]
    return Raster(times, ids, n, str(path), lines), header, dropped


def check_grid(raster: Raster, grid: float, dt: float) -> None:
    """Every spike must fall inside the loop period (step < floor(grid/dt)), MODEL.md 6.2.

    A spike beyond it is an error naming the file and line (when the raster came from a file).
    """
    period = steps(grid, dt)
    if period < 1:
        raise ConfigError("grid", f"must be at least one time step ({dt} s), got {grid} s")
    # in slices: the steps of a large file's spikes would need 3 temporary arrays of its size
    k = -1
    for lo in range(0, len(raster.times), 1 << 20):
        beyond = steps(raster.times[lo : lo + (1 << 20)], dt) >= period
        if beyond.any():
            k = lo + int(np.argmax(beyond))
            break
    if k >= 0:
        s = steps(raster.times, dt)
        beyond = s >= period
        line = None
        if raster.lines is not None:
            line = int(raster.lines[k])
        elif Path(raster.source).is_file():
            try:
                lines = read_ras_data(raster.source).lines
            except InputFileError:
                lines = None
            if lines is not None and len(lines) == len(raster.times):
                line = int(lines[k])
        raise InputFileError(
            raster.source,
            f"spike at {raster.times[k]:.6f} s lies beyond the loop grid of {grid} s "
            f"(step {s[k]} >= {period} steps; {int(beyond.sum())} such spikes); pass a larger --grid",
            line,
        )
