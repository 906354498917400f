"""Spike rasters and tasks: what the network is given (input) and asked to produce (target)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from superspike.errors import ConfigError, InputFileError, UserError
from superspike.io.ras import RasHeader, ras_line_numbers, read_ras
from superspike.params import steps
from superspike.task.windows import ErrorWindows


@dataclass(frozen=True)
class Raster:
    """Spikes of a group of ``n`` neurons: times (s, float64) and ids (0-based, int64)."""

    times: np.ndarray
    ids: np.ndarray
    n: int
    source: str = "<memory>"  #: file it came from, for messages

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

    ``grid`` is the loop period in s: both rasters repeat every ``floor(grid/dt)`` steps (SPEC 3).
    ``windows``, if given, replaces the output error target - own by the window-of-opportunity
    error (:mod:`superspike.task.windows`, SPEC 4 Fig. 5); the target raster is then for display.
    """

    input: Raster
    target: Raster
    grid: float
    name: str = "custom"
    description: str = ""
    notes: dict = field(default_factory=dict)
    windows: ErrorWindows | None = None

    @property
    def nin(self) -> int:
        """Number of input neurons."""
        return self.input.n

    @property
    def nout(self) -> int:
        """Number of output neurons."""
        return self.target.n


def load_raster(
    path: str | Path,
    n: int | None,
    *,
    id_offset: int = 0,
    drop_out_of_range: bool = False,
    role: str = "target",
) -> tuple[Raster, RasHeader, int]:
    """Read a ras file as a Raster of ``n`` neurons (default: largest id + 1).

    ``id_offset`` is added to every id. An id outside 0..n-1 is an error naming the file, the
    line and the two ways out, unless ``drop_out_of_range``; the number dropped is returned.
    """
    times, ids, header = read_ras(path)
    ids = ids + id_offset
    if n is None:
        n = int(ids.max()) + 1
    if n < 1:
        raise ConfigError(f"n{role[:3]}", f"must be a positive number of neurons, got {n}")
    outside = (ids < 0) | (ids >= n)
    dropped = int(outside.sum())
    if dropped and not drop_out_of_range:
        k = int(np.flatnonzero(outside)[0])
        line = int(ras_line_numbers(path)[k])
        opt = "--nin" if role == "input" else "--nout"
        raise InputFileError(
            path,
            f"{role} id {ids[k]} is outside the {role} group (ids 0..{n - 1}, {dropped} such "
            f"spikes); pass --id-offset N to shift every id, --drop-out-of-range to drop them, "
            f"or {opt} to enlarge the group",
            line,
        )
    if dropped:
        times, ids = times[~outside], ids[~outside]
    return Raster(times, ids, n, str(path)), header, dropped


def check_grid(raster: Raster, grid: float, dt: float) -> None:
    """Every spike must fall inside the loop period (step < floor(grid/dt)), SPEC 3."""
    period = steps(grid, dt)
    if period < 1:
        raise ConfigError("grid", f"must be at least one time step, got {grid} s")
    s = np.floor(raster.times / dt).astype(np.int64)
    beyond = s >= period
    if beyond.any():
        k = int(np.flatnonzero(beyond)[0])
        where = raster.source
        line = None
        if Path(where).is_file():
            line = int(ras_line_numbers(where)[k])
        raise InputFileError(
            where,
            f"spike at {raster.times[k]:.6f} s lies beyond the loop grid of {grid} s "
            f"({int(beyond.sum())} such spikes); pass a larger --grid",
            line,
        )
