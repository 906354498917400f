"""The readable reference engine: MODEL.md 2.6, one time step at a time, in float32, in the
reference's order of operations, on any graph of groups and connections (docs/MODEL.md,
sections 2-4). It is the oracle every faster engine is tested against.

Read :func:`_simulate` beside docs/MODEL.md: the neuron update and spike delivery (MODEL.md 1) and
the numbered plasticity steps of MODEL.md 2.6 appear in that order, one helper each, with the same
numbers in the comments. Each step runs over every group or connection before the next step
starts; connections in creation order, groups in kernel order (input groups, then LIF groups).
Step 5 (the weight update every 5000 steps) is the optimiser's (``superspike.optim``); the engine
stops after an update step so that the run loop can apply it (see ``run.Simulation``).

The kernel takes named structures (NamedTuples numba passes as one argument each): the rule's
and the neurons' constants and the graph (:mod:`superspike.engine.base`), and the state as
:class:`GroupArrays` and :class:`ConnArrays`, whose fields are the fields of ``GroupState`` and
``ConnectionState`` with one array per group or connection. Adding a state variable means a
field there (and its initial value in ``State.initial``), the same name in :class:`GroupArrays`
or :class:`ConnArrays`, and its use in a step below (dimensions and dtype come from the state
field's metadata); checkpoints pick it up by name.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, typeof
from numba.typed import List

from superspike.engine.base import Engine, StepResult
from superspike.engine.state import ConnectionState, GroupState, State, array_types
from superspike.network import Network
from superspike.rule.surrogate import surrogate
from superspike.task.feed import Segment
from superspike.task.raster import Task
from superspike.task.windows import WindowReplay

f32 = np.float32


class TaskArrays(NamedTuple):
    """The task on the loop grid (MODEL.md 3.5, :class:`~superspike.task.replay.Replay`) and the ring
    of target spike counts it fills (all output groups, in target ids)."""

    in_ptr: np.ndarray  #: input events of loop step s: ``in_ids[in_ptr[s]:in_ptr[s+1]]``
    in_ids: np.ndarray  #: task input ids = global neuron indices of the input groups
    tg_ptr: np.ndarray
    tg_ids: np.ndarray  #: task target ids (target space of the output groups)
    target_hist: np.ndarray  #: int8 (R, nout), state


class GroupArrays(NamedTuple):
    """The groups' state (``GroupState``), one array per group in kernel order, as typed
    Lists; input groups have empty placeholders for the LIF fields."""

    hist: List
    u: List
    i_syn: List
    ref: List
    err: List
    tr_err: List
    tr_err_flt: List
    avg: List
    het: List
    err_hist: List
    sig_line: List


class ConnArrays(NamedTuple):
    """The connections' state (``ConnectionState``) in creation order, as typed Lists; fixed
    connections have empty placeholders for the rule's fields. (grad2 is the optimiser's.)"""

    w: List
    el: List
    el_flt: List
    el_sum: List
    tr_pre: List
    tr_psp: List
    psp_line: List


class Recording(NamedTuple):
    """Spikes of the LIF groups (in LIF order) during one call: ``count[k]`` entries of
    ``steps[k]`` and ``ids[k]`` (ids local to the group)."""

    steps: List
    ids: List
    count: np.ndarray


class Windows(NamedTuple):
    """Windows of opportunity (``superspike.task.windows``) compiled to the loop grid, in
    target ids; ``on`` False: the output error is target - own."""

    on: bool
    open_ptr: np.ndarray
    open_ids: np.ndarray
    close_ptr: np.ndarray
    close_ids: np.ndarray
    state: np.ndarray  #: int8 (nout): 0 closed, 1 open, 2 open and hit


# empty arrays standing in for the fields a group or connection does not have
_PLACEHOLDER = {
    1: {np.dtype(t): np.zeros(0, t) for t in (np.float32, np.int32, np.int64)},
    2: {np.dtype(np.float32): np.zeros((0, 0), np.float32), np.dtype(np.int8): np.zeros((0, 0), np.int8)},
}
_GROUP_TYPES = array_types(GroupState)
_CONN_TYPES = array_types(ConnectionState)


def typed_list(arrays: list[np.ndarray | None], ndim: int, dtype: type) -> List:
    """A numba typed List of the arrays (shared, not copied); None becomes an empty placeholder."""
    empty = _PLACEHOLDER[ndim][np.dtype(dtype)]
    out = List.empty_list(typeof(empty))
    for a in arrays:
        if a is None:
            a = empty
        if a.dtype != empty.dtype or a.ndim != ndim or not a.flags.c_contiguous:
            raise ValueError(f"state array of shape {a.shape} {a.dtype}: expected C-contiguous {ndim}-d {empty.dtype}")
        out.append(a)
    return out


def group_arrays(state: State, order: list[str]) -> GroupArrays:
    """The groups' state arrays in kernel ``order`` (shared with ``state``)."""
    gs = [state.groups[name] for name in order]
    return GroupArrays(*(typed_list([getattr(g, f) for g in gs], *_GROUP_TYPES[f]) for f in GroupArrays._fields))


