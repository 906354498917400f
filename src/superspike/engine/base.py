"""What every engine shares: the task's feed (its compiled segments; an advance is cut at a
stream's segment boundaries, MODEL.md 3.6) and the named, typed structures the compiled
kernels take (constants of the rule, constants of each LIF group, the graph as index arrays).
Each is a NamedTuple, which numba passes to a kernel as one argument and whose fields the
kernel reads by name (docs/MODEL.md explains each constant).

Kernel order of groups: the input groups first, then the LIF groups, each in declaration order.
A neuron's *global index* counts through the groups in that order, so input neuron k of the task
is global index k; a LIF group's neurons also have a *post index*, global index - nin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from superspike.engine.state import State, ring_size
from superspike.errors import ConfigError
from superspike.network import Network, NetworkSpec
from superspike.task.feed import Feed, Segment
from superspike.task.raster import Task


class RuleConsts(NamedTuple):
    """Constants of the rule and the schedule of a step: float32 as in the reference (computed
    in float64, then rounded), step counts as integers."""

    dec_rise: np.float32  #: exp(-dt/tau_rise): decay of z, el (steps 1, 4c)
    k_rise: np.float32  #: dt/tau_rise: Euler factor of tr_err (step 1)
    k_decay: np.float32  #: dt/tau_decay: Euler factor of tr_err_flt, el_flt, z~ (steps 1, 4c, 6)
    dec_avg: np.float32  #: exp(-dt/tau_cost): decay of the squared-error average (step 2)
    dt: np.float32  #: time step, s
    beta: np.float32  #: surrogate steepness, 1/V
    u_cut: np.float32  #: sigma' = 0 below this potential, V
    psp_cut: np.float32  #: a pre takes part in step 4b if its delayed z~ exceeds this
    err_cut: np.float32  #: a post takes part in step 4d if |tr_err_flt| >= this
    rho: np.float32  #: regulariser strength (MODEL.md 2.8)
    reg_a: np.float32  #: regulariser exponent a
    dec_het: np.float32  #: exp(-dt/tau_het): decay of the activity trace h
    delay: int  #: axonal delay, steps
    fb_lag: int  #: steps an error takes to reach the group it is fed back to (MODEL.md 4.5)
    mask: int  #: ring size - 1 (rings of spikes and errors hold a power of two of steps)
    symmetric: bool  #: feedback through the current forward weights (else fixed matrices)
    linear: bool  #: sigma' = 1


class NeuronConsts(NamedTuple):
    """Constants of the LIF groups, one entry per LIF group in kernel order (MODEL.md 1)."""

    u_rest: np.ndarray  #: float32, resting and reset potential, V
    thr: np.ndarray  #: float32, threshold, V
    k_mem: np.ndarray  #: float32, dt/tau_mem
    dec_syn: np.ndarray  #: float32, exp(-dt/tau_syn)
    ref_steps: np.ndarray  #: int32, refractory period, steps


class Topology(NamedTuple):
    """The graph as int64 index arrays. Groups in kernel order (``g``), connections in creation
    order (``c``), feedback edges in ``spec.feedback_edges`` order (``e``)."""

    g_off: np.ndarray  #: (G+1) global index of each group's first neuron
    g_lif: np.ndarray  #: (G) 1 for a LIF group
    g_lif_index: np.ndarray  #: (G) index among the LIF groups (NeuronConsts), -1 for input groups
    g_target: np.ndarray  #: (G) offset of an output group in the target space, -1 otherwise
    g_dlen: np.ndarray  #: (G) delay line length D of a LIF group's synapses, 0 for input groups
    g_reg: np.ndarray  #: (G) 1 if the regulariser acts on the synapses into the group
    c_pre: np.ndarray  #: (C) pre group of each connection
    c_post: np.ndarray  #: (C) post group
    c_plastic: np.ndarray  #: (C) 1 for a plastic connection
    e_src: np.ndarray  #: (E) group whose error is fed back
    e_dst: np.ndarray  #: (E) hidden group it is fed to
    e_via: np.ndarray  #: (E) connection dst -> src whose weights carry it (symmetric), else -1
    e_fix: np.ndarray  #: (E) index of the fixed feedback matrix in ``Engine.fixed_feedback``, else -1


def kernel_groups(spec: NetworkSpec) -> list[str]:
    """Group names in kernel order: input groups, then LIF groups, each in declaration order."""
    return [g.name for g in spec.input_groups] + [g.name for g in spec.lif_groups]


def rule_consts(spec: NetworkSpec) -> RuleConsts:
    """The float32 constants of the rule (computed in float64, then rounded, as the reference)."""
    nrn, rule, reg = spec.neuron, spec.rule, spec.regularizer
    dt = nrn.dt
    f = np.float32
    return RuleConsts(
        dec_rise=f(math.exp(-dt / rule.tau_rise)),
        k_rise=f(dt / rule.tau_rise),
        k_decay=f(dt / rule.tau_decay),
        dec_avg=f(math.exp(-dt / rule.tau_cost)),
        dt=f(dt),
        beta=f(rule.beta),
        u_cut=f(rule.u_cutoff),
        psp_cut=f(spec.psp_cutoff()),
        err_cut=f(rule.error_cutoff),
        rho=f(reg.strength if reg else 0.0),
        reg_a=f(reg.exponent if reg else 0.0),
        dec_het=f(math.exp(-dt / reg.tau) if reg else 0.0),
        delay=nrn.delay_steps,
        fb_lag=spec.feedback_lag(),
        mask=ring_size(nrn.delay_steps, spec.feedback_lag()) - 1,
        symmetric=spec.feedback == "symmetric",
        linear=bool(spec.linear),
    )


def neuron_consts(spec: NetworkSpec) -> NeuronConsts:
    """Each LIF group's float32 neuron constants, in kernel order."""
    ps = [spec.neuron_of(g) for g in spec.lif_groups]
    f32 = np.float32
    return NeuronConsts(
        u_rest=np.array([p.u_rest for p in ps], f32),
        thr=np.array([p.threshold for p in ps], f32),
        k_mem=np.array([p.dt / p.tau_mem for p in ps], f32),
        dec_syn=np.array([math.exp(-p.dt / p.tau_syn) for p in ps], f32),
        ref_steps=np.array([p.refractory_steps for p in ps], np.int32),
    )


