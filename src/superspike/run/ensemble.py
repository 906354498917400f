"""Ensembles of runs: many runs of the same schedule advanced together as one combined network
(:mod:`superspike.network.ensemble`) by one engine, each writing its own run directory exactly as
:func:`superspike.run.train.train` does (docs/SWEEPS.md, "Ensembles").

Each member is an ordinary run (:func:`superspike.run.train._train`, in a thread of its own: the
same configuration checks, network drawn from its own seed, marker, files, cost lines,
checkpoints and resume), except that its :class:`~superspike.run.simulation.Simulation` is a
:class:`_Member`: a view of its groups and connections in the combined state. A member's
``run_steps`` only records the call; when the run next reads its cost, state or network (once
per cost line), it waits until every member still running has asked for the same calls (they
all run the same schedule); the last one to ask advances the combined network call by call,
applies each member's optimiser with its own learning rate to its own connections, and checks
each member for a blow-up; then every member feeds its monitors (files, cost tracking). A
blow-up is reported there, without the block number a run alone adds. The members' threads
take turns running their own Python (one at a time, between two meetings). Every neuron and
synapse computes what it computes alone, so the results are those of separate runs bit for bit
(tests/test_ensemble.py). Members with the same input share its groups (their states of them
checked equal), and :func:`group_points` puts points with the same input next to each other.

Members resumed from checkpoints at different times cannot share steps: those not at the most
common time run alone afterwards (in their own thread, as :func:`train` would run them).
"""

from __future__ import annotations

import json
import operator
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from superspike.engine import State, get_engine
from superspike.engine.fast import flatten_state, side_by_side
from superspike.engine.state import all_finite
from superspike.errors import ConfigError, SimulationError
from superspike.network import Network
from superspike.network.ensemble import Ensemble, combine, feedback_kind, input_fingerprint, member_prefix
from superspike.optim import Optimizer, make_optimizer
from superspike.rule.cost import reported_mse
from superspike.run.config import RunConfig, config_to_dict, resolve
from superspike.run.simulation import Controls, split_input
from superspike.task import Task
from superspike.task.feed import Feed
from superspike.task.raster import Raster

__all__ = ["DEFAULT_MAX_MEMBERS", "ensemble_key", "group_points", "train_ensemble"]

#: most members of one ensemble (also bounded by memory, :func:`max_members`)
DEFAULT_MAX_MEMBERS = 100
#: in an ensemble, block checkpoints are written at most this often (wall seconds; the first and
#: the final one always): in a profile of one Fig. 4 run its 33 checkpoints (with fsync) took a
#: sixth of its time. Resume is exact from any checkpoint; at most this much wall time is lost.
CHECKPOINT_WALL = 60.0


def ensemble_key(cfg: RunConfig) -> str | None:
    """What runs must share to be advanced together (a string), or None if the run must run
    alone: everything in the resolved configuration but the seed, the learning rate, the
    initial weights and, among random and uniform, the feedback mode. Alone: the reference
    engine, tasks with windows of opportunity, streams, direct feedback, NIR initial graphs."""
    return _key_and_input(cfg)[0]


def _key_and_input(cfg: RunConfig) -> tuple[str | None, str | None]:
    """:func:`ensemble_key` and the fingerprint of the run's input raster (None if it runs alone),
    from one :func:`resolve`."""
    r = resolve(cfg)
    c, spec, task = r.config, r.spec, r.task
    if c.engine != "fast" or task.windows is not None or spec.feedback == "direct" or c.init_from is not None:
        return None, None
    if task.is_stream:
        return None, None  # fresh segments: each member's stream would have to be interleaved (not combined)
    if not (isinstance(getattr(task, "input", None), Raster) and isinstance(getattr(task, "target", None), Raster)):
        return None, None  # a task that is not a fixed pair of rasters on a loop (not combined)
    shared = config_to_dict(replace(c, seed=None, eta=None, init_weights=None))
    shared["feedback"] = feedback_kind(spec)
    return json.dumps(shared, sort_keys=True, default=str), input_fingerprint(task.input)