def conn_arrays(state: State) -> ConnArrays:
    """The connections' state arrays in creation order (shared with ``state``)."""
    cs = list(state.conns.values())
    return ConnArrays(*(typed_list([getattr(c, f) for c in cs], *_CONN_TYPES[f]) for f in ConnArrays._fields))


# -- one time step, piece by piece ----------------------------------------------------------
@njit(cache=True)
def _replay(t, slot, topo, task, hist):
    """Input spikes of step t into the input groups' rings (task id k = global index k), target
    spikes into the target ring (MODEL.md 3.5)."""
    for g in range(topo.g_lif.shape[0]):
        if topo.g_lif[g] == 0:
            hist[g][slot, :] = 0
    s = t % (task.in_ptr.shape[0] - 1)
    for k in range(task.in_ptr[s], task.in_ptr[s + 1]):
        gid = task.in_ids[k]
        g = 0
        while gid >= topo.g_off[g + 1]:
            g += 1
        hist[g][slot, gid - topo.g_off[g]] += 1
    tgh = task.target_hist
    tgh[slot, :] = 0
    s = t % (task.tg_ptr.shape[0] - 1)
    for k in range(task.tg_ptr[s], task.tg_ptr[s + 1]):
        tgh[slot, task.tg_ids[k]] += 1


@njit(cache=True)
def _update_neurons(t, slot, neurons, topo, groups, rec):
    """MODEL.md 1: membrane, threshold and refractoriness, current decay; every LIF group with its
    own constants. Spikes go into the group's ring and the recording."""
    for g in range(topo.g_lif.shape[0]):
        li = topo.g_lif_index[g]
        if li < 0:
            continue
        u_rest, thr, k_mem = neurons.u_rest[li], neurons.thr[li], neurons.k_mem[li]
        dec_syn, ref_steps = neurons.dec_syn[li], neurons.ref_steps[li]
        u, cur, ref, h = groups.u[g], groups.i_syn[g], groups.ref[g], groups.hist[g]
        rt, ri = rec.steps[li], rec.ids[li]
        for i in range(u.shape[0]):
            u[i] = u[i] + k_mem * ((u_rest - u[i]) + cur[i])
            spiked = 0
            if ref[i] == 0 and u[i] > thr:
                spiked = 1
                u[i] = u_rest
                ref[i] = ref_steps
            elif ref[i] > 0:
                ref[i] -= 1
                u[i] = u_rest
            cur[i] = cur[i] * dec_syn
            h[slot, i] = spiked
            if spiked:
                n = rec.count[li]
                rt[n] = t
                ri[n] = i
                rec.count[li] = n + 1


@njit(cache=True)
def _deliver(dslot, topo, groups, conns):
    """MODEL.md 1: I_syn += w for spikes emitted `delay` steps ago; connections in creation order,
    fixed ones too, pre neurons ascending (the order of the float32 sums)."""
    for c in range(topo.c_pre.shape[0]):
        pre, cur, w = groups.hist[topo.c_pre[c]], groups.i_syn[topo.c_post[c]], conns.w[c]
        for j in range(w.shape[0]):
            for _ in range(pre[dslot, j]):
                for i in range(w.shape[1]):
                    cur[i] = cur[i] + w[j, i]


