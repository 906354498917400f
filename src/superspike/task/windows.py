"""Windows of opportunity: an output error for "spike somewhere in here" targets (docs/TASKS.md, xor).

With windows, step 3 of MODEL.md 2.6 changes for the output layer. Instead of
``err_i = target_i - own_i`` the error of output neuron i is, on the same delayed clock (spikes
emitted at t - 8 steps, windows replayed on the loop grid like the target):

- an own spike outside any window of neuron i: ``-1`` at once (a wrong spike);
- an own spike inside a window of neuron i: ``0`` (the window is then "hit");
- a window of neuron i that closes without an own spike: ``+1`` at its end (a missed spike).

A window ``[start, stop)`` covers the steps ``floor(start/dt) .. floor(stop/dt) - 1``. Windows of
one neuron must not overlap. The target raster of such a task is for display only.

:func:`score_windows` (and :func:`window_accuracy` on the loop grid) turns the windows into an
accuracy: a window counts as correct when its neuron spiked inside it and no other output neuron did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superspike.errors import ConfigError
from superspike.params import steps


@dataclass(frozen=True)
class ErrorWindows:
    """Windows of opportunity of the output neurons: ``[starts[k], stops[k])`` s for neuron ``ids[k]``."""

    starts: np.ndarray  #: s, float64
    stops: np.ndarray  #: s, float64
    ids: np.ndarray  #: output neuron of each window, int64
    n: int  #: number of output neurons

    def __post_init__(self) -> None:
        starts = np.asarray(self.starts, dtype=np.float64)
        stops = np.asarray(self.stops, dtype=np.float64)
        ids = np.asarray(self.ids, dtype=np.int64)
        if not (starts.shape == stops.shape == ids.shape) or starts.ndim != 1:
            raise ConfigError("windows", "starts, stops and ids must be 1-D arrays of equal length")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n):
            raise ConfigError("windows", f"neuron ids must lie in 0..{self.n - 1}")
        if len(starts) and not (np.isfinite(starts).all() and np.isfinite(stops).all() and starts.min() >= 0):
            raise ConfigError("windows", "window times must be finite and non-negative")
        if (stops <= starts).any():
            k = int(np.flatnonzero(stops <= starts)[0])
            raise ConfigError("windows", f"window {k} ends ({stops[k]} s) before it starts ({starts[k]} s)")
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "stops", stops)
        object.__setattr__(self, "ids", ids)

    def steps(self, grid: float, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start steps, stop steps, ids) sorted by start, checked against the loop period.

        Every window must fit in one loop period and windows of a neuron must not overlap.
        """
        period = steps(grid, dt)
        a = steps(self.starts, dt)
        b = steps(self.stops, dt)
        if (b <= a).any():
            k = int(np.flatnonzero(b <= a)[0])
            raise ConfigError("windows", f"window {k} is shorter than one time step of {dt} s")
        if len(b) and b.max() > period:
            k = int(np.argmax(b))
            raise ConfigError("windows", f"window {k} ends at {self.stops[k]} s, beyond the loop grid of {grid} s")
        order = np.lexsort((a, self.ids))
        a, b, ids = a[order], b[order], self.ids[order]
        same = ids[1:] == ids[:-1]
        overlap = same & (a[1:] < b[:-1])
        if overlap.any():
            k = int(np.flatnonzero(overlap)[0])
            raise ConfigError("windows", f"two windows of output neuron {ids[k]} overlap (at {a[k + 1] * dt:.4f} s)")
        order = np.argsort(a, kind="stable")
        return a[order], b[order], ids[order]


@dataclass(frozen=True)
class WindowReplay:
    """Windows compiled to loop-grid events, like :class:`~superspike.task.replay.Replay`:
    at loop step s the windows of neurons ``close_ids[close_ptr[s]:close_ptr[s+1]]`` close
    and those of ``open_ids[open_ptr[s]:open_ptr[s+1]]`` open (closing first)."""

    period: int
    open_ptr: np.ndarray
    open_ids: np.ndarray
    close_ptr: np.ndarray
    close_ids: np.ndarray

    @classmethod
    def from_windows(cls, windows: ErrorWindows, grid: float, dt: float) -> WindowReplay:
        """Compile; a window that ends exactly at the loop period closes at step 0 of the next loop."""
        a, b, ids = windows.steps(grid, dt)
        period = steps(grid, dt)
        return cls(period, *_csr(a, ids, period), *_csr(b % period, ids, period))

    @classmethod
    def empty(cls) -> WindowReplay:
        """No windows (the engine then uses the ordinary error target - own)."""
        z = np.zeros(2, np.int64)
        return cls(1, z, np.zeros(0, np.int64), z, np.zeros(0, np.int64))


def _csr(s: np.ndarray, ids: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ids, s))
    ptr = np.zeros(period + 1, np.int64)
    np.cumsum(np.bincount(s, minlength=period), out=ptr[1:])
    return ptr, ids[order].astype(np.int64)


def window_accuracy(
    windows: ErrorWindows, grid: float, dt: float, steps_: np.ndarray, ids: np.ndarray, lo: int, hi: int
) -> float:
    """Fraction of windows scored correct among those (replayed on the loop grid) that lie wholly
    in steps ``[lo, hi)``, given the output spikes (steps, ids) of that span (see
    :func:`score_windows`). NaN if no window lies in the span."""
    a, b, wid = windows.steps(grid, dt)
    period = steps(grid, dt)
    parts = []
    for loop in range(max(lo, 0) // period, -(-hi // period) + 1):
        base = loop * period
        keep = (base + a >= lo) & (base + b <= hi)
        parts.append((a[keep] + base, b[keep] + base, wid[keep]))
    starts, stops, wids = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return score_windows(starts, stops, wids, windows.n, steps_, ids)


def score_windows(
    starts: np.ndarray, stops: np.ndarray, wids: np.ndarray, n: int, steps_: np.ndarray, ids: np.ndarray
) -> float:
    """Fraction of windows ``[starts[k], stops[k])`` (steps) of output neurons ``wids[k]`` (of
    ``n``) scored correct, given the output spikes (steps, ids): a window is correct when its
    neuron spiked inside it and no other output neuron did (the XOR readout). NaN if there are
    no windows."""
    steps_ = np.asarray(steps_, np.int64)
    ids = np.asarray(ids, np.int64)
    order = np.argsort(steps_, kind="stable")
    steps_, ids = steps_[order], ids[order]
    correct = 0
    for k in range(len(starts)):
        i0, i1 = np.searchsorted(steps_, [starts[k], stops[k]])
        counts = np.bincount(ids[i0:i1], minlength=n)
        own = counts[wids[k]]
        correct += int(own > 0 and counts.sum() == own)
    return correct / len(starts) if len(starts) else float("nan")
