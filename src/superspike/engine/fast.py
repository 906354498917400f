"""The fast engine (docs/MODEL.md, section 5; SPEC 5): a per-neuron forward simulation, then the
rule per chunk in bulk.

Within one call the weights are fixed, so the forward dynamics do not depend on the rule. A
compiled kernel (:func:`~superspike.engine._fast_kernels.forward`) runs the neurons, traces,
errors and delay lines exactly as the reference engine does (SPEC 1, 2.1 steps 1-3, 4a, 6) and
records per-neuron time series over the chunk's steps k = 0..n-1:

- ``s_i(k)``: the delayed sigma'(U) of post i,
- ``e_i(k)``: tr_err_flt of post i where |tr_err_flt| >= the error cut-off, else 0 (step 4d),
- ``x_j(k)``: the delayed z~ of pre j with the PSP cut-off applied (step 4b),

and the spikes. The regulariser's ``sum_k rho h_i(k)^a`` over active steps (SPEC 2.3) needs
only e and the spikes, so it is formed afterwards, in the threads of the sums below
(:func:`~superspike.engine._fast_kernels.regulariser`), off the serial path.

**The rule over a chunk.** Per synapse, with a(k) = x_j(k) s_i(k), steps 4b-4d read (el, el_flt
are the values stored after a step)::

    el'(k) = el(k-1) + a(k);   el_flt(k) = q el_flt(k-1) + kk el'(k);   el(k) = d el'(k)
    el_sum += el_flt(k) e_i(k) - w r_i(k)

with kk = dt/tau_decay, q = 1 - kk, d = exp(-dt/tau_rise) (the reference's float32 constants).
A unit coincidence at step s reaches el_flt at step m >= s with weight
``G(m - s)``, ``G(l) = kk sum_{r=0}^{l} q^(l-r) d^r = c (q^(l+1) - d^(l+1))``, c = kk/(q - d).
Over a chunk of n steps, with el0, f0 the values carried in::

    el_sum += sum_k x(k) s(k) Et(k) + f0 alpha + el0 beta - w sum_k r(k)
    Et(k)   = sum_{m>=k} G(m-k) e(m)             (errors filtered backwards in time)
    alpha   = sum_m e(m) q^(m+1),   beta = Et(0)
    el      = d^n el0 + sum_k x(k) s(k) d^(n-k)
    el_flt  = q^n f0 + G(n-1) el0 + sum_k x(k) s(k) G(n-1-k)

Each sum over k is ``X^T Y`` for a (steps x pre) array X and a (steps x post) array Y. Two ways
to form it are implemented (``method``):

``"events"`` (default). x_j is a linear filter of pre j's spikes: from an event at step r with
trace state (z~ = a, z = b) it evolves freely as ``x(k) = a q^(k-r) + b d G(k-r-1)``. So
``sum_k x_j(k) y(k)`` is a sum over pre j's events of ``a Rq(r) + b d c (Rq(r) - Rd(r))`` with
the discounted sums ``Rq(r) = sum_{k>=r} q^(k-r) y(k)``, ``Rd`` likewise, which one backward
sweep over the post columns computes (:func:`~superspike.engine._fast_kernels.sweep`). Events
are the trace state at the chunk start, every spike arrival, and, exactly where the reference
skips a pre (z~ at or below the PSP cut-off), a negative event removing the free decay over
that stretch and a positive one restoring it after. The first D rows come from the delay line
and are a small dense product. Cost per chunk: O(steps x neurons + events x posts + synapses)
instead of O(steps x synapses), and nothing is truncated. x is the exact linear response to
the spikes where the reference accumulates z and z~ in float32 steps: the two differ by float32
rounding (about 1e-7 relative). The sums are float64.

``"gemm"``. X is recorded densely and the sums are float32 BLAS products (sgemm), as SPEC 5
sketches. The el and el_flt products run over the chunk's last ``wd``/``wg`` steps only (where
the kernels exceed 1e-10 of their peak); a bound on the rest is checked and the product redone
over the whole chunk if it could matter (a whole layer went quiet). About 3x slower on the
Oxford demo and O(steps x synapses); kept as a cross-check and to measure the products.

**Graphs.** Every LIF group is a block of post columns with its own neuron constants. Every
presynaptic group has a presynaptic segment (traces, x, events) per delay line length D of the
post groups its plastic connections enter, shared by those connections (MODEL.md 5.6). The
column recurrences of a post group are shared by all plastic connections into it: the sweep
applies each event to the own sums of every connection that reads its segment (a block of
columns never spans two groups). Fixed connections only deliver spikes.

Errors of hidden groups are per-neuron and event-driven (the output error is nonzero only at
target and own spike events), with the reference's float32 sums (SPEC 2.2; per feedback edge, in
the order of ``spec.feedback_edges``). The forward kernel flushes denormals to zero (see
:mod:`~superspike.engine._fast_kernels`): no spike and no cut-off decision changes, and states
differ from the reference's by less than 1.2e-38 there.

A run in which numba compiles the kernels and one that loads them from its cache can differ by
float64 rounding in el, el_flt and el_sum (observed: at most 1e-20 absolute, on entries near
zero, Oxford demo; the engine before graphs does the same), presumably where LLVM fuses
multiply-adds in the sweep's helpers (``fastmath={"contract"}``) after inlining them or not.
Runs with the same cache state are bit-identical.

The forward kernel is serial (one step depends on the last); the sweep, the regulariser and the
per-synapse updates run in a small thread pool (the kernels release the GIL), each thread on its
own block of post columns from sweep to synapses ("events"; one hand-over per chunk). With two or
more threads, the chunks of one advance are pipelined ("events"): the forward kernel does not
read the rule's state, so while it runs chunk c + 1, chunk c's plasticity runs in a worker
thread (:meth:`FastEngine._advance_pipelined`; same results bit for bit).
"""

from __future__ import annotations

import math
import operator
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

from superspike.engine import _fast_kernels as fk
from superspike.engine.base import Engine, StepResult
from superspike.engine.state import State, ring_size
from superspike.network import Network
from superspike.task.feed import Segment
from superspike.task.raster import Task
from superspike.task.windows import WindowReplay