@njit(cache=True)
def _traces(slot, dslot, consts, topo, groups, conns):
    """Step 1: z of every plastic connection (delayed pre spikes), the error traces of every
    LIF group (its err of the previous step), h of regularised groups (own spikes, undelayed)."""
    for c in range(topo.c_pre.shape[0]):
        if topo.c_plastic[c]:
            trp, pre = conns.tr_pre[c], groups.hist[topo.c_pre[c]]
            for j in range(trp.shape[0]):
                trp[j] = (trp[j] + pre[dslot, j]) * consts.dec_rise
    for g in range(topo.g_lif.shape[0]):
        if topo.g_lif[g]:
            err, tre, tref = groups.err[g], groups.tr_err[g], groups.tr_err_flt[g]
            for i in range(err.shape[0]):
                tre[i] = tre[i] + consts.k_rise * (err[i] - tre[i])
                tref[i] = tref[i] + consts.k_decay * (tre[i] - tref[i])
        if topo.g_reg[g]:
            het, own = groups.het[g], groups.hist[g]
            for i in range(het.shape[0]):
                het[i] = (het[i] + own[slot, i]) * consts.dec_het  # MODEL.md 2.8


@njit(cache=True)
def _error_average(consts, topo, groups):
    """Step 2: the squared-error average of every LIF group (MODEL.md 2.9)."""
    for g in range(topo.g_lif.shape[0]):
        if topo.g_lif[g]:
            avg, tref = groups.avg[g], groups.tr_err_flt[g]
            for i in range(avg.shape[0]):
                avg[i] = avg[i] * consts.dec_avg + consts.dt * tref[i] * tref[i]


@njit(cache=True)
def _output_group(topo, tid):
    """The output group (kernel index) holding target id ``tid``."""
    for g in range(topo.g_target.shape[0]):
        off = topo.g_target[g]
        if off >= 0 and off <= tid < off + topo.g_off[g + 1] - topo.g_off[g]:
            return g
    return -1


@njit(cache=True)
def _window_errors(t, dslot, consts, topo, groups, win):
    """Step 3 for output groups with windows of opportunity (superspike.task.windows, docs/TASKS.md
    Fig. 5), on the same delayed clock as the target: windows closing at t - delay give +1 if
    missed, then opening windows open; an own spike outside a window gives -1, inside 0."""
    G = topo.g_lif.shape[0]
    for g in range(G):
        if topo.g_target[g] >= 0:
            groups.err[g][:] = f32(0.0)
    if t < consts.delay:
        return
    ws = win.state
    s = (t - consts.delay) % (win.open_ptr.shape[0] - 1)
    for k in range(win.close_ptr[s], win.close_ptr[s + 1]):
        tid = win.close_ids[k]
        if ws[tid] == 1:
            g = _output_group(topo, tid)
            groups.err[g][tid - topo.g_target[g]] += f32(1.0)
        ws[tid] = 0
    for k in range(win.open_ptr[s], win.open_ptr[s + 1]):
        ws[win.open_ids[k]] = 1
    for g in range(G):
        off = topo.g_target[g]
        if off < 0:
            continue
        own, err = groups.hist[g], groups.err[g]
        for i in range(err.shape[0]):
            if own[dslot, i] > 0:
                if ws[off + i] == 0:
                    err[i] -= f32(own[dslot, i])
                else:
                    ws[off + i] = 2


