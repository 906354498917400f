"""What every engine shares: the compiled task replays and the float32 constants of SPEC 1-2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from superspike.engine.state import State, ring_size
from superspike.errors import ConfigError
from superspike.network import Network
from superspike.task.raster import Task
from superspike.task.replay import Replay
from superspike.task.windows import WindowReplay


@dataclass
class StepResult:
    """Spikes emitted by the LIF groups (hidden..., output) during an advance: (steps, ids)."""

    spikes: list[tuple[np.ndarray, np.ndarray]]


class Engine:
    """Advances a :class:`State` by a number of steps with fixed weights.

    Subclasses implement :meth:`advance`. The weights live in the state (``state.conns[c].w``)
    and change only between calls (step 5 of SPEC 2.1 is the optimiser's).
    """

    name = "base"
    #: whether the engine implements the window-of-opportunity output error (task.windows)
    supports_windows = False

    def __init__(self, network: Network, task: Task) -> None:
        spec = network.spec
        if (task.nin, task.nout) != (spec.nin, spec.nout):
            raise ValueError(f"task is {task.nin} -> {task.nout}, network {spec.nin} -> {spec.nout}")
        if task.windows is not None and not self.supports_windows:
            raise ConfigError(
                "engine",
                f"the {task.name} task needs --engine reference (its output error uses windows of "
                f"opportunity, which the {self.name} engine does not implement)",
            )
        self.network = network
        self.task = task
        dt = spec.neuron.dt
        self.input = Replay.from_raster(task.input, task.grid, dt)
        self.target = Replay.from_raster(task.target, task.grid, dt)
        if task.windows is not None and task.windows.n != task.nout:
            raise ValueError(f"windows are for {task.windows.n} outputs, the task has {task.nout}")
        #: compiled windows of opportunity (SPEC 4 Fig. 5), or None for the error target - own
        self.windows = None if task.windows is None else WindowReplay.from_windows(task.windows, task.grid, dt)
        self.feedback = network.feedback
        self._cf, self._ci = _constants(network)

    def advance(self, state: State, n_steps: int) -> StepResult:  # pragma: no cover - abstract
        raise NotImplementedError


def _constants(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The float32 and integer constants of the kernels, computed in float64 then rounded."""
    spec = net.spec
    nrn, rule = spec.neuron, spec.rule
    dt = nrn.dt
    reg = spec.regularizer
    cf = np.array(
        [
            nrn.u_rest,
            nrn.threshold,
            dt / nrn.tau_mem,
            math.exp(-dt / nrn.tau_syn),
            math.exp(-dt / rule.tau_rise),
            dt / rule.tau_rise,
            dt / rule.tau_decay,
            math.exp(-dt / rule.tau_cost),
            dt,
            rule.beta,
            rule.u_cutoff,
            rule.psp_cutoff_for(spec.feedback),
            rule.error_cutoff,
            reg.strength if reg else 0.0,
            reg.exponent if reg else 0.0,
            math.exp(-dt / reg.tau) if reg else 0.0,
        ],
        dtype=np.float32,
    )
    R = ring_size(nrn.delay_steps, spec.feedback_lag())
    ci = np.array(
        [
            spec.n_connections,
            nrn.delay_steps,
            nrn.refractory_steps,
            spec.feedback_lag(),
            1 if spec.feedback == "symmetric" else 0,
            1 if reg is not None else 0,
            1 if spec.linear else 0,
            R - 1,
        ],
        dtype=np.int64,
    )
    return cf, ci
