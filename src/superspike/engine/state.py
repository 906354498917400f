"""The complete simulation state: groups, connections, delay lines. Both engines advance it;
checkpoints save it. Everything is float32 as in the reference (SPEC 2.1), except counters."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from superspike.network import Network


def ring_size(*lags: int) -> int:
    """Smallest power of two that holds the current step and the given lags."""
    need = max(lags) + 1
    return 1 << (need - 1).bit_length()


@dataclass
class GroupState:
    """A group of neurons. ``hist`` is a ring of spike counts of the last steps (slot t % R)."""

    hist: np.ndarray  #: int8 (R, n)
    u: np.ndarray | None = None  #: membrane potential, V (LIF groups only)
    i_syn: np.ndarray | None = None  #: synaptic current, V
    ref: np.ndarray | None = None  #: remaining refractory steps, int32


@dataclass
class ConnectionState:
    """A plastic connection (SPEC 2.1): per synapse [pre, post], per post, per pre, delay lines."""

    w: np.ndarray  #: weights, V
    el: np.ndarray  #: eligibility trace (before the slow filter)
    el_flt: np.ndarray  #: filtered eligibility trace
    el_sum: np.ndarray  #: gradient accumulated since the last update
    grad2: np.ndarray  #: second-moment estimate of the optimiser
    err: np.ndarray  #: error of the post neurons (step 3)
    tr_err: np.ndarray  #: error trace, tau_rise
    tr_err_flt: np.ndarray  #: error trace, tau_decay
    avg: np.ndarray  #: squared-error average (SPEC 2.4)
    het: np.ndarray  #: activity trace of the post neurons (regulariser, SPEC 2.3)
    err_hist: np.ndarray  #: ring of past errors (R, post), feeds the layer below
    tr_pre: np.ndarray  #: z, presynaptic trace
    tr_psp: np.ndarray  #: z~, PSP trace
    sig_line: np.ndarray  #: delay line of sigma'(U_post), (D, post)
    psp_line: np.ndarray  #: delay line of z~ (D, pre)


@dataclass
class State:
    """Everything needed to continue a simulation exactly, at step ``clock``."""

    clock: int
    groups: list[GroupState]  #: 0 = input, 1..L = hidden and output
    target_hist: np.ndarray  #: int8 (R, nout) ring of target spike counts
    conns: list[ConnectionState]
    #: int8 (nout): window of opportunity of each output, 0 closed, 1 open, 2 open and hit
    #: (used only by tasks with windows, superspike.task.windows)
    window_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @classmethod
    def initial(cls, net: Network) -> State:
        """Initial state (SPEC 2.1): U = U_rest, everything else 0."""
        spec = net.spec
        R = ring_size(spec.neuron.delay_steps, spec.feedback_lag())
        sizes = spec.sizes
        f32 = np.float32
        groups = [GroupState(np.zeros((R, sizes[0]), np.int8))]
        for n in sizes[1:]:
            groups.append(
                GroupState(
                    np.zeros((R, n), np.int8),
                    np.full(n, spec.neuron.u_rest, f32),
                    np.zeros(n, f32),
                    np.zeros(n, np.int32),
                )
            )
        conns = []
        for c, (pre, post) in enumerate(spec.shapes):
            D = spec.delay_line_steps(c)
            conns.append(
                ConnectionState(
                    w=net.weights[c].copy(),
                    el=np.zeros((pre, post), f32),
                    el_flt=np.zeros((pre, post), f32),
                    el_sum=np.zeros((pre, post), f32),
                    grad2=np.zeros((pre, post), f32),
                    err=np.zeros(post, f32),
                    tr_err=np.zeros(post, f32),
                    tr_err_flt=np.zeros(post, f32),
                    avg=np.zeros(post, f32),
                    het=np.zeros(post, f32),
                    err_hist=np.zeros((R, post), f32),
                    tr_pre=np.zeros(pre, f32),
                    tr_psp=np.zeros(pre, f32),
                    sig_line=np.zeros((D, post), f32),
                    psp_line=np.zeros((D, pre), f32),
                )
            )
        return cls(0, groups, np.zeros((R, sizes[-1]), np.int8), conns, np.zeros(sizes[-1], np.int8))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping (for checkpoints)."""
        out: dict[str, np.ndarray] = {
            "clock": np.array(self.clock, np.int64),
            "target_hist": self.target_hist,
            "window_state": self.window_state,
        }
        for g, gs in enumerate(self.groups):
            for f in fields(GroupState):
                v = getattr(gs, f.name)
                if v is not None:
                    out[f"g{g}.{f.name}"] = v
        for c, cs in enumerate(self.conns):
            for f in fields(ConnectionState):
                out[f"c{c}.{f.name}"] = getattr(cs, f.name)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], net: Network) -> State:
        """Inverse of :meth:`to_arrays`; shapes are checked against the initial state of ``net``."""
        state = cls.initial(net)
        template = state.to_arrays()
        missing = sorted(set(template) - set(arrays))
        if missing:
            raise KeyError(f"checkpoint lacks {', '.join(missing[:5])}")
        for name, ref in template.items():
            arr = np.asarray(arrays[name])
            if arr.shape != ref.shape or arr.dtype != ref.dtype:
                raise ValueError(
                    f"checkpoint array {name} has shape {arr.shape} {arr.dtype}, expected {ref.shape} {ref.dtype}"
                )
        state.clock = int(arrays["clock"])
        state.target_hist = np.array(arrays["target_hist"])
        state.window_state = np.array(arrays["window_state"])
        for g, gs in enumerate(state.groups):
            for f in fields(GroupState):
                if getattr(gs, f.name) is not None:
                    setattr(gs, f.name, np.array(arrays[f"g{g}.{f.name}"]))
        for c, cs in enumerate(state.conns):
            for f in fields(ConnectionState):
                setattr(cs, f.name, np.array(arrays[f"c{c}.{f.name}"]))
        return state

    def is_finite(self) -> bool:
        """False if any membrane potential, current or weight is NaN or infinite."""
        return all(np.isfinite(g.u).all() and np.isfinite(g.i_syn).all() for g in self.groups[1:]) and all(
            np.isfinite(c.w).all() for c in self.conns
        )