@njit(cache=True)
def _errors(t, consts, topo, task, groups, conns, fixed_fb, win):
    """Step 3: err of every LIF group, then pushed into its err_hist ring.

    Output groups: target - own, both emitted `delay` steps ago (or windows). Hidden groups: the
    errors of the groups they feed back from, fb_lag steps old (MODEL.md 4.5), summed in one float32
    accumulator per neuron over the feedback edges in order, src neurons ascending, through the
    current weights of the forward connection dst -> src (symmetric) or a fixed matrix [src, dst].
    A hidden group without feedback edges has err 0.
    """
    slot, dslot = t & consts.mask, (t - consts.delay) & consts.mask
    lslot = (t - consts.fb_lag) & consts.mask
    G = topo.g_lif.shape[0]
    if win.on:
        _window_errors(t, dslot, consts, topo, groups, win)
    for g in range(G):
        if topo.g_lif[g] == 0:
            continue
        err = groups.err[g]
        off = topo.g_target[g]
        if off >= 0:
            if not win.on:
                tg, own = task.target_hist, groups.hist[g]
                for i in range(err.shape[0]):
                    err[i] = f32(tg[dslot, off + i] - own[dslot, i])
            continue
        for i in range(err.shape[0]):
            acc = f32(0.0)
            for e in range(topo.e_src.shape[0]):
                if topo.e_dst[e] != g:
                    continue
                up = groups.err_hist[topo.e_src[e]]
                if topo.e_via[e] >= 0:  # symmetric: W_via^T, W_via [dst, src]
                    wv = conns.w[topo.e_via[e]]
                    for k in range(wv.shape[1]):
                        acc += wv[i, k] * up[lslot, k]
                else:  # random, uniform, direct: B^T, B [src, dst]
                    b = fixed_fb[topo.e_fix[e]]
                    for k in range(b.shape[0]):
                        acc += b[k, i] * up[lslot, k]
            err[i] = acc
    for g in range(G):
        if topo.g_lif[g]:
            err, errh = groups.err[g], groups.err_hist[g]
            for i in range(err.shape[0]):
                errh[slot, i] = err[i]


@njit(cache=True)
def _n_input(topo):
    """Neurons of all input groups (they come first in kernel order): post index = global - this."""
    k = 0
    while topo.g_lif[k] == 0:
        k += 1
    return topo.g_off[k]


@njit(cache=True)
def _plasticity(t, consts, neurons, topo, groups, conns):
    """Step 4. 4a per LIF group: read the sigma' pushed D steps ago, push sigma'(U) (U after
    this step's update); the per-post factors of 4d. Then per plastic connection: 4a for z~,
    4b coincidences (pres above the PSP cut-off), 4c the eligibility filter, 4d error x
    eligibility (- regulariser, MODEL.md 2.8) for posts with an error. The per-post values are
    indexed by post index (global index - nin)."""
    nin = _n_input(topo)
    n_post = topo.g_off[-1] - nin
    sig_d = np.empty(n_post, np.float32)
    active = np.empty(n_post, np.bool_)
    reg = np.zeros(n_post, np.float32)
    for g in range(topo.g_lif.shape[0]):
        li = topo.g_lif_index[g]
        if li < 0:
            continue
        p0 = topo.g_off[g] - nin
        thr = neurons.thr[li]
        sigl, u = groups.sig_line[g], groups.u[g]
        tref, het = groups.tr_err_flt[g], groups.het[g]
        pos = t % sigl.shape[0]
        for i in range(u.shape[0]):
            sig_d[p0 + i] = sigl[pos, i]
            sigl[pos, i] = f32(1.0) if consts.linear else surrogate(u[i], thr, consts.beta, consts.u_cut)
            active[p0 + i] = abs(tref[i]) >= consts.err_cut
            if topo.g_reg[g]:
                reg[p0 + i] = consts.rho * het[i] ** consts.reg_a

    for c in range(topo.c_pre.shape[0]):
        if topo.c_plastic[c] == 0:
            continue
        w, el, elf, els = conns.w[c], conns.el[c], conns.el_flt[c], conns.el_sum[c]
        trz, pspl = conns.tr_psp[c], conns.psp_line[c]
        tref = groups.tr_err_flt[topo.c_post[c]]
        npre, npost = w.shape[0], w.shape[1]
        p0 = topo.g_off[topo.c_post[c]] - nin
        sig_c, active_c, reg_c = sig_d[p0 : p0 + npost], active[p0 : p0 + npost], reg[p0 : p0 + npost]

        # 4a. z~ into the delay line (D of the post group); read the value pushed D steps ago
        pos = t % pspl.shape[0]
        psp_d = np.empty(npre, np.float32)
        for j in range(npre):
            psp_d[j] = pspl[pos, j]
            pspl[pos, j] = trz[j]

        # 4b. Hebbian coincidence into the eligibility trace, pres above the cut-off only
        for j in range(npre):
            if psp_d[j] > consts.psp_cut:
                for i in range(npost):
                    el[j, i] += psp_d[j] * sig_c[i]

        # 4c. double-exponential filter of the eligibility trace
        for j in range(npre):
            for i in range(npost):
                elf[j, i] = elf[j, i] + consts.k_decay * (el[j, i] - elf[j, i])
                el[j, i] = el[j, i] * consts.dec_rise

        # 4d. accumulate error x eligibility (- regulariser), posts with an error only
        for j in range(npre):
            for i in range(npost):
                if active_c[i]:
                    els[j, i] += elf[j, i] * tref[i] - w[j, i] * reg_c[i]