def topology(spec: NetworkSpec) -> Topology:
    """The graph of ``spec`` as index arrays (see :class:`Topology`)."""
    order = kernel_groups(spec)
    gi = {name: k for k, name in enumerate(order)}
    groups = [spec.group(n) for n in order]
    i64 = np.int64
    g_off = np.zeros(len(groups) + 1, i64)
    np.cumsum([g.n for g in groups], out=g_off[1:])
    lif_names = [g.name for g in spec.lif_groups]
    out_names = [g.name for g in spec.output_groups]
    t_off = np.concatenate([[0], np.cumsum([g.n for g in spec.output_groups])])
    cidx = {c.name: k for k, c in enumerate(spec.connections)}
    fixed = list(spec.feedback_shapes)
    edges = spec.feedback_edges
    return Topology(
        g_off=g_off,
        g_lif=np.array([1 if g.lif else 0 for g in groups], i64),
        g_lif_index=np.array([lif_names.index(g.name) if g.lif else -1 for g in groups], i64),
        g_target=np.array([int(t_off[out_names.index(g.name)]) if g.target else -1 for g in groups], i64),
        g_dlen=np.array([spec.delay_line_steps(g) if g.lif else 0 for g in groups], i64),
        g_reg=np.array([1 if spec.regularized(g) else 0 for g in groups], i64),
        c_pre=np.array([gi[c.pre] for c in spec.connections], i64),
        c_post=np.array([gi[c.post] for c in spec.connections], i64),
        c_plastic=np.array([1 if c.plastic else 0 for c in spec.connections], i64),
        e_src=np.array([gi[e.src] for e in edges], i64),
        e_dst=np.array([gi[e.dst] for e in edges], i64),
        e_via=np.array([cidx[e.via] if e.via is not None else -1 for e in edges], i64),
        e_fix=np.array([fixed.index(e.name) if e.via is None else -1 for e in edges], i64),
    )