def max_members(cfg: RunConfig, limit: int = DEFAULT_MAX_MEMBERS) -> int:
    """Members of ``cfg``'s shape that fit in a quarter of the available memory, at most ``limit``."""
    from superspike.run.budget import available_memory, estimate
    from superspike.run.schedule import Schedule

    r = resolve(cfg)
    c = r.config
    sched = Schedule.create(
        c.burn_in, c.block_duration, c.blocks, r.task.grid, r.spec.neuron.dt, c.eta, c.lr_drop_block, c.lr_drop_factor
    )
    est = estimate(r.spec, sched, len(r.task.input.times), out=False)
    # the engine's per-chunk series (S, E: 8 bytes per post neuron and step, 2500 steps; two sets
    # when it pipelines its chunks) and events
    per = est.network_memory + 2 * 8 * 2500 * sum(g.n for g in r.spec.lif_groups) + 64 * r.spec.nin * 64
    return max(1, min(limit, available_memory() // 4 // max(per, 1)))


def group_points(configs: list[RunConfig], limit: int = DEFAULT_MAX_MEMBERS, workers: int = 1) -> list[list[int]]:
    """Indices of ``configs`` in groups that can run as ensembles (compatible, at most ``limit``
    or what memory allows per group; groups of one run alone). Points with the same input raster
    are put next to each other, so that they fall into the same ensemble and share its input
    groups (:func:`~superspike.network.ensemble.combine`): in the order in which each input first
    appears, otherwise in input order. Groups of a key are of equal size as far as possible (202
    points and a limit of 100: 68 + 67 + 67), and as many as a multiple of ``workers`` if each can
    still have 2 members (so that every worker is busy)."""
    keys: dict[str, list[int]] = {}
    alone: list[list[int]] = []
    inputs: dict[int, str | None] = {}
    for i, cfg in enumerate(configs):
        k, inputs[i] = _key_and_input(cfg)
        if k is None:
            alone.append([i])
        else:
            keys.setdefault(k, []).append(i)
    groups: list[list[int]] = []
    for members in keys.values():
        first: dict[str | None, int] = {}
        for i in members:
            first.setdefault(inputs[i], len(first))
        members = sorted(members, key=lambda i: first[inputs[i]])  # stable: input order within an input
        cap = max_members(configs[members[0]], limit)
        parts = -(-len(members) // cap)
        if workers > 1 and parts % workers and len(members) >= 2 * workers * -(-parts // workers):
            parts = -(-parts // workers) * workers
        size, extra = divmod(len(members), parts)
        at = 0
        for p in range(parts):
            n = size + (1 if p < extra else 0)
            groups.append(members[at : at + n])
            at += n
    return groups + alone


class _RunAlone(Exception):
    """A member that cannot share the ensemble's steps (resumed at another time)."""


class _Flag:
    """A stop flag (:class:`superspike.run.train._StopFlag`'s interface). The ensemble's driver
    raises one when a signal comes; the members read another, which the coordinator raises at a
    barrier (:meth:`_Coordinator._advance`), so that every member sees the signal after the same
    steps and all stop at the same step boundary, each with a checkpoint."""

    signum: int | None = None

    def restore(self) -> None:
        pass


class _Coordinator:
    """The combined network, its state and engine, and the barrier at which members meet."""

    def __init__(self, n: int, engine_options: dict[str, Any] | None = None, flag: _Flag | None = None) -> None:
        self.cond = threading.Condition()
        self.flag = flag  #: raised by the driver's signal handler
        self.stop = _Flag()  #: what the members read: ``flag`` as it was at the last barrier
        self.live = set(range(n))  #: members still running (or about to)
        self.joined: dict[int, tuple] = {}
        self.members: dict[int, _Member] = {}
        self.alone: set[int] = set()
        self.engine_options = engine_options or {}
        self.built = False
        self.requests: dict[int, tuple[int, bool, float]] = {}
        self.results: dict[int, list] = {}
        self.generation = 0
        self.error: BaseException | None = None
        self.ensemble: Ensemble | None = None
        self.state: State | None = None
        self.engine = None
        self.index: dict[int, int] = {}  #: member number -> position in the combined network
        #: the members take turns running their Python (their runs' set-up, monitors, cost lines,
        #: files): one at a time, from when it starts or the barrier lets it go until it next waits
        #: at the barrier or ends. Unchecked, every file operation of one member's thread (it
        #: releases the GIL) would hand the GIL to another of a hundred waiting threads and back,
        #: a context switch each
        self.turn = threading.Lock()
        self._holder: int | None = None
        self._taking: set[int] = set()  #: members that take turns (those started by run_members)

    def take_turn(self, k: int, first: bool = False) -> None:
        """Member k's thread waits for its turn (see ``turn``); ``first``: k takes turns from now on."""
        if first:
            self._taking.add(k)
        if k in self._taking:
            self.turn.acquire()
            self._holder = k

    def give_turn(self, k: int) -> None:
        """Member k's thread gives up its turn, if it holds it."""
        if self._holder == k:
            self._holder = None
            self.turn.release()

    # -- joining ------------------------------------------------------------------------------
    def join(self, k: int, network: Network, task: Task, engine: str = "fast", optimizer: str | Optimizer = "rmaxprop",
             epsilon: float = 1e-12, state: State | None = None) -> _Member:  # fmt: skip
        """Member k's simulation (called by its run in place of ``Simulation(...)``); waits until
        every member has joined or left."""
        if engine != "fast":
            raise ConfigError("engine", "an ensemble runs on the fast engine")
        self.give_turn(k)
        try:
            with self.cond:
                joined = (network, task, optimizer, epsilon, state if state is not None else State.initial(network))
                self.joined[k] = joined
                self._maybe_build()
                while not self.built and self.error is None:
                    self.cond.wait()
                if self.error is not None:
                    raise self.error
                if k in self.alone:
                    raise _RunAlone()
                return self.members[k]
        finally:
            self.take_turn(k)

    def leave(self, k: int) -> None:
        """Member k has ended (or never joined): the others no longer wait for it."""
        self.give_turn(k)
        with self.cond:
            self.live.discard(k)
            self.requests.pop(k, None)
            if not self.built:
                self._maybe_build()
            elif self.requests and set(self.requests) >= self.live:
                self._advance()
            self.cond.notify_all()

    def _maybe_build(self) -> None:
        if self.built or not set(self.joined) >= self.live:
            return
        try:
            clocks = Counter(self.joined[k][4].clock for k in self.live)
            if clocks:
                clock = clocks.most_common(1)[0][0]
                self.alone = {k for k in self.live if self.joined[k][4].clock != clock}
                self._build(sorted(self.live - self.alone))
        except BaseException as exc:  # handed to every member
            self.error = exc
        self.built = True
        self.cond.notify_all()

    def _build(self, ks: list[int]) -> None:
        if not ks:
            return
        nets = [self.joined[k][0] for k in ks]
        tasks = [self.joined[k][1] for k in ks]
        states = [self.joined[k][4] for k in ks]
        # members with the same input share its groups only if their states of them are equal
        # too (at the same clock they are: the rings of the same spikes); combine checks
        self.ensemble = ens = combine(nets, tasks, states)
        self.index = {k: m for m, k in enumerate(ks)}
        groups, conns = {}, {}
        th = np.zeros((states[0].target_hist.shape[0], ens.network.spec.nout), np.int8)
        ws = np.zeros(ens.network.spec.nout, np.int8)
        for m, st in enumerate(states):
            p = member_prefix(m)
            # a shared input group's state is its owner's (the first member to give it)
            names = ens.group_names(m)
            for n, g in st.groups.items():
                groups.setdefault(names[n], g)
            conns.update({p + n: c for n, c in st.conns.items()})
            ids = ens.target_ids(m)
            th[:, ids] = st.target_hist
            if st.window_state.size:
                ws[ids] = st.window_state
        groups = {g.name: groups[g.name] for g in ens.network.spec.groups}  # the network's order
        self.state = State(states[0].clock, groups, conns, th, ws)
        self.engine = get_engine("fast")(ens.network, ens.task, **self.engine_options)
        flatten_state(self.state, self.engine)  # each field one array: packed at once per chunk
        for m, k in enumerate(ks):
            net, task, optimizer, epsilon, _ = self.joined[k]
            self.members[k] = _Member(self, m, net, task, optimizer, epsilon)
        self._flat_prepare()

    # -- the barrier --------------------------------------------------------------------------
    def step(self, k: int, asked: list[tuple[int, bool, float]]) -> list:
        """Member k asks for the calls ``asked`` (steps, learning, eta) of ``run_steps`` since it
        last asked; returns what it needs for its monitors (see _advance)."""
        self.give_turn(k)
        try:
            with self.cond:
                if self.error is not None:
                    raise self.error
                self.requests[k] = asked
                gen = self.generation
                if set(self.requests) >= self.live:
                    self._advance()
                while self.generation == gen and self.error is None:
                    self.cond.wait()
                if self.error is not None:
                    raise self.error
                return self.results.pop(k)
        finally:
            self.take_turn(k)

    def _advance(self) -> None:
        """Advance the combined network by the steps every running member asked for (called with
        the lock held, by the last member to ask)."""
        reqs = self.requests
        self.requests = {}
        try:
            asked = {tuple((n, learning) for n, learning, _ in calls) for calls in reqs.values()}
            if len(asked) != 1:
                raise RuntimeError("ensemble members asked for different steps (please report)")
            self.results = {k: [] for k in reqs}
            for i, (n, learning) in enumerate(asked.pop()):
                self._steps(reqs, i, n, learning)
        except BaseException as exc:  # every member fails with it
            self.error = exc
        if self.flag is not None and self.flag.signum is not None:
            self.stop.signum = self.flag.signum
        self.generation += 1
        self.cond.notify_all()

    def _steps(self, reqs: dict[int, list], i: int, n: int, learning: bool) -> None:
        """Call i of ``run_steps`` of every member: ``n`` steps, each member's optimiser with its own eta."""
        state, engine = self.state, self.engine
        U = self.engine.network.spec.update_steps
        end = state.clock + n
        while state.clock < end:
            start = state.clock
            next_update = -(-start // U) * U
            stop = min(end, next_update + 1)
            result = engine.advance(state, stop - start)
            finite = self._flat_finite()
            if finite is None:
                finite = state.is_finite()
            bad = set() if finite else {k for k in reqs if not self.members[k].finite()}
            update = stop - 1 == next_update
            count = next_update // U + 1  # updates of grad2 so far, as in Simulation
            done = update and not bad and self._update_all(reqs, i, U, learning, count)
            for k in reqs:
                mem = self.members[k]
                problem = "state" if k in bad else None
                if update and problem is None:
                    if not done:
                        for conn in mem.plastic:
                            mem.optimizer.step(conn.w, conn.el_sum, conn.grad2, U, reqs[k][i][2], learning, count)
                    if done is not True and not all(np.isfinite(c.w).all() for c in mem.plastic):
                        problem = "weights"
                self.results[k].append((start, stop, result.spikes, problem))

    # -- every member at once, on the flat state (engine.fast.flatten_state) --------------------
    def _flat_prepare(self) -> None:
        """What the batched optimiser step and finiteness test need: the flat arrays of the
        combined state, which member owns each synapse, and one optimiser that stands for all
        (None if the members' optimisers differ in kind or settings, or the state is not flat)."""
        st, eng = self.state, self.engine
        lif = [st.groups[n] for n in eng.lif_order]
        plastic = [st.conns[n] for n in eng.plastic_names]
        fixed = [c for name, c in st.conns.items() if name not in set(eng.plastic_names)]
        self._flat_views = {f: side_by_side([getattr(g, f) for g in lif]) for f in ("u", "i_syn")}
        self._flat_views.update({f: _whole([getattr(c, f) for c in plastic]) for f in ("w", "el_sum", "grad2")})
        self._flat_fixed = [c.w for c in fixed]
        self._flat_arrays = [getattr(o, f) for o in lif for f in ("u", "i_syn")]
        self._flat_arrays += [getattr(c, f) for c in plastic for f in ("w", "el_sum", "grad2")]
        owner = {member_prefix(m): m for m in range(len(self.members))}
        who = [owner[name[: name.index(".") + 1]] for name in eng.plastic_names]
        self._flat_owner = np.repeat(np.array(who, np.int64), [c.w.size for c in plastic])
        opts = [mem.optimizer for mem in self.members.values()]
        self._flat_opt = opts[0] if opts and all(_alike(o, opts[0]) for o in opts) else None

    def _flat_ok(self) -> bool:
        """Whether the flat views still cover the state's arrays (nothing replaced them)."""
        st, eng = self.state, self.engine
        now = [getattr(st.groups[n], f) for n in eng.lif_order for f in ("u", "i_syn")]
        now += [getattr(st.conns[n], f) for n in eng.plastic_names for f in ("w", "el_sum", "grad2")]
        return len(now) == len(self._flat_arrays) and all(map(operator.is_, now, self._flat_arrays))

    def _flat_finite(self) -> bool | None:
        """state.is_finite() on the flat arrays (None if they are not flat)."""
        v = self._flat_views
        if any(v[f] is None for f in ("u", "i_syn", "w")) or not self._flat_ok():
            return None
        return bool(
            np.isfinite(v["u"]).all() and np.isfinite(v["i_syn"]).all() and np.isfinite(v["w"]).all()
            and all(np.isfinite(w).all() for w in self._flat_fixed)
        )  # fmt: skip

    def _update_all(self, reqs: dict[int, list], i: int, U: int, learning: bool, count: int) -> bool | str:
        """Every member's optimiser step in one call on the flat arrays, each synapse with its
        member's eta (the same float32 arithmetic per element as member by member). Only when
        every member takes part and their optimisers are alike; returns False if not done, True
        if done and all weights are finite, "check" if some member's are not (test each)."""
        v = self._flat_views
        flat = all(v[f] is not None for f in ("w", "el_sum", "grad2"))
        if self._flat_opt is None or len(reqs) != len(self.members) or not flat or not self._flat_ok():
            return False
        etas = np.zeros(len(self.members), np.float32)
        for k in reqs:
            etas[self.index[k]] = np.float32(reqs[k][i][2])
        self._flat_opt.step(v["w"], v["el_sum"], v["grad2"], U, etas[self._flat_owner], learning, count)
        return True if np.isfinite(v["w"]).all() else "check"


def _alike(a: Optimizer, b: Optimizer) -> bool:
    """Same kind of optimiser with the same settings (plain values)."""
    if type(a) is not type(b) or vars(a).keys() != vars(b).keys():
        return False
    try:
        return all(bool(vars(a)[k] == vars(b)[k]) for k in vars(a))
    except (TypeError, ValueError):  # an array setting: not compared
        return False


def _whole(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The flat array the (reshaped) ``arrays`` are consecutive pieces of, in order, or None."""
    if not arrays or arrays[0].base is None:
        return None
    base = arrays[0].base
    if base.ndim != 1 or not base.flags.c_contiguous:
        return None
    at = base.ctypes.data
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.ctypes.data != at:
            return None
        at += a.nbytes
    return base if at == base.ctypes.data + base.nbytes else None


class _Member(Controls):
    """Member m of an ensemble as its run sees it: the interface of
    :class:`~superspike.run.simulation.Simulation` that :func:`superspike.run.train._train` uses."""

    def __init__(
        self, coord: _Coordinator, m: int, network: Network, task: Task, optimizer: str | Optimizer, epsilon: float
    ):
        self.coord = coord
        self.network = network
        self.task = task
        spec = network.spec
        # the member's own optimiser state (an Optimizer from train(), or a name)
        self.optimizer = make_optimizer(optimizer, spec.rule, epsilon) if isinstance(optimizer, str) else optimizer
        self.update_steps = spec.update_steps
        self.dt = spec.neuron.dt
        self.monitors: list = []
        self.names = [g.name for g in spec.groups]
        self.prefix = p = member_prefix(m)
        st = coord.state
        ens = coord.ensemble
        #: its groups in the combined state (its input groups may be shared with other members)
        self.groups = {name: st.groups[combined] for name, combined in ens.group_names(m).items()}
        self.conns = {c.name: st.conns[p + c.name] for c in spec.connections}
        self.plastic = [self.conns[c.name] for c in spec.plastic_connections]
        self.targets = ens.target_ids(m)
        #: the member's task as its run reads it (cost lines, monitors)
        self.feed = Feed(task, self.dt, margin=spec.neuron.delay_steps)
        self._k = next(k for k, i in coord.index.items() if i == m)
        #: calls of run_steps not yet simulated, and the clock once they are
        self._pending: list[tuple[int, bool, float]] = []
        self._clock = coord.state.clock

    @property
    def clock(self) -> int:
        """Steps simulated so far, counting those asked for and not yet simulated."""
        return self._clock

    @property
    def time(self) -> float:
        return self.clock * self.dt

    @property
    def state(self) -> State:
        """This member's state (its groups and connections are those of the combined state)."""
        self.sync()
        st = self.coord.state
        return State(
            st.clock, dict(self.groups), dict(self.conns),
            st.target_hist[:, self.targets].copy(), st.window_state[self.targets].copy(),
        )  # fmt: skip

    def finite(self) -> bool:
        """False if any of the member's potentials, currents or weights is NaN or infinite."""
        return all_finite(self.groups, self.conns)

    def run_steps(self, n_steps: int, learning: bool = True, eta: float = 1e-3) -> None:
        """Ask for ``n_steps`` steps. They are simulated, and the monitors called, when the run
        next reads the state (:meth:`sync`: the cost, the state, the network), or at once if a
        signal came: the members meet once per cost line rather than once per engine call."""
        self._pending.append((n_steps, learning, eta))
        self._clock += n_steps
        if self.coord.stop.signum is not None:
            self.sync()

    def sync(self) -> None:
        """Simulate the steps asked for, together with the other members; call the monitors once
        with the spikes of all the calls (the monitors append what they are given: the same files
        and counts as call by call, with far fewer calls)."""
        if not self._pending:
            return
        asked, self._pending = self._pending, []
        done: list[tuple[int, int, dict]] = []
        try:
            for start, stop, spikes, problem in self.coord.step(self._k, asked):
                if problem == "state":
                    raise SimulationError(f"numerical blow-up (NaN or infinite state) at t = {stop * self.dt:.4f} s")
                done.append((start, stop, spikes))
                if problem == "weights":
                    raise SimulationError(f"numerical blow-up (NaN or infinite weights) at t = {stop * self.dt:.4f} s")
        finally:
            if self.monitors and done:
                self._feed(done)

    def _feed(self, done: list[tuple[int, int, dict]]) -> None:
        """The monitors, once for the steps of ``done`` (start, stop, combined spikes per call)."""
        spec = self.network.spec
        p = self.prefix
        start, stop = done[0][0], done[-1][1]
        sp = split_input(spec, *self.feed.input_events(start, stop))
        for g in spec.lif_groups:
            parts = [spikes[p + g.name] for _, _, spikes in done]
            sp[g.name] = parts[0] if len(parts) == 1 else tuple(np.concatenate(x) for x in zip(*parts, strict=True))
        sp = {name: sp[name] for name in self.names}
        tgt = self.feed.target_events(start, stop)
        for mon in self.monitors:
            mon(start, stop, sp, tgt)

    def cost(self) -> float:
        self.sync()
        spec = self.network.spec
        avg = np.concatenate([self.groups[g.name].avg for g in spec.output_groups])
        return reported_mse(avg, self.time, spec.rule)

    def weights(self) -> dict[str, np.ndarray]:
        self.sync()
        return {name: c.w.copy() for name, c in self.conns.items()}

    def current_network(self) -> Network:
        return Network(self.network.spec, self.weights(), dict(self.network.feedback))


def member_trainer(coord: _Coordinator, k: int, checkpoint_wall: float) -> Callable[..., Any]:
    """``train(cfg, out, *, force, resume, quiet)`` for member k: its run in the ensemble, or alone
    if it cannot share the ensemble's steps."""
    from superspike.run.train import _train, train

    def run(cfg: RunConfig | None, out: str | Path | None = None, *, force: bool = False, resume: bool = False,
            quiet: bool = True) -> Any:  # fmt: skip
        locks: list = []
        try:
            try:
                return _train(cfg, out, force, resume, None, quiet, False, locks,
                              simulation=partial(coord.join, k), stop_flag=coord.stop,
                              checkpoint_wall=checkpoint_wall)  # fmt: skip
            finally:
                for lock in locks:
                    lock.release()
        except _RunAlone:
            pass
        finally:
            coord.leave(k)
        # its directory is marked as this run's now: a fresh run starts over with force
        return train(cfg, out, force=force or (out is not None and not resume), resume=resume, quiet=quiet)

    return run


def run_members(
    jobs: list[Callable[[Callable[..., Any]], Any]],
    *,
    threads: int | None = None,
    checkpoint_wall: float = CHECKPOINT_WALL,
) -> list[Any]:
    """Run ``jobs[k](train_k)`` for every member k in its own thread, ``train_k`` being member
    k's ``train`` (see :func:`member_trainer`); returns each job's return value or exception.
    SIGINT/SIGTERM (in the main thread) stop every member with a checkpoint."""
    n = len(jobs)
    flag = _Flag()
    coord = _Coordinator(n, {"threads": threads} if threads else None, flag)
    out: list[Any] = [None] * n

    def body(k: int) -> None:
        trainer = member_trainer(coord, k, checkpoint_wall)
        coord.take_turn(k, first=True)
        try:
            out[k] = jobs[k](trainer)
        except BaseException as exc:  # returned to the caller
            out[k] = exc
        finally:
            coord.leave(k)

    old = {}
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: object) -> None:
            flag.signum = signum

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers = [threading.Thread(target=body, args=(k,), name=f"superspike-member-{k}") for k in range(n)]
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return out


def train_ensemble(
    configs: list[RunConfig],
    outs: list[str | Path | None] | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    threads: int | None = None,
    checkpoint_wall: float = CHECKPOINT_WALL,
) -> list[Any]:
    """Train ``configs`` together as one ensemble (they must be compatible:
    :func:`ensemble_key` equal), member k into run directory ``outs[k]`` (or none); returns each
    member's :class:`~superspike.run.train.RunResult`, equal to what ``train(configs[k], outs[k])``
    returns (same weights bit for bit). ``resume``: continue every ``outs[k]`` from its checkpoint.
    The first member's error, if any, is raised after all members have ended."""
    outs = list(outs) if outs is not None else [None] * len(configs)
    if len(outs) != len(configs):
        raise ConfigError("ensemble", "needs one output directory (or None) per configuration")
    keys = {ensemble_key(c) for c in configs}
    if None in keys or len(keys) > 1:
        raise ConfigError("ensemble", "the configurations cannot run as one ensemble (see ensemble_key)")
    jobs = [
        partial(lambda cfg, out, tr: tr(None if resume else cfg, out, force=force, resume=resume), c, o)
        for c, o in zip(configs, outs, strict=True)
    ]
    results = run_members(jobs, threads=threads, checkpoint_wall=checkpoint_wall)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