@njit(cache=True)
def _psp_traces(consts, topo, conns):
    """Step 6: z~ follows z, every plastic connection."""
    for c in range(topo.c_pre.shape[0]):
        if topo.c_plastic[c]:
            trz, trp = conns.tr_psp[c], conns.tr_pre[c]
            for j in range(trz.shape[0]):
                trz[j] = trz[j] + consts.k_decay * (trp[j] - trz[j])


@njit(cache=True)
def _simulate(t0, n_steps, consts, neurons, topo, task, groups, conns, fixed_fb, rec, win):
    """Steps t0 .. t0 + n_steps - 1 of the whole network with fixed weights (MODEL.md 1, 2.6)."""
    for t in range(t0, t0 + n_steps):
        slot = t & consts.mask
        dslot = (t - consts.delay) & consts.mask  # spikes emitted `delay` steps ago arrive now

        _replay(t, slot, topo, task, groups.hist)  # input and target on the loop grid (MODEL.md 3.5)
        _update_neurons(t, slot, neurons, topo, groups, rec)  # MODEL.md 1
        _deliver(dslot, topo, groups, conns)  # MODEL.md 1
        _traces(slot, dslot, consts, topo, groups, conns)  # 1. traces, before any of 2-6
        _error_average(consts, topo, groups)  # 2. squared-error average
        _errors(t, consts, topo, task, groups, conns, fixed_fb, win)  # 3. errors (MODEL.md 4.3)
        _plasticity(t, consts, neurons, topo, groups, conns)  # 4a-4d
        _psp_traces(consts, topo, conns)  # 6. z~ follows z
        # (5. the weight update is the optimiser's, between calls)


class ReferenceEngine(Engine):
    """Per-step, per-synapse simulation of MODEL.md 2.6 on a graph (compiled with numba, float32)."""

    name = "reference"
    supports_windows = True

    def __init__(self, network: Network, task: Task) -> None:
        super().__init__(network, task)
        self._fixed = typed_list(self.fixed_feedback, 2, np.float32)
        self._load(self.feed.first)

    def _load(self, seg: Segment) -> None:
        w = seg.windows if seg.windows is not None else WindowReplay.empty()
        self._win = (seg.windows is not None, w.open_ptr, w.open_ids, w.close_ptr, w.close_ids)

    def _advance(self, state: State, n_steps: int) -> StepResult:
        """Advance ``state`` by ``n_steps`` steps of one segment with fixed weights; return the spikes emitted."""
        spec = self.network.spec
        sizes = [spec.group(name).n for name in self.lif_order]
        cap = [n * (n_steps // (int(r) + 1) + 1) for n, r in zip(sizes, self.neurons.ref_steps, strict=True)]
        rec = Recording(
            typed_list([np.empty(k, np.int64) for k in cap], 1, np.int64),
            typed_list([np.empty(k, np.int64) for k in cap], 1, np.int64),
            np.zeros(len(cap), np.int64),
        )
        task = TaskArrays(self.input.ptr, self.input.ids, self.target.ptr, self.target.ids, state.target_hist)
        _simulate(
            state.clock,
            n_steps,
            self.consts,
            self.neurons,
            self.topo,
            task,
            group_arrays(state, self.group_order),
            conn_arrays(state),
            self._fixed,
            rec,
            Windows(*self._win, state.window_state),
        )
        state.clock += n_steps
        return StepResult(
            {
                name: (rec.steps[k][: rec.count[k]].copy(), rec.ids[k][: rec.count[k]].copy())
                for k, name in enumerate(self.lif_order)
            }
        )