@dataclass
class StepResult:
    """Spikes emitted by the LIF groups during an advance, by group name: (steps, ids)."""

    spikes: dict[str, tuple[np.ndarray, np.ndarray]]


class Engine:
    """Advances a :class:`State` by a number of steps with fixed weights.

    Subclasses implement :meth:`_advance` (steps within one segment of the task) and
    :meth:`_load` (a new segment). The weights live in the state (``state.conns[name].w``)
    and change only between calls (step 5 of the rule (MODEL.md 2.7) is the optimiser's).
    """

    name = "base"
    #: whether the engine implements the window-of-opportunity output error (task.windows)
    supports_windows = False

    def __init__(self, network: Network, task: Task) -> None:
        spec = network.spec
        if (task.nin, task.nout) != (spec.nin, spec.nout):
            raise ConfigError(
                "network",
                f"the task has {task.nin} inputs and {task.nout} outputs, the network's input groups "
                f"{spec.nin} and output groups {spec.nout} neurons",
            )
        if task.windows is not None and not self.supports_windows:
            raise ConfigError(
                "engine",
                f"the {task.name} task needs --engine reference (its output error uses windows of "
                f"opportunity, which the {self.name} engine does not implement)",
            )
        self.network = network
        self.task = task
        #: the task compiled (MODEL.md 3.5, 3.6); a stream's segments are checked against the delay
        self.feed = Feed(task, spec.neuron.dt, margin=spec.neuron.delay_steps)
        self._use(self.feed.first)
        #: group names in kernel order
        self.group_order = kernel_groups(spec)
        self.lif_order = [g.name for g in spec.lif_groups]
        self.consts = rule_consts(spec)
        self.neurons = neuron_consts(spec)
        self.topo = topology(spec)
        #: the fixed feedback matrices [src, dst] in the order of ``spec.feedback_shapes``
        self.fixed_feedback = [network.feedback[name] for name in spec.feedback_shapes]

    def _use(self, seg: Segment) -> None:
        """Make ``seg`` the segment the next steps replay: ``input``, ``target`` (Replay) and
        ``windows`` (WindowReplay, or None for the error target - own)."""
        self.segment = seg.k
        self.input = seg.input
        self.target = seg.target
        self.windows = seg.windows

    def advance(self, state: State, n_steps: int) -> StepResult:
        """Advance ``state`` by ``n_steps`` steps with fixed weights; return the spikes emitted.

        For a stream the steps are cut at segment boundaries and each segment's arrays swapped
        in before its steps (MODEL.md 3.6); a looped task is one piece."""
        if n_steps < 1:
            raise ValueError("n_steps must be at least 1")
        if not self.feed.stream:
            return self._advance(state, n_steps)
        parts = []
        for k, a, b in self.feed.pieces(state.clock, state.clock + n_steps):
            if k != self.segment:
                seg = self.feed.segment(k)
                self._use(seg)
                self._load(seg)
            parts.append(self._advance(state, b - a))
        if len(parts) == 1:
            return parts[0]
        return StepResult(
            {
                name: tuple(np.concatenate([p.spikes[name][j] for p in parts]) for j in range(2))  # type: ignore[misc]
                for name in parts[0].spikes
            }
        )

    def _load(self, seg: Segment) -> None:  # pragma: no cover - abstract
        """Rebuild the engine's own arrays of the task from ``seg`` (after :meth:`_use`)."""
        raise NotImplementedError

    def _advance(self, state: State, n_steps: int) -> StepResult:  # pragma: no cover - abstract
        raise NotImplementedError
