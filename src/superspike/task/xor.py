"""The spiking XOR task of the paper's Fig. 5 (docs/TASKS.md), generated from a seed.

Inputs: three groups of neurons, a time reference and the two XOR inputs ``a`` and ``b``. A trial
is a stimulus of 10 ms in which the reference group always fires and the ``a``/``b`` groups fire
if their bit is 1; each neuron of a firing group emits one spike at its own fixed latency within
the 10 ms (a frozen pattern per group). Every input neuron also fires 4 Hz Poisson background
spikes throughout. Trials follow each other at random intervals; the four conditions appear
equally often, in random order, and the whole sequence is the loop period.

Outputs: neuron 0 answers "a XOR b = 0", neuron 1 "a XOR b = 1". The right output must spike in
a window of opportunity from stimulus onset to 15 ms after the stimulus; the output error is the
window-of-opportunity error of :mod:`superspike.task.windows` (a missed spike: +1 at the end of
the window; a wrong spike: -1 at once). Accuracy is the fraction of trials in which the right
output spiked in its window and the other did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superspike.task.raster import Raster, Task
from superspike.task.windows import ErrorWindows


@dataclass(frozen=True)
class XorParams:
    """Shape of the XOR task. Times in s, rates in Hz."""

    nin: int = 100  #: input neurons, split into 3 groups (reference, a, b)
    trials_per_condition: int = 10  #: each of (0,0), (0,1), (1,0), (1,1); shuffled
    stimulus: float = 10e-3  #: duration in which a stimulus group fires, s
    response: float = 15e-3  #: the window of opportunity extends this long past the stimulus, s
    interval_min: float = 200e-3  #: shortest time between stimulus onsets, s
    interval_max: float = 400e-3  #: longest time between stimulus onsets, s
    background: float = 4.0  #: Poisson background rate of every input, Hz


def xor_task(seed: int, dt: float, params: XorParams | None = None) -> Task:
    """The spiking XOR task (Fig. 5) with its windows of opportunity; the same seed, the same task."""
    p = params or XorParams()
    rng = np.random.default_rng([seed, 5])
    groups = np.array_split(np.arange(p.nin), 3)  # reference, a, b
    stim_steps = max(1, int(round(p.stimulus / dt)))
    latency = rng.integers(0, stim_steps, size=p.nin)  # frozen spike pattern of each group

    conditions = np.repeat(np.arange(4), p.trials_per_condition)
    rng.shuffle(conditions)
    gaps = rng.integers(int(round(p.interval_min / dt)), int(round(p.interval_max / dt)) + 1, size=conditions.size)
    onsets = np.concatenate([[0], np.cumsum(gaps[:-1])]) + int(round(20e-3 / dt))  # first trial after 20 ms
    period = int(onsets[-1] + gaps[-1])
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
    win_steps = stim_steps + int(round(p.response / dt))
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
        f"spiking XOR: {conditions.size} trials, {p.nin} inputs, window of opportunity {win_steps * dt * 1e3:.0f} ms",
        notes={"conditions": conditions, "onsets_s": onsets * dt},
        windows=windows,
    )
