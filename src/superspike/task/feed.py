"""The task as the engines, the simulation and the run loop read it: one compiled feed (MODEL.md 3.5, 3.6).

A :class:`Feed` compiles the segments of a task to time steps (:class:`Segment`: the input and
target replays and the windows of opportunity). Step t belongs to segment ``t // period`` at
position ``t % period``. A looped task has one segment, replayed for ever; a stream
(:attr:`Task.stream <superspike.task.raster.Task.stream>`) brings a fresh one every period,
made again from its number whenever it is needed (a few are kept), so that nothing of it has
to be saved in a checkpoint.

The output error reads the target and the windows ``delay`` steps late (MODEL.md 2.6, step 3)
while the engines replay segment k from its first step on; a stream's segments must therefore
be empty of target spikes and window edges in their first and last ``margin`` steps, checked
here as each segment is compiled.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from superspike.errors import ConfigError
from superspike.params import steps
from superspike.task.raster import Task
from superspike.task.replay import Replay
from superspike.task.windows import WindowReplay

#: compiled segments a feed keeps (the engine's current one and the neighbours a cost line reads)
KEEP = 3


class Segment(NamedTuple):
    """One segment of a task compiled to steps of its period."""

    k: int  #: its number
    input: Replay
    target: Replay
    windows: WindowReplay | None  #: None: the output error is target - own
    #: windows as (start steps, stop steps, ids) in the segment, sorted by start; None without windows
    window_steps: tuple[np.ndarray, np.ndarray, np.ndarray] | None


class Feed:
    """The segments of ``task`` compiled at time step ``dt``; ``margin``: the steps at either end of
    a stream's segments that must hold no target spike and no window edge (the axonal delay)."""

    def __init__(self, task: Task, dt: float, margin: int = 0) -> None:
        self.task = task
        self.dt = dt
        self.margin = int(margin)
        self.period = steps(task.grid, dt)  #: steps per segment (the loop period)
        self.stream = task.is_stream  #: fresh segments (else segment 0 for ever)
        self._kept: dict[int, Segment] = {}
        self.first = self.segment(0)

    def index(self, t: int) -> int:
        """The segment that step t belongs to (0 for a looped task)."""
        return t // self.period if self.stream else 0

    def segment(self, k: int) -> Segment:
        """Segment k compiled (for a looped task every k gives segment 0)."""
        k = k if self.stream else 0
        seg = self._kept.get(k)
        if seg is None:
            seg = self._compile(k)
            if len(self._kept) >= KEEP:
                del self._kept[next(iter(self._kept))]  # the oldest
            self._kept[k] = seg
        return seg

    def pieces(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """Steps [start, stop) cut at segment boundaries: (segment, first, end) each."""
        if not self.stream:
            return [(0, start, stop)] if stop > start else []
        out = []
        t = start
        while t < stop:
            k = t // self.period
            end = min(stop, (k + 1) * self.period)
            out.append((k, t, end))
            t = end
        return out

    def input_events(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Input events (steps, task input ids) emitted in steps [start, stop), in time order."""
        return self._events("input", start, stop)

    def target_events(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Target events (steps, target ids) of steps [start, stop), in time order."""
        return self._events("target", start, stop)

    def windows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows of opportunity lying wholly in steps [start, stop): (start steps, stop steps,
        ids), absolute, in time order; empty for a task without windows."""
        parts = []
        for k, a, _ in self._spans(start, stop):
            w = self.segment(k).window_steps
            if w is None:
                continue
            base = k * self.period
            lo, hi, ids = w[0] + base, w[1] + base, w[2]
            keep = (lo >= max(a, start)) & (hi <= stop)
            parts.append((lo[keep], hi[keep], ids[keep]))
        if not parts:
            e = np.empty(0, np.int64)
            return e, e.copy(), e.copy()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    # -- inside ------------------------------------------------------------------------------
    def _spans(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(segment, first, end) of the loop periods that overlap [start, stop); for a looped
        task one per period too (windows and events repeat every period)."""
        if stop <= start:
            return []
        p = self.period
        return [(k, k * p, (k + 1) * p) for k in range(max(start, 0) // p, (stop - 1) // p + 1)]

    def _events(self, which: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.stream:
            return getattr(self.first, which).events(start, stop)
        parts = [getattr(self.segment(k), which).events(a, b) for k, a, b in self.pieces(start, stop)]
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _compile(self, k: int) -> Segment:
        task = self.task.segment(k)
        first, dt = self.task, self.dt
        where = f"segment {k} of the {first.name} task"
        if self.stream and (steps(task.grid, dt) != self.period or (task.nin, task.nout) != (first.nin, first.nout)):
            raise ConfigError(
                "task",
                f"{where} has a grid of {task.grid} s, {task.nin} inputs and {task.nout} outputs; every "
                f"segment needs those of segment 0 ({first.grid} s, {first.nin}, {first.nout})",
            )
        if task.windows is not None and task.windows.n != task.nout:
            raise ValueError(f"windows are for {task.windows.n} outputs, the task has {task.nout}")
        inp = Replay.from_raster(task.input, task.grid, dt)
        tgt = Replay.from_raster(task.target, task.grid, dt)
        wsteps = None if task.windows is None else task.windows.steps(task.grid, dt)
        if self.stream:
            self._check_margins(where, tgt, wsteps)
        win = None if task.windows is None else WindowReplay.from_windows(task.windows, task.grid, dt)
        return Segment(k, inp, tgt, win, wsteps)

    def _check_margins(self, where: str, tgt: Replay, wsteps: tuple | None) -> None:
        """A stream's target and window edges must keep off the first and last ``margin`` steps."""
        m, p = self.margin, self.period
        if m == 0:
            return
        if 2 * m >= p:
            raise ConfigError("task", f"{where}: a segment of {p} steps is too short for a margin of {m} steps")
        busy = np.flatnonzero(np.diff(tgt.ptr))  # steps with target spikes
        edges = [] if wsteps is None else [wsteps[0], wsteps[1]]
        for what, s in (("a target spike", busy), *(("a window edge", e) for e in edges)):
            bad = (s < m) | (s >= p - m)
            if bad.any():
                x = int(s[np.argmax(bad)])
                raise ConfigError(
                    "task",
                    f"{where} has {what} at step {x} of {p}: a stream's segments must leave their first "
                    f"and last {m} steps (the axonal delay) free of target spikes and window edges, since "
                    "the output error reads them that much later",
                )
