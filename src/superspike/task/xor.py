"""The spiking XOR task of the paper's Fig. 5 (docs/TASKS.md), a stream of fresh trials from a seed.

Inputs: three groups of neurons, a time reference and the two XOR inputs ``a`` and ``b``. A trial
is a stimulus of 10 ms in which the reference group always fires and the ``a``/``b`` groups fire
if their bit is 1; each neuron of a firing group emits one spike at its own fixed latency within
the 10 ms (a frozen pattern per group, fixed by the seed). Every input neuron also fires 4 Hz
Poisson background spikes throughout.

The task is a stream (MODEL.md 3.6): every segment of ``segment_length`` s (12.02 s by default)
brings fresh trials, drawn from (seed, segment number): the trial order, the intervals between
trial onsets (200-400 ms; the first trial 20 ms into the segment, the last at least 180 ms before
its end, so an interval across a segment boundary lies in 200-600 ms) and the background noise.
The four conditions appear equally often in a segment (to within one), in random order. Only the
input patterns stay the same, so a network can learn XOR but cannot memorise the noise.

Outputs: neuron 0 answers "a XOR b = 0", neuron 1 "a XOR b = 1". The right output must spike in
a window of opportunity from stimulus onset to 15 ms after the stimulus; the output error is the
window-of-opportunity error of :mod:`superspike.task.windows` (a missed spike: +1 at the end of
the window; a wrong spike: -1 at once). Accuracy is the fraction of trials in which the right
output spiked in its window and the other did not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from superspike.errors import ConfigError
from superspike.task.raster import Raster, Task
from superspike.task.windows import ErrorWindows


@dataclass(frozen=True)
class XorParams:
    """Shape of the XOR task. Times in s, rates in Hz."""

    nin: int = 100  #: input neurons, split into 3 groups (reference, a, b)
    #: sets the segment length: room for 4 x this many trials at the mean interval, after the
    #: first 20 ms (10: 12.02 s, about 40 trials per segment)
    trials_per_condition: int = 10
    stimulus: float = 10e-3  #: duration in which a stimulus group fires, s
    response: float = 15e-3  #: the window of opportunity extends this long past the stimulus, s
    interval_min: float = 200e-3  #: shortest time between stimulus onsets, s
    interval_max: float = 400e-3  #: longest time between stimulus onsets, s
    background: float = 4.0  #: Poisson background rate of every input, Hz
    first: float = 20e-3  #: onset of a segment's first trial, s

    @property
    def segment_length(self) -> float:
        """Length of a segment, s."""
        return self.first + 4 * self.trials_per_condition * (self.interval_min + self.interval_max) / 2


def xor_task(seed: int, dt: float, params: XorParams | None = None) -> Task:
    """The spiking XOR task (Fig. 5) with its windows of opportunity: segment 0 of the stream,
    which makes every later segment; the same seed, the same stream."""
    p = params or XorParams()
    rng = np.random.default_rng([seed, 5])
    stim_steps = max(1, int(round(p.stimulus / dt)))
    latency = rng.integers(0, stim_steps, size=p.nin)  # frozen spike pattern of each group
    period = int(round(p.segment_length / dt))
    gap_min, gap_max = int(round(p.interval_min / dt)), int(round(p.interval_max / dt))
    first = int(round(p.first / dt))
    win_steps = stim_steps + int(round(p.response / dt))
    if gap_min < 1 or gap_min > gap_max or period < gap_min:
        raise ConfigError("xor", f"a segment of {period} steps holds no trials {gap_min}..{gap_max} steps apart")
    sizes = (first, gap_min, gap_max, win_steps)

    def segment(k: int) -> Task:
        return _segment(seed, k, dt, p, latency, period, sizes, segment)

    return segment(0)


def _segment(
    seed: int,
    k: int,
    dt: float,
    p: XorParams,
    latency: np.ndarray,
    period: int,
    sizes: tuple[int, int, int, int],
    stream: Callable[[int], Task],
) -> Task:
    """Segment k of the XOR stream: fresh trial order, intervals and background (the input
    patterns ``latency`` fixed)."""
    first, gap_min, gap_max, win_steps = sizes
    rng = np.random.default_rng([seed, 5, 1, k])
    groups = np.array_split(np.arange(p.nin), 3)  # reference, a, b
    # onsets: 20 ms in, then random intervals while the interval to the next segment's first
    # trial stays at least interval_min
    last = period - gap_min + first
    onsets = [first]
    while True:
        nxt = onsets[-1] + int(rng.integers(gap_min, gap_max + 1))
        if nxt > last:
            break
        onsets.append(nxt)
    onsets = np.array(onsets, np.int64)
    conditions = rng.permutation(np.resize(np.arange(4), onsets.size))
    grid = period * dt

    in_steps, in_ids = [], []
    for onset, cond in zip(onsets, conditions, strict=True):
        bits = (True, bool(cond & 2), bool(cond & 1))  # reference always, then a, b
        for fires, members in zip(bits, groups, strict=True):
            if fires:
                in_steps.append(onset + latency[members])
                in_ids.append(members)
    n_bg = rng.poisson(p.background * grid, size=p.nin)
    in_ids.append(np.repeat(np.arange(p.nin), n_bg))
    in_steps.append(rng.integers(0, period, size=int(n_bg.sum())))
    s, i = np.concatenate(in_steps), np.concatenate(in_ids)
    order = np.lexsort((i, s))
    inp = Raster((s[order] + 0.5) * dt, i[order], p.nin, "xor input")

    answer = ((conditions >> 1) ^ (conditions & 1)).astype(np.int64)  # a XOR b
    # times at step centres, so that floor(t/dt) gives the intended step (MODEL.md 6.2)
    starts = (onsets + 0.5) * dt
    stops = (onsets + win_steps + 0.5) * dt
    windows = ErrorWindows(starts, stops, answer, 2)
    # for plots only: one target spike per trial, in the middle of the window
    target = Raster((onsets + win_steps // 2 + 0.5) * dt, answer, 2, "xor target")
    return Task(
        inp,
        target,
        grid,
        "xor",
        f"spiking XOR: fresh trials (about {4 * p.trials_per_condition} per {grid:.2f} s segment), {p.nin} inputs, "
        f"window of opportunity {win_steps * dt * 1e3:.0f} ms",
        notes={"conditions": conditions, "onsets_s": onsets * dt, "segment": k},
        windows=windows,
        stream=stream,
    )
