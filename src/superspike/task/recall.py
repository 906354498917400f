"""Delayed recall: a temporal task whose answer depends on input further back than the
feed-forward time constants (docs/TASKS.md, "recall").

Inputs: 100 neurons in three sets, cue A (ids 0-39), cue B (40-79) and go (80-99). A trial starts
with a cue: every neuron of the cue's set fires one spike at its own frozen latency within
``cue`` s. After a silent ``delay`` the go set fires its own frozen pattern, the same in every
trial. The loop period holds one A trial and one B trial, in that order.

Target: output 0 answers A, output 1 answers B, each with ``answer_spikes`` spikes spaced
``answer_spacing`` s apart, starting ``answer_onset`` s after the go cue begins.

What the network sees while it must answer (the go cue, the silence before it) is identical in
both trials, so the answer can only come from the cue, ``delay`` s earlier. The default delay of
80 ms is eight membrane (10 ms) and sixteen synaptic (5 ms) time constants: a feed-forward
network can at best fire both outputs alike (or neither), while a network that holds the cue in
its own activity (recurrent connections) can answer right. (At 60 ms a feed-forward network
sometimes still solves it: a strongly hyperpolarised membrane keeps a trace of the cue for that
long, since nothing bounds U from below.) The task draws
nothing at random but the frozen latencies (from ``seed``): no background noise that a network
could memorise instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superspike.task.raster import Raster, Task


@dataclass(frozen=True)
class RecallParams:
    """Shape of the delayed-recall task. Times in s."""

    cue_neurons: int = 40  #: neurons of each cue set (A, B)
    go_neurons: int = 20  #: neurons of the go set
    cue: float = 20e-3  #: cue duration, s
    delay: float = 80e-3  #: silence between the end of the cue and the go cue, s
    go: float = 20e-3  #: go cue duration, s
    answer_onset: float = 10e-3  #: first answer spike after the go cue's start, s
    answer_spikes: int = 3  #: answer spikes per trial
    answer_spacing: float = 10e-3  #: between answer spikes, s
    trial: float = 300e-3  #: one trial (cue onset to the next cue onset), s

    @property
    def nin(self) -> int:
        return 2 * self.cue_neurons + self.go_neurons


def recall_task(seed: int, dt: float, params: RecallParams | None = None) -> Task:
    """The delayed-recall task; the same seed, the same task."""
    p = params or RecallParams()
    rng = np.random.default_rng([seed, 6])
    cue_steps = max(1, int(round(p.cue / dt)))
    go_steps = max(1, int(round(p.go / dt)))
    trial_steps = int(round(p.trial / dt))
    go_onset = cue_steps + int(round(p.delay / dt))
    answer = go_onset + int(round(p.answer_onset / dt)) + np.arange(p.answer_spikes) * int(round(p.answer_spacing / dt))
    if answer[-1] >= trial_steps:
        raise ValueError("the answer does not fit in the trial")
    cue_ids = [np.arange(p.cue_neurons), p.cue_neurons + np.arange(p.cue_neurons)]
    go_ids = 2 * p.cue_neurons + np.arange(p.go_neurons)
    cue_latency = [rng.integers(0, cue_steps, size=p.cue_neurons) for _ in range(2)]
    go_latency = rng.integers(0, go_steps, size=p.go_neurons)
    in_steps, in_ids, tg_steps, tg_ids = [], [], [], []
    for k in range(2):  # trial A, then trial B
        start = k * trial_steps
        in_steps += [start + cue_latency[k], start + go_onset + go_latency]
        in_ids += [cue_ids[k], go_ids]
        tg_steps.append(start + answer)
        tg_ids.append(np.full(answer.size, k))
    s, i = np.concatenate(in_steps), np.concatenate(in_ids)
    order = np.lexsort((i, s))
    # times at step centres, so that floor(t/dt) gives the intended step (MODEL.md 6.2)
    inp = Raster((s[order] + 0.5) * dt, i[order], p.nin, "recall input")
    ts, ti = np.concatenate(tg_steps), np.concatenate(tg_ids)
    target = Raster((ts + 0.5) * dt, ti, 2, "recall target")
    return Task(
        inp,
        target,
        2 * trial_steps * dt,
        "recall",
        f"delayed recall: cue A or B, {p.delay * 1e3:.0f} ms of silence, a go cue; output 0 answers A, 1 answers B",
        notes={"go_onset_s": go_onset * dt, "trial_s": trial_steps * dt},
    )
