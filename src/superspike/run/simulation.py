"""A network, a task and an engine, advanced in time: the Python API under ``superspike train``.

Weights change only in step 5 of the rule (MODEL.md 2.7), at steps with ``clock % update_steps == 0`` (also
step 0 and burn-in steps). :meth:`Simulation.run_steps` cuts the engine's work into chunks that
end right after such a step, applies the optimiser there, and hands every chunk's spikes to the
monitors. A notebook user calls it directly::

    sim = Simulation(network, task)
    rec = sim.record()
    sim.run(20.0, learning=True)
    rec.spikes("output")

Groups are named by the network's spec (:meth:`NetworkSpec.chain` names them ``input``,
``hidden0``, ..., ``output``); monitors receive the spikes of every group by name.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from superspike.engine import Engine, State, get_engine
from superspike.engine.state import all_finite
from superspike.errors import SimulationError
from superspike.network import Network, NetworkSpec
from superspike.optim import Optimizer, make_optimizer
from superspike.params import steps
from superspike.rule.cost import reported_mse
from superspike.task import Task
from superspike.task.feed import Feed

#: a monitor receives (start, stop, spikes of every group by name in ``spec.groups`` order as
#: (steps, ids local to the group), target spikes (steps, target ids))
Monitor = Callable[[int, int, dict[str, tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]], None]


class SpikeRecorder:
    """Keeps the spikes of every group in memory, optionally only inside time windows (steps)."""

    def __init__(self, group_names: list[str], windows: list[tuple[int, int]] | None = None) -> None:
        self.names = [*group_names, "target"]
        self.windows = windows
        self._parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in self.names}

    def __call__(self, start: int, stop: int, spikes: dict, target: tuple) -> None:
        for name in self.names:
            s, i = target if name == "target" else spikes[name]
            if self.windows is not None:
                keep = np.zeros(s.shape, bool)
                for a, b in self.windows:
                    keep |= (s >= a) & (s < b)
                s, i = s[keep], i[keep]
            if s.size:
                self._parts[name].append((s, i))

    def spikes(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        """All recorded (steps, ids) of a group (by name, e.g. 'input', 'hidden0', 'output') or
        of the target ('target', target ids of all output groups)."""
        if group not in self._parts:
            raise KeyError(f"no group {group!r}; recorded: {', '.join(self.names)}")
        parts = self._parts[group]
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def split_input(spec: NetworkSpec, steps_: np.ndarray, ids: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The task's input events split over the input groups (declaration order: the first group
    takes ids 0..n-1, the next n..), ids made local to each group."""
    out = {}
    off = 0
    for g in spec.input_groups:
        keep = (ids >= off) & (ids < off + g.n)
        out[g.name] = (steps_[keep], ids[keep] - off)
        off += g.n
    return out


class Controls:
    """What a simulation and an ensemble member (:mod:`superspike.run.ensemble`) offer alike on
    top of their ``run_steps``: recording and running for a time in s. Needs ``names``, ``dt``,
    ``monitors`` and ``run_steps``."""

    names: list[str]
    dt: float
    monitors: list[Monitor]

    def run_steps(self, n_steps: int, learning: bool = True, eta: float = 1e-3) -> None:  # pragma: no cover
        raise NotImplementedError

    def record(self, windows: list[tuple[float, float]] | None = None) -> SpikeRecorder:
        """Start recording spikes in memory (optionally only in windows given in s)."""
        win = None if windows is None else [(steps(a, self.dt), steps(b, self.dt)) for a, b in windows]
        rec = SpikeRecorder(self.names, win)
        self.monitors.append(rec)
        return rec

    def run(self, seconds: float, learning: bool = True, eta: float = 1e-3) -> None:
        """Simulate ``seconds`` s (rounded down to whole steps)."""
        self.run_steps(steps(seconds, self.dt), learning, eta)


class Simulation(Controls):
    """Advances a network on a task, applying weight updates at update steps (MODEL.md 2.7)."""

    def __init__(
        self,
        network: Network,
        task: Task,
        engine: str | Engine = "fast",
        optimizer: str | Optimizer = "rmaxprop",
        epsilon: float = 1e-12,
        state: State | None = None,
    ) -> None:
        self.network = network
        self.task = task
        spec = network.spec
        self.engine = get_engine(engine)(network, task) if isinstance(engine, str) else engine
        # a name: that optimiser with the rule's constants; or an Optimizer made elsewhere
        # (superspike.optim.make_optimizer, with RMSprop's options)
        self.optimizer = make_optimizer(optimizer, spec.rule, epsilon) if isinstance(optimizer, str) else optimizer
        self.state = state if state is not None else State.initial(network)
        self.update_steps = spec.update_steps
        self.dt = spec.neuron.dt
        self.monitors: list[Monitor] = []
        #: group names in ``spec.groups`` order (the keys of a monitor's ``spikes``)
        self.names = [g.name for g in spec.groups]

    @property
    def feed(self) -> Feed:
        """The task as the engine replays it (segments compiled to steps, MODEL.md 3.5-3.6)."""
        return self.engine.feed

    @property
    def clock(self) -> int:
        """Steps simulated so far."""
        return self.state.clock

    @property
    def time(self) -> float:
        """Simulated time so far, s."""
        return self.state.clock * self.dt

    def run_steps(self, n_steps: int, learning: bool = True, eta: float = 1e-3) -> None:
        """Simulate ``n_steps`` steps; updates (with ``learning``, at rate ``eta``) at update steps."""
        end = self.state.clock + n_steps
        U = self.update_steps
        spec = self.network.spec
        plastic = [self.state.conns[c.name] for c in spec.plastic_connections]
        while self.state.clock < end:
            start = self.state.clock
            next_update = -(-start // U) * U  # smallest multiple of U not before start
            stop = min(end, next_update + 1)
            result = self.engine.advance(self.state, stop - start)
            # the engine changes no weight: they are checked where they change, after an update
            if not all_finite(self.state.groups, {}):
                raise SimulationError(f"numerical blow-up (NaN or infinite state) at t = {stop * self.dt:.4f} s")
            if self.monitors:
                spikes = split_input(spec, *self.feed.input_events(start, stop))
                spikes.update(result.spikes)
                spikes = {name: spikes[name] for name in self.names}
                tgt = self.feed.target_events(start, stop)
                for m in self.monitors:
                    m(start, stop, spikes, tgt)
            if stop - 1 == next_update:
                count = next_update // U + 1  # updates of grad2 so far, this one included (step 0 is the first)
                for conn in plastic:  # step 5, plastic connections only
                    self.optimizer.step(conn.w, conn.el_sum, conn.grad2, U, eta, learning, count)
                if not all(np.isfinite(c.w).all() for c in plastic):
                    raise SimulationError(f"numerical blow-up (NaN or infinite weights) at t = {stop * self.dt:.4f} s")

    def cost(self) -> float:
        """The reported mean-square error now (MODEL.md 2.9), over the neurons of all output groups."""
        spec = self.network.spec
        avg = np.concatenate([self.state.groups[g.name].avg for g in spec.output_groups])
        return reported_mse(avg, self.time, spec.rule)

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the current weights [pre, post], by connection name (creation order)."""
        return {name: c.w.copy() for name, c in self.state.conns.items()}

    def current_network(self) -> Network:
        """The network with its current weights."""
        return Network(self.network.spec, self.weights(), dict(self.network.feedback))