#: relative size below which the el / el_flt kernels are cut off in the "gemm" method
KERNEL_TOL = 1e-10
#: longest chunk simulated at once, per method; longer calls are split (memory does not grow
#: with n_steps). "events": the per-neuron series of a chunk (S and E, 8 bytes per post neuron
#: and step) are written by the forward kernel and read back by the sweep; 2500 steps keep them
#: at 9 MB on the Oxford network, small enough to stay in the shared cache, which made both
#: kernels faster than with whole 5000-step update intervals (18 MB; about 8% of the wall time,
#: benchmarks/bench_fast.py), while the per-chunk synapse pass stays a few percent.
MAX_BLOCK = {"events": 2500, "gemm": 5000}
METHODS = ("events", "gemm")
#: fields of :class:`~superspike.engine._fast_kernels.FwdState` packed from the LIF groups'
#: ``GroupState`` (one value per neuron, concatenated in kernel order: the post space), and from
#: the plastic connections' ``ConnectionState`` (per pre neuron: the pre space). A new per-neuron
#: state variable is a field there, its name here and its arithmetic in the forward kernel.
POST_FIELDS = ("u", "i_syn", "ref", "err", "tr_err", "tr_err_flt", "avg", "het")
PRE_FIELDS = ("tr_pre", "tr_psp")
#: fields of the plastic connections' synapses, [pre, post] each (flatten_state keeps them flat)
SYN_FIELDS = ("w", "el", "el_flt", "el_sum", "grad2")
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:
    """In a forked child: the parent's pool threads do not exist here, so its pools would take
    work and never do it; the child makes its own."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(threads: int) -> ThreadPoolExecutor:
    """A thread pool shared by all fast engines (the kernels release the GIL)."""
    with _POOLS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="superspike-fast")
        return _POOLS[threads]


def forward_kernels(k_decay: float, dec_rise: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """G(m) and d^(m+1) for m = 0..n-1 (float64): el_flt's and el's response to a unit coincidence.

    ``k_decay`` and ``dec_rise`` are the float32 constants of the reference (kk and d).
    """
    kk, d = float(k_decay), float(dec_rise)
    q = 1.0 - kk
    m = np.arange(n, dtype=np.float64)
    G = kk * (q ** (m + 1) - d ** (m + 1)) / (q - d)
    return G, d ** (m + 1)


def kernel_windows(k_decay: float, dec_rise: float, tol: float = KERNEL_TOL) -> tuple[int, int]:
    """Number of final steps (for el, for el_flt) whose weight in the end state exceeds ``tol``
    times the kernel's peak (the "gemm" method's product windows)."""
    n = 1 << 20
    G, Dk = forward_kernels(k_decay, dec_rise, n)
    below = np.flatnonzero(Dk < tol * Dk.max())
    wd = int(below[0]) if below.size else n
    peak = int(np.argmax(G))
    below = np.flatnonzero(G[peak:] < tol * G.max())
    wg = peak + int(below[0]) if below.size else n
    return wd, wg


def default_threads() -> int:
    """Threads of the sweep and synapse passes: the CPUs this process may use, at most 4, and at
    most ``NUMBA_NUM_THREADS`` if set (``superspike sweep`` sets it to each worker's fair share)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    cap = os.environ.get("NUMBA_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        cpus = min(cpus, int(cap))
    return max(1, min(4, cpus))


def sweep_blocks(
    ranges: list[tuple[int, int]], threads: int, slack: float = 1.2, min_width: int = 32, bounds=()
) -> list[np.ndarray]:
    """Column blocks of the "events" sweep, one array of (first, end, lane) post columns per thread.

    ``ranges`` are the *lanes* of the sweep (one (first, end) each; lane = its index): the post
    columns of neighbouring LIF groups that need the sweep and share a delay line length, one
    group each, or an ensemble's copies of a layer (:mod:`superspike.network.ensemble`), which are
    swept together as one wide block. A block never spans two lanes. Lanes wider than ``slack``
    times a thread's fair share are halved (down to ``min_width`` columns; at the group boundary
    of ``bounds``, the groups' first columns, nearest the middle if there is one), then the pieces
    go to the least loaded thread, widest first. Oxford (256 + 200 columns, two threads): one
    group per thread, which measured 0.72 ms per 2500-step chunk against 0.93 ms for two equal
    halves (one of which spanned both groups). A column's results do not depend on its block.
    """
    pieces = [(int(a), int(b), lane) for lane, (a, b) in enumerate(ranges) if b > a]
    cuts = np.unique(np.asarray(bounds, np.int64))
    fair = sum(b - a for a, b, _ in pieces) / max(threads, 1)
    while pieces:
        a, b, lane = max(pieces, key=lambda p: p[1] - p[0])
        if b - a <= slack * fair or b - a < 2 * min_width:
            break
        pieces.remove((a, b, lane))
        m = (a + b) // 2
        inner = cuts[(cuts > a) & (cuts < b)]
        if inner.size:
            m = int(inner[np.argmin(np.abs(inner - m))])
        pieces += [(a, m, lane), (m, b, lane)]
    loads = [0] * threads
    per_thread: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    for a, b, lane in sorted(pieces, key=lambda p: (p[0] - p[1], p[0])):
        t = loads.index(min(loads))
        per_thread[t].append((a, b, lane))
        loads[t] += b - a
    return [np.array(sorted(blocks), np.int64).reshape(-1, 3) for blocks in per_thread if blocks]


def side_by_side(arrays: list[np.ndarray], rows: int | None = None) -> np.ndarray | None:
    """One view of the arrays side by side (along the last axis) if they are neighbouring blocks
    of one C-contiguous array, in order and with ``rows`` rows each if given; else None."""
    if not arrays or any(a is None for a in arrays):
        return None
    base = arrays[0].base
    if base is None or not base.flags.c_contiguous or base.ndim != arrays[0].ndim or base.size == 0:
        return None
    if rows is not None and (base.ndim != 2 or base.shape[0] != rows):
        return None
    item, lead = base.itemsize, base.shape[:-1]
    c0, r = divmod(arrays[0].ctypes.data - base.ctypes.data, item)
    if r or c0 < 0:
        return None
    at = c0
    for a in arrays:
        if (
            a.base is not base or a.dtype != base.dtype or a.shape[:-1] != lead or a.strides != base.strides
            or a.ctypes.data != base.ctypes.data + at * item
        ):  # fmt: skip
            return None
        at += a.shape[-1]
    return base[..., c0:at] if at <= base.shape[-1] else None


def flatten_state(state: State, engine: FastEngine) -> None:
    """Make each field of ``state``'s groups and plastic connections one array in ``engine``'s
    kernel order, each group's (connection's) field a block of it (values unchanged): the
    engine then packs and unpacks a field at once (:meth:`FastEngine._pack`), where it otherwise
    copies group by group (for an ensemble of 100 members, several hundred small copies per
    chunk). Fields whose arrays differ in rows are left as they are."""

    def flatten(objs: list, field: str) -> None:
        arrays = [getattr(o, field) for o in objs]
        if not arrays or any(a is None for a in arrays) or len({a.shape[:-1] for a in arrays}) != 1:
            return
        base = np.concatenate(arrays, axis=-1)
        at = 0
        for o, a in zip(objs, arrays, strict=True):
            setattr(o, field, base[..., at : at + a.shape[-1]])
            at += a.shape[-1]

    flatten([state.groups[n] for n in engine.group_order], "hist")
    lif = [state.groups[n] for n in engine.lif_order]
    for f in (*POST_FIELDS, "err_hist", "sig_line"):
        flatten(lif, f)
    for names in (engine.pre_owners, engine.pre_copies):  # the pre space, then the shared segments' copies
        for f in (*PRE_FIELDS, "psp_line"):
            flatten([state.conns[n] for n in names], f)
    conns = [state.conns[n] for n in engine.plastic_names]
    # the synapses: one flat array per field, connection by connection (the sweep's order)
    for f in SYN_FIELDS:
        arrays = [getattr(cs, f) for cs in conns]
        if not arrays or any(a is None for a in arrays) or len({a.dtype for a in arrays}) != 1:
            continue
        base = np.concatenate([a.ravel() for a in arrays])
        at = 0
        for cs, a in zip(conns, arrays, strict=True):
            setattr(cs, f, base[at : at + a.size].reshape(a.shape))
            at += a.size


class FastEngine(Engine):
    """Compiled per-neuron forward kernel, then the chunk's plasticity in bulk (SPEC 5).

    Interchangeable with :class:`~superspike.engine.reference.ReferenceEngine`: it advances the
    same :class:`State`, and every field equals the reference's at return (spikes, neuron and
    trace states exactly; el, el_flt and el_sum to float32 rounding). ``method`` picks how the
    sums over time are formed ("events" or "gemm", see the module docstring). The forward
    kernel is serial; the per-chunk sweeps and synapse updates run in ``threads`` threads
    (default: :func:`default_threads`), overlapping the next chunk's forward kernel if
    ``pipeline`` (default: with "events" and two or more threads).
    """

    name = "fast"
    supports_windows = True

    def __init__(
        self,
        network: Network,
        task: Task,
        method: str = "events",
        max_block: int | None = None,
        tol: float = KERNEL_TOL,
        threads: int | None = None,
        pipeline: bool | None = None,
    ) -> None:
        super().__init__(network, task)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.method = method
        spec = network.spec
        topo = self.topo
        g_off = topo.g_off
        self.nin = nin = spec.nin
        self.N = int(g_off[-1])
        self.NQ = self.N - nin  # post space: the LIF neurons
        self.R = ring_size(spec.neuron.delay_steps, spec.feedback_lag())
        gidx = {name: g for g, name in enumerate(self.group_order)}
        #: per connection (creation order): name, kernel index of pre and post group, plastic
        self.conn_names = [c.name for c in spec.connections]
        self.plastic_names = [c.name for c in spec.connections if c.plastic]
        C = len(self.conn_names)
        gsize = np.diff(g_off)
        npre = [int(gsize[gidx[c.pre]]) for c in spec.connections]
        npost = [int(gsize[gidx[c.post]]) for c in spec.connections]
        plastic = [c.plastic for c in spec.connections]
        cum = np.cumsum
        woff = np.concatenate([[0], cum([a * b for a, b in zip(npre, npost, strict=True)])]).astype(np.int64)
        # the pre space: one segment per presynaptic group and delay line length D (its post
        # group's). Plastic connections from the same group read through delay lines of the same
        # length see the same traces z, z~ and the same x (MODEL.md 5.4), so they share a segment:
        # its traces and events are computed once (an input group feeding several groups, an
        # ensemble's members with the same input)
        prange = np.zeros((C, 2), np.int64)  # per connection: first and end pre index
        seg_of: dict[tuple[int, int], int] = {}
        #: per segment (pre-space order) the plastic connections that read it, the first owning it
        self._seg_conns: list[list[int]] = []
        at = 0
        for c in range(C):
            if not plastic[c]:
                continue
            key = (int(topo.c_pre[c]), int(topo.g_dlen[topo.c_post[c]]))
            if key in seg_of:
                first = self._seg_conns[seg_of[key]]
                prange[c] = prange[first[0]]
                first.append(c)
            else:
                seg_of[key] = len(self._seg_conns)
                self._seg_conns.append([c])
                prange[c] = at, at + npre[c]
                at += npre[c]
        self.prange = prange
        self.NP = at
        #: plastic connections owning a segment (pre-space order), and the others (creation order)
        #: with the pre indices of their segments: their trace fields are copies of the owner's
        self.pre_owners = [self.conn_names[conns[0]] for conns in self._seg_conns]
        copies = sorted(c for conns in self._seg_conns for c in conns[1:])
        self.pre_copies = [self.conn_names[c] for c in copies]
        self._copy_idx = np.concatenate([np.arange(*prange[c]) for c in copies] or [np.zeros(0, np.int64)])
        self._owner_ranges = [(int(prange[conns[0], 0]), int(prange[conns[0], 1])) for conns in self._seg_conns]
        self._copy_ranges = [(int(prange[c, 0]), int(prange[c, 1])) for c in copies]
        sizes = [a * b if p else 0 for a, b, p in zip(npre, npost, plastic, strict=True)]
        self.moff = moff = np.concatenate([[0], cum(sizes)]).astype(np.int64)
        edges = spec.feedback_edges
        esz = [int(gsize[gidx[e.src]] * gsize[gidx[e.dst]]) for e in edges]
        foff = np.concatenate([[0], cum(esz)]).astype(np.int64)
        self.FF = np.zeros(max(1, int(foff[-1])), np.float32)
        self._WF = np.zeros(max(1, int(woff[-1])), np.float32)
        #: symmetric feedback edges: (offset in FF, connection whose transposed weights it holds)
        self._sym = [
            (int(foff[k]), self.conn_names[int(topo.e_via[k])]) for k in range(len(edges)) if topo.e_via[k] >= 0
        ]
        for k in range(len(edges)):
            if topo.e_fix[k] >= 0:  # fixed matrices, packed once
                b = self.fixed_feedback[int(topo.e_fix[k])]
                self.FF[foff[k] : foff[k] + b.size] = b.ravel()
        # The forward kernel passes over *runs*: neighbouring pre-space segments whose pre neurons
        # are one stretch of both the pre space and the global index, read through delay lines
        # of one length (an ensemble's copies of a layer, network/ensemble.py), and neighbouring
        # LIF groups with equal constants and delay lines. Per neuron the arithmetic is the
        # same; only the loops are longer. Each run's flags of the pre neurons with something to
        # record in a step are padded to whole 8-byte words (the kernel scans eight at a time).
        runs: list[list[int]] = []  # p0, p1, global index of p0, D, flag offset
        for conns in self._seg_conns:
            c = conns[0]
            a, dl = int(g_off[topo.c_pre[c]]), int(topo.g_dlen[topo.c_post[c]])
            p0, p1 = int(prange[c, 0]), int(prange[c, 1])
            last = runs[-1] if runs else None
            if last is not None and last[1] == p0 and last[2] + (p0 - last[0]) == a and last[3] == dl:
                last[1] = p1
            else:
                runs.append([p0, p1, a, dl, 0])
        fo = 0
        for r in runs:
            r[4] = fo
            fo += -(-(r[1] - r[0]) // 8) * 8
        pre_runs = np.array(runs, np.int64).reshape(-1, 5)
        nc = self.neurons
        lruns: list[list[int]] = []  # post columns q0, q1, LIF index, D
        keys: list[tuple] = []
        for g in range(len(g_off) - 1):
            if not topo.g_lif[g]:
                continue
            li = int(topo.g_lif_index[g])
            key = (nc.k_mem[li], nc.u_rest[li], nc.thr[li], nc.dec_syn[li], nc.ref_steps[li], int(topo.g_dlen[g]))
            q0, q1 = int(g_off[g] - nin), int(g_off[g + 1] - nin)
            if lruns and lruns[-1][1] == q0 and keys[-1] == key:
                lruns[-1][1] = q1
            else:
                lruns.append([q0, q1, li, int(topo.g_dlen[g])])
                keys.append(key)
        lif_runs = np.array(lruns, np.int64).reshape(-1, 4)
        tg_post = np.zeros(spec.nout, np.int64)
        for g in range(len(self.group_order)):
            if topo.g_target[g] >= 0:
                a = int(topo.g_target[g])
                tg_post[a : a + gsize[g]] = np.arange(g_off[g], g_off[g + 1]) - nin
        self.layout = fk.Layout(
            nin, self.N, self.NQ, self.NP, spec.nout, woff, foff[:-1].copy(), prange, moff, tg_post, pre_runs,
            lif_runs,
        )  # fmt: skip
        #: post columns (first, end) of each LIF group by kernel index, and the groups' connections
        self.group_cols = {g: (int(g_off[g] - nin), int(g_off[g + 1] - nin)) for g in range(len(g_off) - 1)}
        self.into = {g: [c for c in range(C) if plastic[c] and int(topo.c_post[c]) == g] for g in self.group_cols}
        lif = [g for g in self.group_cols if topo.g_lif[g]]
        #: post columns (first, end) of each LIF group in kernel order
        self._lif_col_ranges = [self.group_cols[g] for g in lif]
        #: post columns of the regularised groups, neighbours merged (the regulariser's arithmetic
        #: is per column, with the graph's constants: an ensemble's copies of a layer in one call)
        self._reg_cols: list[tuple[int, int]] = []
        for g in lif:
            if topo.g_reg[g]:
                a, b = self.group_cols[g]
                if self._reg_cols and self._reg_cols[-1][1] == a:
                    self._reg_cols[-1] = (self._reg_cols[-1][0], b)
                else:
                    self._reg_cols.append((a, b))
        swept = [g for g in lif if self.into[g] or topo.g_reg[g]]
        # lanes of the sweep: neighbouring swept groups with one delay line length (sweep_blocks)
        lanes: list[list[int]] = []  # first, end column, D
        self._group_lane = {}
        for g in swept:
            a, b = self.group_cols[g]
            if lanes and lanes[-1][1] == a and lanes[-1][2] == int(topo.g_dlen[g]):
                lanes[-1][1] = b
            else:
                lanes.append([a, b, int(topo.g_dlen[g])])
            self._group_lane[g] = len(lanes) - 1
        self._lanes = [(a, b) for a, b, _ in lanes]
        # the lanes each pre index's events go to (those of the post groups its connections enter):
        # the lane of each pre index if there is one per segment (the usual case), else per lane
        # a mask of the pre indices whose events it takes (a segment's events are then repeated)
        seg_lanes = [sorted({self._group_lane[int(topo.c_post[c])] for c in conns}) for conns in self._seg_conns]
        self._pre_lane = np.zeros(self.NP, np.int64)
        self._lane_pre: np.ndarray | None = None
        if any(len(ls) > 1 for ls in seg_lanes):
            self._lane_pre = np.zeros((len(lanes), self.NP), bool)
        for conns, ls in zip(self._seg_conns, seg_lanes, strict=True):
            p0, p1 = prange[conns[0]]
            self._pre_lane[p0:p1] = ls[0]
            if self._lane_pre is not None:
                self._lane_pre[ls, p0:p1] = True
        self.dmax = int(max(topo.g_dlen[g] for g in lif))
        self._load(self.feed.first)
        self.max_block = int(MAX_BLOCK[method] if max_block is None else max_block)
        rc = self.consts
        self.k_decay, self.dec_rise = float(rc.k_decay), float(rc.dec_rise)
        self.q = 1.0 - self.k_decay
        # the sweep's sum P (or Q, if d > q) grows by q/d (d/q) per step: keep it finite. d > q can
        # happen for a rise time close to the decay time (q = 1 - dt/tau_decay < exp(-dt/tau_decay))
        growth = abs(math.log(self.q / self.dec_rise))
        if method == "events" and growth > 0:
            self.max_block = max(1, min(self.max_block, int(fk.P_GROWTH_LIMIT / growth)))
        q, d, kk = self.q, self.dec_rise, self.k_decay
        cq = kk / (q - d)
        self._sk = fk.SweepConsts(q, d, kk, cq, d * cq, cq * q, cq * d, q / d, d / q)
        # "gemm" only: windows of the end-of-chunk products
        self.wd, self.wg = kernel_windows(self.k_decay, self.dec_rise, tol) if method == "gemm" else (1, 1)
        nk = max(self.max_block, self.wg, self.wd) + 2
        self._G, self._Dk = forward_kernels(self.k_decay, self.dec_rise, nk)
        m = np.arange(nk, dtype=np.float64)
        self._QP = self.q**m  # q^m
        self._DP = self.dec_rise**m  # d^m
        # "gemm": float32 kernels of the end-of-chunk products, reversed (row n - w + r gets
        # d^(w - r) for el and G(w - 1 - r) for el_flt)
        self._DKr = self._Dk[: self.wd][::-1].astype(np.float32)
        self._GKr = self._G[: self.wg][::-1].astype(np.float32)
        #: "gemm": how often a full-length end product was needed (the window test failed)
        self.full_end_products = 0
        self._buffers_n = 0
        self._scratch_bufs: dict[str, np.ndarray] = {}
        self._spans: dict[tuple[str, str], tuple[list, np.ndarray | None]] = {}
        self._unpacking: dict | None = None
        self._packed: State | None = None
        P = self.NP
        self._tracker = fk.Tracker(
            np.zeros(P, np.int8), np.zeros(P, np.int64), np.zeros(P), np.zeros(P),
            np.zeros(P, np.int64), np.zeros(P), np.zeros(P),
            np.zeros(fo + 8, np.int8), np.zeros(max((r[1] - r[0] for r in runs), default=0) + 8, np.int64),
            self._QP, self._DP, self._G,
        )  # fmt: skip
        self.threads = max(1, default_threads() if threads is None else int(threads))
        # column ranges of the "gemm" error filter: one per thread
        cols = np.linspace(0, self.NQ, self.threads + 1).round().astype(int)
        self._col_ranges = [(int(a), int(b)) for a, b in pairwise(cols) if b > a]
        self._blocks = sweep_blocks(self._lanes, self.threads, bounds=[self.group_cols[g][0] for g in swept])
        #: run the plasticity of a chunk in a worker thread while the forward kernel runs the next
        #: chunk of the same advance ("events", two or more threads; see _advance_pipelined)
        self.pipeline = (method == "events" and self.threads > 1) if pipeline is None else bool(pipeline)
        if self.pipeline and (method != "events" or self.threads < 2):
            raise ValueError("pipeline needs method 'events' and at least two threads")
        #: wall time (s) spent in the parts of an advance, for benchmarks: the forward kernel, the
        #: backward sweep (all the sums of "events"; the error filter of "gemm"), the BLAS products
        #: ("gemm"), the per-synapse updates ("events": each thread's follows its sweep; the
        #: calling thread's is counted here, the rest of that step under "sweep"), and the rest
        #: (packing the state, Python). Pipelined, plasticity that overlaps the forward kernel is
        #: not counted: "sweep" holds the waits for the worker and the last chunk's sweep
        self.timing = {"forward": 0.0, "sweep": 0.0, "products": 0.0, "synapses": 0.0, "other": 0.0}
        #: floating-point operations of the "gemm" products
        self.flops = 0.0

    def _run(self, fn, jobs: list[tuple]) -> None:
        """Run ``fn(*args)`` for every args tuple: the first here, the others in the thread pool
        (``threads - 1`` workers; running one job on the calling thread saves a wake-up). No
        jobs: nothing to do (a network without plastic connections or regulariser)."""
        if len(jobs) <= 1 or self.threads == 1:
            for args in jobs:
                fn(*args)
            return
        pool = _pool(self.threads - 1)
        futures = [pool.submit(fn, *args) for args in jobs[1:]]
        try:
            fn(*jobs[0])
        finally:
            for f in futures:
                f.result()

    # -- buffers ----------------------------------------------------------------------------
    def _scratch(self, name: str, size: int, dtype: type, zero: bool = False) -> np.ndarray:
        """A 1-D work array of at least ``size`` elements, kept between chunks (grown on demand).

        Fresh large arrays cost more than the arithmetic on them here: each new page is mapped
        on first touch, and unmapping it interrupts the other threads' CPUs to flush their TLBs
        (about 1000 page faults and 6 ms per Oxford interval before these buffers were kept).
        """
        buf = self._scratch_bufs.get(name)
        if buf is None or buf.shape[0] < size or buf.dtype != dtype:
            buf = np.zeros(max(size, 1), dtype)
            self._scratch_bufs[name] = buf
        elif zero:
            buf[:size] = 0
        return buf[:size]

    def _ensure_buffers(self, n: int) -> None:
        if n <= self._buffers_n:
            return
        f32 = np.float32
        C = len(self.conn_names)
        self.S = np.empty((n, self.NQ), f32)
        self.E = np.empty((n, self.NQ), f32)
        #: the pipelined schedule's second set of S, E (one chunk's are read by the sweep while
        #: the forward kernel writes the next chunk's)
        self._SE2 = (np.empty((n, self.NQ), f32), np.empty((n, self.NQ), f32)) if self.pipeline else None
        if self.method == "gemm":
            self.X = np.empty((n, self.NP), f32)
            self.YD = np.empty((min(n, self.wd), self.NQ), f32)
            self.YG = np.empty((min(n, self.wg), self.NQ), f32)
            self.XMAX = np.zeros((n, max(C, 1)), np.int32)
            self.SMAX = np.zeros((n, max(C, 1)), np.int32)
        else:
            self.X = np.zeros((1, 1), f32)
            self.XMAX = self.SMAX = np.zeros((1, 1), np.int32)
        self._buffers_n = n

    def _load(self, seg: Segment) -> None:
        """The segment's input, target and windows as the forward kernel takes them."""
        win = seg.windows if seg.windows is not None else WindowReplay.empty()
        self._inputs = fk.Inputs(
            seg.input.ptr, seg.input.ids, seg.target.ptr, seg.target.ids, seg.windows is not None,
            win.open_ptr, win.open_ids, win.close_ptr, win.close_ids,
        )  # fmt: skip
        self._in_cum = self._arrivals(seg)

    def _arrivals(self, seg: Segment) -> list[np.ndarray]:
        """Input arrivals per input group and loop step of ``seg``, cumulative (they bound the
        events of a chunk)."""
        g_off, out = self.topo.g_off, []
        step_of = seg.input.step_of
        for g in range(len(self.group_order)):
            if not self.topo.g_lif[g]:
                m = (seg.input.ids >= g_off[g]) & (seg.input.ids < g_off[g + 1])
                counts = np.bincount(step_of[m], minlength=seg.input.period)
                out.append(np.concatenate([[0], np.cumsum(counts)]))
        return out

    def _advance(self, state: State, n_steps: int) -> StepResult:
        """Advance ``state`` by ``n_steps`` steps of one segment with fixed weights; return the spikes emitted."""
        # chunks of at most max_block steps, of equal length (an update interval of 5001 steps
        # becomes 2501 + 2500, not 2500 + 2500 + 1)
        k = -(-n_steps // self.max_block)
        self._pack_weights(state)
        sizes = [n_steps // k + (1 if c < n_steps % k else 0) for c in range(k)]
        if self.pipeline and k > 1:
            parts = self._advance_pipelined(state, sizes)
        else:
            parts = self._advance_serial(state, sizes)
        if len(parts) == 1:
            t, i = parts[0]
        else:
            t, i = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        # each group's spikes in time order: one stable sort by group, then a slice per group
        g_off = self.topo.g_off
        gid = np.searchsorted(g_off, i, side="right") - 1
        order = np.argsort(gid, kind="stable")
        t, i = t[order], i[order]
        at = np.searchsorted(gid[order], np.arange(len(g_off)))
        out = {}
        for g, name in enumerate(self.group_order):
            if self.topo.g_lif[g]:
                a, b = at[g], at[g + 1]
                out[name] = (t[a:b], i[a:b] - g_off[g])
        return StepResult(out)

    def _pack_weights(self, state: State) -> None:
        """The weights, fixed during an advance, in the flat layout of the forward kernel (``_WF``,
        connection c at ``woff[c]``), and for symmetric feedback the transposed weights of the
        connections that carry it (``FF``, SPEC 2.2), into buffers kept between calls: once per
        advance, not once per chunk."""
        woff = self.layout.woff
        for c, name in enumerate(self.conn_names):
            w = state.conns[name].w
            self._WF[woff[c] : woff[c + 1]].reshape(w.shape)[...] = w
        for off, name in self._sym:
            w = state.conns[name].w
            self.FF[off : off + w.size].reshape(w.shape[::-1])[...] = w.T

    def _event_capacity(self, t0: int, n: int) -> int:
        """Upper bound on the events of a chunk: trace states, arrivals and cut-off stretches."""
        p = self.input.period
        lo, hi = t0 - self.network.spec.neuron.delay_steps, t0 + n
        k0, k1 = lo // p, (hi - 1) // p
        # a stream's previous segment for the steps before this one's (MODEL.md 3.6)
        before = self.feed.stream and lo < self.segment * p and lo >= 0
        prev = self._arrivals(self.feed.segment(self.segment - 1)) if before else self._in_cum
        per_group = []
        for cum, cum_prev in zip(self._in_cum, prev, strict=True):
            arrivals = 0
            for k in range(k0, k1 + 1):
                a, b = max(lo - k * p, 0), min(hi - k * p, p)
                if b > a:
                    c = cum_prev if before and k < self.segment else cum
                    arrivals += int(c[b] - c[a])
            per_group.append(arrivals)
        topo = self.topo
        ref = int(self.neurons.ref_steps.min())
        arrivals = 0
        for conns in self._seg_conns:  # events are emitted per pre-space segment
            g = int(topo.c_pre[conns[0]])
            if topo.g_lif[g]:
                arrivals += int(topo.g_off[g + 1] - topo.g_off[g]) * (n // (ref + 1) + 2)
            else:
                arrivals += per_group[g]  # input groups come first in kernel order
        # the state at the start, arrivals, and per stretch below the cut-off one event at each
        # end; a stretch ends only after an arrival (or once after the start)
        return 4 * self.NP + 3 * arrivals + 16

    # -- the state in the flat layout --------------------------------------------------------
    def _pack(self, state: State) -> fk.FwdState:
        """The state as the forward kernel takes it (copies, but the target ring and window
        state, which the kernel advances in place). A field whose arrays are neighbouring
        blocks of one array in kernel order (an ensemble's state, :func:`flatten_state`) is
        copied at once."""
        g_off, R = self.topo.g_off, self.R
        f32 = np.float32
        groups = [state.groups[name] for name in self.group_order]
        lif = [state.groups[name] for name in self.lif_order]
        owners = [state.conns[name] for name in self.pre_owners]
        span = self._span("hist", groups, "hist", R)
        if span is not None:
            HIST = span.copy()
        else:
            HIST = np.empty((R, self.N), np.int8)
            for g, gs in enumerate(groups):
                HIST[:, g_off[g] : g_off[g + 1]] = gs.hist
        post = {}
        for f in POST_FIELDS:
            span = self._span("post", lif, f)
            post[f] = span.copy() if span is not None else np.concatenate([getattr(gs, f) for gs in lif])
        SIGL = self._pack_line("post", lif, "sig_line", self._lif_col_ranges, self.NQ)
        span = self._span("post", lif, "err_hist", R)
        ERRH = span.copy() if span is not None else np.concatenate([gs.err_hist for gs in lif], axis=1)
        pre = {}
        for f in PRE_FIELDS:
            span = self._span("pre", owners, f)
            if span is not None:
                pre[f] = span.copy()
            else:
                pre[f] = np.concatenate([getattr(cs, f) for cs in owners]) if owners else np.zeros(0, f32)
        PSPL = self._pack_line("pre", owners, "psp_line", self._owner_ranges, self.NP)
        if self.pre_copies:
            self._check_copies(state, {**pre, "psp_line": PSPL})
        SPK = self._scratch("spk", R * self.N, np.int64).reshape(R, self.N)
        SPKN = np.zeros(R, np.int64)
        SPKO = np.zeros((R, len(g_off)), np.int64)
        st = fk.FwdState(
            hist=HIST, target_hist=state.target_hist, window_state=state.window_state,
            spk=SPK, spkn=SPKN, spko=SPKO, **post, err_hist=ERRH, sig_line=SIGL, **pre, psp_line=PSPL,
        )  # fmt: skip
        fk.rebuild_spike_lists(st, g_off)
        self._packed = state
        return st

    def _pack_line(self, space: str, objs: list, field: str, ranges: list[tuple[int, int]], width: int) -> np.ndarray:
        """A delay line field (``sig_line`` of the LIF groups, ``psp_line`` of the pre-space
        owners) as one (Dmax, width) array, each object's D rows in its column range."""
        span = self._span(space, objs, field, self.dmax)
        if span is not None:
            return span.copy()
        out = np.zeros((self.dmax, width), np.float32)
        for obj, (a, b) in zip(objs, ranges, strict=True):
            line = getattr(obj, field)
            out[: line.shape[0], a:b] = line
        return out

    def _unpack(self, st: fk.FwdState, state: State) -> None:
        """Copy the flat state back into ``state``'s groups and connections (a field of
        neighbouring blocks of one array at once, as in :meth:`_pack`; the spans it found, if it
        packed this state: its arrays cannot have changed, the kernels ran on the copies)."""
        if self._packed is state:
            self._unpacking = {key: span for key, (_, span) in self._spans.items()}
        try:
            self._unpack_fields(st, state)
        finally:
            self._unpacking = None
            self._packed = None

    def _unpack_fields(self, st: fk.FwdState, state: State) -> None:
        g_off, R = self.topo.g_off, self.R
        groups = [state.groups[name] for name in self.group_order]
        lif = [state.groups[name] for name in self.lif_order]
        owners = [state.conns[name] for name in self.pre_owners]
        span = self._span("hist", groups, "hist", R)
        if span is not None:
            span[...] = st.hist
        else:
            for g, gs in enumerate(groups):
                gs.hist[...] = st.hist[:, g_off[g] : g_off[g + 1]]
        # (space, its owners, their column ranges, fields with their rows: None for one per neuron,
        # the columns a span of them takes: None for all); connections sharing a pre-space
        # segment with an owner get copies of its state
        pre_fields = [(f, None) for f in PRE_FIELDS] + [("psp_line", self.dmax)]
        spaces = (
            ("post", lif, self._lif_col_ranges,
             [(f, None) for f in POST_FIELDS] + [("err_hist", R), ("sig_line", self.dmax)], None),
            ("pre", owners, self._owner_ranges, pre_fields, None),
            ("copies", [state.conns[name] for name in self.pre_copies], self._copy_ranges, pre_fields,
             self._copy_idx),
        )  # fmt: skip
        for space, objs, ranges, fields, take in spaces:
            if not objs:
                continue
            for f, rows in fields:
                span = self._span(space, objs, f, rows)
                if span is not None:
                    span[...] = getattr(st, f) if take is None else getattr(st, f)[..., take]
                    continue
                for obj, (a, b) in zip(objs, ranges, strict=True):
                    x = getattr(obj, f)
                    x[...] = getattr(st, f)[a:b] if rows is None else getattr(st, f)[: x.shape[0], a:b]

    def _check_copies(self, state: State, packed: dict[str, np.ndarray]) -> None:
        """Connections sharing a pre-space segment must hold the same trace state (the engines
        keep them equal; a state edited by hand may not)."""
        copies = [state.conns[name] for name in self.pre_copies]
        for f, x in packed.items():
            span = self._span("copies", copies, f, self.dmax if f == "psp_line" else None)
            if span is not None and np.array_equal(span, x[..., self._copy_idx]):
                continue
            for name, cs, (a, b) in zip(self.pre_copies, copies, self._copy_ranges, strict=True):
                y = getattr(cs, f)
                if not np.array_equal(y, x[a:b] if f != "psp_line" else x[: y.shape[0], a:b]):
                    raise ValueError(
                        f"connection {name!r}: its {f} differs from that of the other connections from its "
                        "presynaptic group (they share one presynaptic trace state)"
                    )

    def _flat_synapses(self, state: State) -> fk.Synapses | None:
        """The plastic connections' el, el_flt, el_sum and w as flat arrays, connection c's at
        ``moff[c]`` (as :func:`flatten_state` leaves them), or None if they are not laid out so."""
        conns = [state.conns[name] for name in self.plastic_names]
        out = []
        for f in ("el", "el_flt", "el_sum", "w"):
            arrays = list(map(operator.attrgetter(f), conns))
            hit = self._spans.get(("syn", f))
            if hit is not None and len(hit[0]) == len(arrays) and all(map(operator.is_, hit[0], arrays)):
                flat = hit[1]
            else:
                flat = None
                base = arrays[0].base if arrays else None
                if base is not None and base.ndim == 1 and base.flags.c_contiguous and base.dtype == np.float32:
                    offs = [int(self.moff[c]) for c in range(len(self.conn_names)) if self.topo.c_plastic[c]]
                    if all(
                        a.base is base and a.flags.c_contiguous and a.ctypes.data == base.ctypes.data + 4 * o
                        for a, o in zip(arrays, offs, strict=True)
                    ):
                        flat = base[: int(self.moff[-1])]
                self._spans[("syn", f)] = (arrays, flat)
            if flat is None:
                return None
            out.append(flat)
        return fk.Synapses(*out)

    def _span(self, space: str, objs: list, field: str, rows: int | None = None) -> np.ndarray | None:
        """The arrays ``field`` of ``objs`` (groups or connections in kernel order) as one view, if
        they are neighbouring blocks (along the last axis, ``rows`` rows each if given) of one
        array, else None. Remembered for the same arrays (checked by identity, cheap)."""
        key = (space, field)
        if self._unpacking is not None:  # _unpack of the state _pack just packed: its spans
            return self._unpacking.get(key)
        arrays = list(map(operator.attrgetter(field), objs))
        hit = self._spans.get(key)
        if hit is not None and len(hit[0]) == len(arrays) and all(map(operator.is_, hit[0], arrays)):
            return hit[1]
        span = side_by_side(arrays, rows)
        self._spans[key] = (arrays, span)
        return span

    def _advance_serial(self, state: State, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Chunks of one advance (fixed weights), one after the other: the forward kernel, then the
        chunk's plasticity in all threads. The state is packed once and unpacked at the end (the
        kernels advance the packed copy chunk after chunk; the synapses are the state's own).
        Returns each chunk's spikes (step, global index)."""
        t_start = time.perf_counter()
        self._ensure_buffers(max(max(sizes), min(self.max_block, 5000)))
        st = self._pack(state)
        t0 = state.clock
        out = []
        t_fwd = t_back = t_prod = t_syn = 0.0
        for n in sizes:
            fw = self._forward_block(st, t0, n, 0)
            self._forward_run(st, fw)
            back, prod, syn = self._plasticity_block(state, st, fw)
            out.append((fw["rec"].rec_t[: fw["nrec"]].copy(), fw["rec"].rec_i[: fw["nrec"]].copy()))
            t0 += n
            t_fwd, t_back, t_prod, t_syn = t_fwd + fw["time"], t_back + back, t_prod + prod, t_syn + syn
        self._unpack(st, state)
        state.clock = t0
        tm = self.timing
        tm["forward"] += t_fwd
        tm["sweep"] += t_back
        tm["products"] += t_prod
        tm["synapses"] += t_syn
        tm["other"] += (time.perf_counter() - t_start) - t_fwd - t_back - t_prod - t_syn
        return out

    def _advance_pipelined(self, state: State, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Chunks of one advance (fixed weights) with the plasticity of each chunk overlapping the
        forward kernel of the next: the forward kernel does not read the rule's state, so chunk
        c + 1's forward pass runs here while chunk c's sweep, regulariser and synapse updates run
        in one worker thread, all column blocks in turn (those of the last chunk in all threads).
        Chunks alternate between two sets of buffers. The chunks, the kernels and each block's
        arithmetic are those of the serial schedule (:meth:`_advance_serial`), and the rule's
        state is updated chunk by chunk in the same order, so the results are bit for bit the
        same. The state is packed once and unpacked at the end (the regulariser advances the
        packed activity trace, chunk after chunk, in the worker). In ``timing``, "sweep" counts
        only the waits for the worker and the last chunk's plasticity."""
        t_start = time.perf_counter()
        self._ensure_buffers(max(max(sizes), min(self.max_block, 5000)))
        st = self._pack(state)
        pool = _pool(self.threads - 1)
        pending = None
        out = []
        tm = self.timing
        t_fwd = t_wait = t_back = t_syn = 0.0
        t0 = state.clock
        fw = self._forward_block(st, t0, sizes[0], 0)
        try:
            self._forward_run(st, fw)
            for c in range(len(sizes)):
                # chunk c has run the forward kernel
                t_fwd += fw["time"]
                out.append((fw["rec"].rec_t[: fw["nrec"]].copy(), fw["rec"].rec_i[: fw["nrec"]].copy()))
                t0 += sizes[c]
                t = time.perf_counter()
                if pending is not None:
                    f, pending = pending, None
                    f.result()
                t_wait += time.perf_counter() - t
                if c == len(sizes) - 1:
                    t_back, _, t_syn = self._plasticity_block(state, st, fw)
                    break
                # the next chunk's setup (Python) before the worker starts (its Python parts
                # would hold up this thread's): then the kernel, which releases the GIL
                nxt = self._forward_block(st, t0, sizes[c + 1], (c + 1) % 2)
                pending = pool.submit(self._plasticity_block, state, st, fw, True)
                fw = nxt
                self._forward_run(st, fw)
        finally:
            if pending is not None:  # an error in the forward kernel: let the worker finish first
                pending.result()
        self._unpack(st, state)
        state.clock = t0
        t_end = time.perf_counter()
        tm["forward"] += t_fwd
        tm["sweep"] += t_wait + t_back
        tm["synapses"] += t_syn
        tm["other"] += (t_end - t_start) - t_fwd - t_wait - t_back - t_syn
        return out

    def _forward_block(self, st: fk.FwdState, t0: int, n: int, buf: int) -> dict:
        """A chunk of steps t0 .. t0 + n - 1 of the packed state ``st``, to be recorded into buffer
        set ``buf`` (0, or 1: the pipelined schedule's second), for :meth:`_forward_run`: the
        chunk, the record, the event buffers, the delay-line rows of x (read from ``st`` now)."""
        gemm = self.method == "gemm"
        tag = "" if buf == 0 else "2"
        S, E = (self.S, self.E) if buf == 0 else self._SE2
        Dn = min(n, self.dmax)
        XL = np.zeros((Dn, self.NP))  # rows k < D: x from the delay line (pushed in the previous chunk)
        if not gemm:
            fk.delay_line_rows(st.psp_line, XL, t0, self.layout.pre_runs, self.consts.psp_cut)
        refr = int(self.neurons.ref_steps.min())
        cap = self.NQ * (n // (refr + 1) + 1)
        rec = fk.Record(
            S, E, self.X, self.XMAX, self.SMAX,
            self._scratch("rec_t" + tag, cap, np.int64), self._scratch("rec_i" + tag, cap, np.int64),
        )  # fmt: skip
        ecap = 1 if gemm else self._event_capacity(t0, n)
        none = np.zeros(0, np.int64)
        ev = fk.Events(
            self._scratch("evr" + tag, ecap, np.int64), self._scratch("evj" + tag, ecap, np.int64),
            self._scratch("eva" + tag, ecap, np.float64), self._scratch("evb" + tag, ecap, np.float64), none, none,
        )  # fmt: skip
        chunk = fk.Chunk(t0, n, gemm, n - min(n, self.wd))
        return {"chunk": chunk, "rec": rec, "ev": ev, "XL": XL}

    def _forward_run(self, st: fk.FwdState, fw: dict) -> None:
        """The forward kernel over the chunk ``fw`` of :meth:`_forward_block`; adds to ``fw`` the
        spikes and events recorded (``nrec``, ``nev``) and the kernel's wall time."""
        wts = fk.Weights(self._WF, self.FF)
        t1 = time.perf_counter()
        fp_control = fk.get_fp_control()
        try:
            nrec, nev = fk.forward(
                fw["chunk"], self.consts, self.neurons, self.topo, self.layout, self._inputs, wts, st, fw["rec"],
                fw["ev"], self._tracker,
            )  # fmt: skip
        finally:  # the kernel flushes denormals (see _fast_kernels); never leak that setting
            fk.set_fp_control(fp_control)
        if nev < 0:
            raise RuntimeError("fast engine: event buffer too small (please report)")
        fw.update(nrec=nrec, nev=nev, time=time.perf_counter() - t1)

    def _plasticity_block(self, state: State, st: fk.FwdState, fw: dict, one_thread: bool = False):
        """The plasticity of a chunk recorded by :meth:`_forward_block` (SPEC 5): the sums over the
        chunk, the regulariser (SPEC 2.3: rho h^a summed into RS for the posts of regularised
        groups, h advanced in ``st`` by the chunk's own spikes), the per-synapse updates of
        ``state``'s connections. In all threads, or in the calling thread only (``one_thread``,
        "events": all column blocks in turn). Returns the wall times of the sums, of the
        products ("gemm") and of the calling thread's synapse updates."""
        rec, nrec, chunk = fw["rec"], fw["nrec"], fw["chunk"]
        n = chunk.n
        RS = np.zeros(self.NQ, np.float64)
        reg = (rec, nrec, chunk, self.consts, self.nin, st.het, RS) if self._reg_cols else None
        coef = (self.dec_rise**n, self.q**n, float(self._G[n - 1]))  # d^n, q^n, G(n-1)
        if self.method == "events":
            t_back, t_syn = self._plasticity_events(state, rec, n, fw["nev"], fw["ev"], fw["XL"], reg, RS, coef,
                                                    one_thread)  # fmt: skip
            return t_back, 0.0, t_syn
        terms, alpha, beta, t_back, t_prod = self._plasticity_gemm(n, reg)
        t3 = time.perf_counter()
        jobs = []
        single = len(self.plastic_names) == 1
        for c in terms:
            name = self.conn_names[c]
            npre = state.conns[name].el.shape[0]
            parts = max(1, min(self.threads, npre // 16)) if single else 1
            edges = np.linspace(0, npre, parts + 1).round().astype(int)
            cols = self.group_cols[int(self.topo.c_post[c])]
            for r in pairwise(edges):
                jobs.append(self._synapse_job(state, c, terms[c], alpha, beta, RS, coef, r, (0, cols[1] - cols[0])))
        self._run(fk.synapse_update, jobs)
        return t_back, t_prod, time.perf_counter() - t3

    def _synapse_job(self, state: State, c: int, mpp, alpha, beta, RS, coef, rows, cols) -> tuple:
        """Arguments of :func:`~superspike.engine._fast_kernels.synapse_update` for plastic
        connection c, its pre rows ``rows`` and post columns ``cols`` ((first, end), of the
        connection); ``mpp`` its (M, PD, PG)."""
        cs = state.conns[self.conn_names[c]]
        a, b = self.group_cols[int(self.topo.c_post[c])]
        terms = fk.Terms(*mpp, alpha[a:b], beta[a:b], RS[a:b], *coef)
        return (fk.Synapses(cs.el, cs.el_flt, cs.el_sum, cs.w), terms, tuple(rows), tuple(cols))

    def _plasticity_job(self, fn, args: tuple, cols, reg: tuple | None, synapses=(), timed=None) -> None:
        """One thread's share of a chunk's plasticity: ``fn(*args)`` (the sweep, or the error
        filter of "gemm"), then the regulariser of the regularised post columns among ``cols``
        ((first, end) ranges), then ``synapses`` ((kernel, args) pairs: synapse_update per
        connection, or synapse_block for all of them, for the same columns);
        the time of that last part is added to ``timed[0]`` if given. The kernels release the
        GIL."""
        fn(*args)
        if reg is not None:
            fp_control = fk.get_fp_control()
            try:
                for a, b, *_ in cols:
                    for ra, rb in self._reg_cols:
                        lo, hi = max(int(a), ra), min(int(b), rb)
                        if hi > lo:
                            fk.regulariser(*reg, lo, hi)
            finally:  # it flushes denormals, like the forward kernel
                fk.set_fp_control(fp_control)
        t = time.perf_counter()
        for syn_fn, job in synapses:
            syn_fn(*job)
        if timed is not None:
            timed[0] += time.perf_counter() - t

    # -- the sums over the chunk, "events" ------------------------------------------------------
    def _plasticity_events(self, state, rec, n, nev, ev, XL, reg, RS, coef, one_thread=False) -> tuple[float, float]:
        """The sweep and regulariser, then the per-synapse pass, of each column block in its
        thread (the pass needs only the block's own columns of the sums), or of all blocks in
        turn in the calling thread (``one_thread``). Returns the wall time and the calling
        thread's time in the per-synapse pass."""
        ta = time.perf_counter()
        # events of each lane (sweep), in order of rows, each connection's in the order the
        # kernel wrote them (time order)
        if self._lane_pre is None:
            key = self._pre_lane[ev.j[:nev]] * (n + 1) + ev.r[:nev]
            order = np.argsort(key, kind="stable")
            bounds = np.searchsorted(key[order], np.arange(len(self._lanes) + 1) * (n + 1))
        else:  # a segment feeding several lanes: its events in each
            by_row = np.argsort(ev.r[:nev], kind="stable")
            parts = [by_row[self._lane_pre[lane, ev.j[by_row]]] for lane in range(len(self._lanes))]
            order = np.concatenate(parts) if parts else by_row
            bounds = np.concatenate([[0], np.cumsum([len(x) for x in parts])]).astype(np.int64)
        evs = fk.Events(
            ev.r[:nev][order], ev.j[:nev][order], ev.a[:nev][order], ev.b[:nev][order],
            bounds[:-1].copy(), bounds[1:].copy(),
        )  # fmt: skip
        tot = int(self.moff[-1])
        M = self._scratch("m", tot, np.float64)  # the sweep zeroes them, in its threads
        PD = self._scratch("pd", tot, np.float64)
        PG = self._scratch("pg", tot, np.float64)
        k = np.arange(n)
        tab = fk.SweepTables(self._DP[n - k], self._G[n - 1 - k], self._QP[n - k])  # d^(n-k), G(n-1-k), q^(n-k)
        sums = fk.Sums(M, PD, PG, np.empty(self.NQ), np.empty(self.NQ))
        timed = [0.0]
        jobs = []
        flat = self._flat_synapses(state)
        for t, blk in enumerate(self._blocks):
            syn = []
            if flat is not None:  # every connection into the block at once
                syn.append((fk.synapse_block, (flat, sums, RS, *coef, blk, self.topo, self.layout)))
                blk_syn = ()
            else:
                blk_syn = blk
            for a, b, _ in blk_syn:  # a block lies within one lane of groups (sweep_blocks)
                g = int(np.searchsorted(self.topo.g_off, a + self.nin, side="right")) - 1
                while g < len(self.group_order) and self.group_cols[g][0] < b:
                    qa, qb = self.group_cols[g]
                    for c in self.into[g]:
                        mpp = tuple(T[self.moff[c] : self.moff[c + 1]].reshape(-1, qb - qa) for T in (M, PD, PG))
                        npre = int(self.prange[c, 1] - self.prange[c, 0])
                        cols = (max(int(a), qa) - qa, min(int(b), qb) - qa)
                        job = self._synapse_job(state, c, mpp, sums.alpha, sums.beta, RS, coef, (0, npre), cols)
                        syn.append((fk.synapse_update, job))
                    g += 1
            args = (rec, n, self._sk, tab, blk, self.topo, self.layout, evs, sums, XL)
            jobs.append((fk.sweep, args, blk, reg, syn, timed if t == 0 else None))
        if one_thread:
            for job in jobs:
                self._plasticity_job(*job)
        else:
            self._run(self._plasticity_job, jobs)
        tb = time.perf_counter()
        return tb - ta - timed[0], timed[0]

    # -- the sums over the chunk, "gemm" --------------------------------------------------------
    def _plasticity_gemm(self, n, reg):
        t_prod = 0.0
        ta = time.perf_counter()
        plastic = [c for c in range(len(self.conn_names)) if self.topo.c_plastic[c]]
        ends = {c: self._end_products(c, n) for c in plastic}
        tb = time.perf_counter()
        t_prod += tb - ta
        alpha = np.empty(self.NQ)
        beta = np.empty(self.NQ)
        rec = fk.Record(self.S, self.E, self.X, self.XMAX, self.SMAX, self.S, self.S)
        jobs = [(fk.backward, (rec, n, self._sk, alpha, beta, a, b), [(a, b)], reg) for a, b in self._col_ranges]
        self._run(self._plasticity_job, jobs)
        tc = time.perf_counter()
        terms = {}
        for c in plastic:
            a, b = self.group_cols[int(self.topo.c_post[c])]
            p0, p1 = self.prange[c]
            M = self.X[:n, p0:p1].T @ self.S[:n, a:b]
            self.flops += 2.0 * n * (p1 - p0) * (b - a)
            terms[c] = (M, *ends[c])
        td = time.perf_counter()
        t_prod += td - tc
        return terms, alpha, beta, tc - tb, t_prod

    def _end_products(self, c: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """ "gemm": the chunk's own contributions to el and el_flt at its end, for connection c,
        ``X^T (S d^(n-k))`` and ``X^T (S G(n-1-k))`` over the last wd / wg steps.

        The steps left out contribute at most ``sum_k kernel(k) max_j x_j(k) max_i s_i(k)``; if
        that exceeds 1e-7 of the largest entry (a whole group went quiet), the product is
        redone over the whole chunk.
        """
        a, b = self.group_cols[int(self.topo.c_post[c])]
        p0, p1 = self.prange[c]
        out = []
        for kern, w, Y in ((self._DKr, min(n, self.wd), self.YD), (self._GKr, min(n, self.wg), self.YG)):
            Yw = Y[:w, : b - a]
            np.multiply(self.S[n - w : n, a:b], kern[len(kern) - w :, None], out=Yw)
            P = self.X[n - w : n, p0:p1].T @ Yw
            self.flops += 2.0 * w * (p1 - p0) * (b - a)
            if w < n:
                full = self._Dk if kern is self._DKr else self._G
                kw = full[n - 1 - np.arange(n - w)]
                xm = self.XMAX[: n - w, c].view(np.float32).astype(np.float64)
                sm = self.SMAX[: n - w, c].view(np.float32).astype(np.float64)
                if float(np.dot(kw, xm * sm)) > 1e-7 * float(np.abs(P).max(initial=0.0)):
                    self.full_end_products += 1
                    Yf = (self.S[:n, a:b] * full[:n][::-1, None]).astype(np.float32)
                    P = self.X[:n, p0:p1].T @ Yf
                    self.flops += 2.0 * n * (p1 - p0) * (b - a)
            out.append(P)
        return out[0], out[1]
