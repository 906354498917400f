"""The complete simulation state, per group and per connection: both engines advance it,
checkpoints save it. Everything is float32 as in the reference (MODEL.md 3), except counters.

A group's error lives with the group (every connection into it learns from the same error); a
plastic connection keeps its synapses' eligibility and its own presynaptic traces, which it
reads through a delay line of its post group's length D (docs/MODEL.md, section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from superspike.network import Network


def _array(ndim: int, dtype: type, optional: bool = True) -> Any:
    """A state field holding an array of ``ndim`` dimensions and ``dtype`` (the engines read both
    from the field's metadata); optional fields default to None."""
    meta = {"ndim": ndim, "dtype": dtype}
    return field(default=None, metadata=meta) if optional else field(metadata=meta)


def array_types(cls: type) -> dict[str, tuple[int, type]]:
    """(ndim, dtype) of every array field of a state dataclass, by name."""
    return {f.name: (f.metadata["ndim"], f.metadata["dtype"]) for f in fields(cls)}


def ring_size(*lags: int) -> int:
    """Smallest power of two that holds the current step and the given lags."""
    need = max(lags) + 1
    return 1 << (need - 1).bit_length()


@dataclass
class GroupState:
    """A group of neurons. ``hist`` is a ring of spike counts of the last steps (slot t % R).

    LIF groups (hidden and output) also hold the neuron state and the error state; for input
    groups those fields are None.
    """

    hist: np.ndarray = _array(2, np.int8, optional=False)  #: int8 (R, n)
    u: np.ndarray | None = _array(1, np.float32)  #: membrane potential, V
    i_syn: np.ndarray | None = _array(1, np.float32)  #: synaptic current, V
    ref: np.ndarray | None = _array(1, np.int32)  #: remaining refractory steps, int32
    err: np.ndarray | None = _array(1, np.float32)  #: error of the neurons (step 3)
    tr_err: np.ndarray | None = _array(1, np.float32)  #: error trace, tau_rise
    tr_err_flt: np.ndarray | None = _array(1, np.float32)  #: error trace, tau_decay
    avg: np.ndarray | None = _array(1, np.float32)  #: squared-error average (MODEL.md 2.9)
    het: np.ndarray | None = _array(1, np.float32)  #: activity trace of the neurons (regulariser, MODEL.md 2.8)
    err_hist: np.ndarray | None = _array(2, np.float32)  #: ring of past errors (R, n), fed back to other groups
    sig_line: np.ndarray | None = _array(2, np.float32)  #: delay line of sigma'(U), (D, n)


@dataclass
class ConnectionState:
    """A connection [pre, post]: its weights, and for a plastic one the rule's state (MODEL.md 3);
    the rule's fields are None for a fixed connection."""

    w: np.ndarray = _array(2, np.float32, optional=False)  #: weights, V
    el: np.ndarray | None = _array(2, np.float32)  #: eligibility trace (before the slow filter)
    el_flt: np.ndarray | None = _array(2, np.float32)  #: filtered eligibility trace
    el_sum: np.ndarray | None = _array(2, np.float32)  #: gradient accumulated since the last update
    grad2: np.ndarray | None = _array(2, np.float32)  #: second-moment estimate of the optimiser
    tr_pre: np.ndarray | None = _array(1, np.float32)  #: z, presynaptic trace
    tr_psp: np.ndarray | None = _array(1, np.float32)  #: z~, PSP trace
    psp_line: np.ndarray | None = _array(2, np.float32)  #: delay line of z~ (D, pre), D of the post group


@dataclass
class State:
    """Everything needed to continue a simulation exactly, at step ``clock``.

    ``groups`` and ``conns`` are keyed by name, in the network's order.
    """

    clock: int
    groups: dict[str, GroupState]
    conns: dict[str, ConnectionState]
    target_hist: np.ndarray  #: int8 (R, nout) ring of target spike counts (all output groups)
    #: int8 (nout): window of opportunity of each output, 0 closed, 1 open, 2 open and hit
    #: (used only by tasks with windows, superspike.task.windows)
    window_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @classmethod
    def initial(cls, net: Network) -> State:
        """Initial state (MODEL.md 3): U = U_rest, everything else 0."""
        spec = net.spec
        R = ring_size(spec.neuron.delay_steps, spec.feedback_lag())
        f32 = np.float32
        groups: dict[str, GroupState] = {}
        for g in spec.groups:
            n = g.n
            if not g.lif:
                groups[g.name] = GroupState(np.zeros((R, n), np.int8))
                continue
            D = spec.delay_line_steps(g)
            groups[g.name] = GroupState(
                hist=np.zeros((R, n), np.int8),
                u=np.full(n, spec.neuron_of(g).u_rest, f32),
                i_syn=np.zeros(n, f32),
                ref=np.zeros(n, np.int32),
                err=np.zeros(n, f32),
                tr_err=np.zeros(n, f32),
                tr_err_flt=np.zeros(n, f32),
                avg=np.zeros(n, f32),
                het=np.zeros(n, f32),
                err_hist=np.zeros((R, n), f32),
                sig_line=np.zeros((D, n), f32),
            )
        conns: dict[str, ConnectionState] = {}
        for c in spec.connections:
            w = net.weights[c.name].copy()
            if not c.plastic:
                conns[c.name] = ConnectionState(w)
                continue
            pre, post = w.shape
            D = spec.delay_line_steps(c.post)
            conns[c.name] = ConnectionState(
                w=w,
                el=np.zeros((pre, post), f32),
                el_flt=np.zeros((pre, post), f32),
                el_sum=np.zeros((pre, post), f32),
                grad2=np.zeros((pre, post), f32),
                tr_pre=np.zeros(pre, f32),
                tr_psp=np.zeros(pre, f32),
                psp_line=np.zeros((D, pre), f32),
            )
        nout = spec.nout
        return cls(0, groups, conns, np.zeros((R, nout), np.int8), np.zeros(nout, np.int8))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping (for checkpoints): ``group/NAME/FIELD``, ``conn/NAME/FIELD``."""
        out: dict[str, np.ndarray] = {
            "clock": np.array(self.clock, np.int64),
            "target_hist": self.target_hist,
            "window_state": self.window_state,
        }
        for name, gs in self.groups.items():
            for f in fields(GroupState):
                v = getattr(gs, f.name)
                if v is not None:
                    out[f"group/{name}/{f.name}"] = v
        for name, cs in self.conns.items():
            for f in fields(ConnectionState):
                v = getattr(cs, f.name)
                if v is not None:
                    out[f"conn/{name}/{f.name}"] = v
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], net: Network) -> State:
        """Inverse of :meth:`to_arrays`; names, shapes and dtypes are checked against the initial
        state of ``net`` (KeyError, ValueError)."""
        state = cls.initial(net)
        template = state.to_arrays()
        missing = sorted(set(template) - set(arrays))
        if missing:
            raise KeyError(f"checkpoint lacks {', '.join(missing[:5])}")
        extra = sorted(set(arrays) - set(template))
        if extra:
            raise KeyError(f"checkpoint has arrays this network does not: {', '.join(extra[:5])}")
        for name, ref in template.items():
            arr = np.asarray(arrays[name])
            if arr.shape != ref.shape or arr.dtype != ref.dtype:
                raise ValueError(
                    f"checkpoint array {name} has shape {arr.shape} {arr.dtype}, expected {ref.shape} {ref.dtype}"
                )
        state.clock = int(arrays["clock"])
        if state.clock < 0:
            raise ValueError(f"checkpoint clock {state.clock} is negative")
        state.target_hist = np.array(arrays["target_hist"])
        state.window_state = np.array(arrays["window_state"])
        for name, gs in state.groups.items():
            for f in fields(GroupState):
                if getattr(gs, f.name) is not None:
                    setattr(gs, f.name, np.array(arrays[f"group/{name}/{f.name}"]))
        for name, cs in state.conns.items():
            for f in fields(ConnectionState):
                if getattr(cs, f.name) is not None:
                    setattr(cs, f.name, np.array(arrays[f"conn/{name}/{f.name}"]))
        return state

    def is_finite(self) -> bool:
        """False if any membrane potential, current or weight is NaN or infinite."""
        return all_finite(self.groups, self.conns)


def all_finite(groups: dict[str, GroupState], conns: dict[str, ConnectionState]) -> bool:
    """False if any membrane potential, current (of ``groups``) or weight (of ``conns``) is NaN or
    infinite: a whole state's, or an ensemble member's part of one."""
    return all(
        np.isfinite(g.u).all() and np.isfinite(g.i_syn).all() for g in groups.values() if g.u is not None
    ) and all(np.isfinite(c.w).all() for c in conns.values())
