"""Replay of a raster on a loop grid (MODEL.md 3.5): event (step s, id) is emitted at k * period + s."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from superspike.params import steps
from superspike.task.raster import Raster, check_grid


@dataclass(frozen=True)
class Replay:
    """A raster compiled to time steps: events of step s of the period are ``ids[ptr[s]:ptr[s+1]]``."""

    period: int  #: loop period in steps
    ptr: np.ndarray  #: int64, length period + 1
    ids: np.ndarray  #: int64, sorted by step, then by id
    n: int  #: group size

    @classmethod
    def from_raster(cls, raster: Raster, grid: float, dt: float) -> Replay:
        """Compile a raster; times become steps as floor(t/dt) in float64 (MODEL.md 6.2)."""
        check_grid(raster, grid, dt)
        period = steps(grid, dt)
        s = steps(raster.times, dt)
        order = np.lexsort((raster.ids, s))
        counts = np.bincount(s, minlength=period)
        ptr = np.zeros(period + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return cls(period, ptr, raster.ids[order].copy(), raster.n)

    @cached_property
    def step_of(self) -> np.ndarray:
        """The loop step of every event (parallel to ``ids``), made once."""
        return np.repeat(np.arange(self.period, dtype=np.int64), np.diff(self.ptr))

    def events(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """All events emitted in steps [start, stop): (steps, ids), in time order."""
        if stop <= start or len(self.ids) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        step_of = self.step_of
        out_s, out_i = [], []
        k0, k1 = start // self.period, (stop - 1) // self.period
        for k in range(k0, k1 + 1):
            base = k * self.period
            lo = np.searchsorted(step_of, start - base, "left") if k == k0 else 0
            hi = np.searchsorted(step_of, stop - base, "left") if k == k1 else len(step_of)
            out_s.append(step_of[lo:hi] + base)
            out_i.append(self.ids[lo:hi])
        return np.concatenate(out_s), np.concatenate(out_i)

    def counts(self, start: int, stop: int) -> np.ndarray:
        """Spike counts per step and neuron for steps [start, stop), int8 array (steps, n)."""
        out = np.zeros((stop - start, self.n), dtype=np.int8)
        s, i = self.events(start, stop)
        np.add.at(out, (s - start, i), 1)
        return out
