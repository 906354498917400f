"""Compiled kernels of the fast engine (docs/MODEL.md, section 5; SPEC 5). See
:mod:`superspike.engine.fast` for the maths.

Layout (:class:`Layout`): every neuron has a *global index* in kernel order (input groups first,
then the LIF groups, each in declaration order; :mod:`superspike.engine.base`). The *post space*
holds the LIF neurons (post index = global index - nin): neuron state, the error state and the
recorded series S and E, one contiguous segment per LIF group. The *pre space* holds one segment
per presynaptic group and delay line length D: the presynaptic traces z and z~ of the group's
neurons, their delay line of z~ (D rows: the post group's length), cut-off flags and events. The
plastic connections from that group into post groups with that D all read it (``prange``: each
connection's segment), so a group sending several such connections has its traces computed
once. Fixed connections only deliver spikes and have no segment.

The kernels take named structures: the rule's, the neurons' and the graph's (``RuleConsts``,
``NeuronConsts``, ``Topology`` of :mod:`superspike.engine.base`) and the NamedTuples below, whose
fields they read by name. The innermost loops take flat arrays and offsets (see the helpers).
"""

from __future__ import annotations

import platform
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from superspike.rule.surrogate import surrogate

# -- denormals: the forward kernel and the regulariser run with flush-to-zero / denormals-are-zero
# Traces of silent neurons decay into the float32 denormal range (below 1.2e-38), where x86
# arithmetic is several times slower. Flushed to zero, I_syn and the traces (and h) differ from
# the reference's by less than 1.2e-38. U is still computed bit for bit (adding such a current to
# U_rest - U, a multiple of U's ulp or 0, changes nothing), so no spike changes, and no cut-off
# decision (1e-7, 1e-5, -80 mV) can change unless a value lies within 1e-38 of it. The control
# register is restored when the kernel returns (and by the caller, should it raise).
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
FTZ_DAZ = 0x8040  # MXCSR bits: flush to zero (15), denormals are zero (6)

if X86:

    def _mxcsr_call(builder, name, ptr):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(ptr, ir.IntType(8).as_pointer())])

    @intrinsic
    def _stmxcsr(typingctx):
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
            return builder.load(ptr)

        return types.uint32(), codegen

    @intrinsic
    def _ldmxcsr(typingctx, val):
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once_value(builder, args[0])
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
            return context.get_dummy_value()

        return types.void(types.uint32), codegen

else:  # other architectures: nothing to set

    @njit
    def _stmxcsr():
        return np.uint32(0)

    @njit
    def _ldmxcsr(val):
        pass


@njit(cache=True)
def get_fp_control() -> np.uint32:
    """The x86 floating-point control register (MXCSR) of the calling thread (0 elsewhere)."""
    return _stmxcsr()


@njit(cache=True)
def set_fp_control(value: np.uint32) -> None:
    """Set the x86 floating-point control register of the calling thread (no-op elsewhere)."""
    if X86:
        _ldmxcsr(value)


U64 = np.uint64
#: steps of float32 regulariser sums before they are added to the float64 chunk sum (a relative
#: rounding error of at most REG_FLUSH * 2^-24 = 4e-6 per partial sum)
REG_FLUSH = 64
#: neurons checked at once (one vector test) before a scalar scan for spikes or nonzero errors
SCAN = 32
#: the sweep's sum P grows by q/d = (1 - dt/tau_decay)/exp(-dt/tau_rise) per step (Q by d/q if that
#: is below 1, see sweep): chunks of the "events" method are at most this / |ln(q/d)| steps long,
#: so that P and Q stay below e^460 = 1e200 (Oxford demo: 46000 steps; tau_rise = 0.2 ms: 950)
P_GROWTH_LIMIT = 460.0


# -- the named structures the kernels take ----------------------------------------------------


class Layout(NamedTuple):
    """The flat layout of the fast engine's arrays (see the module docstring). Connections in
    creation order (``c``), feedback edges in ``spec.feedback_edges`` order (``e``)."""

    nin: int  #: input neurons (global indices below it)
    nglobal: int  #: all neurons
    npost: int  #: LIF neurons (the post space)
    npre: int  #: the pre space: pre neurons of all plastic connections
    nout: int  #: output neurons (the target space)
    woff: np.ndarray  #: (C+1) offset of connection c's weights [pre, post] in ``Weights.w``
    foff: np.ndarray  #: (E) offset of edge e's feedback matrix [src, dst] in ``Weights.fb``
    prange: np.ndarray  #: (C, 2) first and end pre index of connection c's segment ((0, 0) if fixed)
    moff: np.ndarray  #: (C+1) offset of connection c's synapses in the sweep's sums (empty if fixed)
    tg_post: np.ndarray  #: (nout) post index of each target id
    #: (runs, 5) runs of pre-space segments passed over at once (engine.fast), together the
    #: whole pre space: first and end pre index, global index of the first, delay line length D,
    #: offset of the run's flags in ``Tracker.fl`` (padded to 8)
    pre_runs: np.ndarray
    #: (runs, 4) runs of LIF groups with equal constants and D: first and end post column, LIF
    #: index (of the constants), D
    lif_runs: np.ndarray


class Chunk(NamedTuple):
    """One call of the forward kernel: steps t0 .. t0 + n - 1."""

    t0: int  #: first step (the clock)
    n: int  #: steps
    rec_x: bool  #: record x densely (``Record.x``, the "gemm" method) instead of events
    k_old: int  #: "gemm": rows below this also get their maxima (``Record.xmax``, ``smax``)


class Inputs(NamedTuple):
    """The task on the loop grid (SPEC 3): input events of loop step s are
    ``in_ids[in_ptr[s]:in_ptr[s+1]]`` (task id = global index); targets likewise (target ids);
    windows of opportunity (``superspike.task.windows``) if ``has_win``."""

    in_ptr: np.ndarray
    in_ids: np.ndarray
    tg_ptr: np.ndarray
    tg_ids: np.ndarray
    has_win: bool
    wo_ptr: np.ndarray
    wo_ids: np.ndarray
    wc_ptr: np.ndarray
    wc_ids: np.ndarray


class Weights(NamedTuple):
    """The weights, fixed during an advance (float32, flat; :class:`Layout` offsets)."""

    w: np.ndarray  #: every connection's weights [pre, post], row-major
    fb: np.ndarray  #: every feedback edge's matrix F [src, dst] (symmetric: the transposed weights)


class FwdState(NamedTuple):
    """The state the forward kernel advances, in the flat layout. Post-space fields are the LIF
    groups' fields of ``GroupState`` concatenated, pre-space fields the plastic connections' of
    ``ConnectionState`` (``engine.fast`` packs them by these names)."""

    hist: np.ndarray  #: int8 (R, nglobal) ring of spike counts
    target_hist: np.ndarray  #: int8 (R, nout)
    window_state: np.ndarray  #: int8 (nout)
    spk: np.ndarray  #: int64 (R, nglobal): the distinct emitters of each ring slot, ascending
    spkn: np.ndarray  #: int64 (R): how many
    spko: np.ndarray  #: int64 (R, G+1): where each group's emitters start in ``spk``
    u: np.ndarray  #: post space
    i_syn: np.ndarray
    ref: np.ndarray  #: int32
    err: np.ndarray
    tr_err: np.ndarray
    tr_err_flt: np.ndarray
    avg: np.ndarray
    het: np.ndarray  #: advanced by :func:`regulariser`, not by the forward kernel
    err_hist: np.ndarray  #: (R, npost)
    sig_line: np.ndarray  #: (Dmax, npost), a group's first D rows
    tr_pre: np.ndarray  #: pre space
    tr_psp: np.ndarray
    psp_line: np.ndarray  #: (Dmax, npre), a connection's first D rows (D of its post group)


class Record(NamedTuple):
    """What the forward kernel records over a chunk (row k = step t0 + k)."""

    s: np.ndarray  #: float32 (rows, npost): delayed sigma'
    e: np.ndarray  #: float32 (rows, npost): tr_err_flt where |tr_err_flt| >= err_cut, else 0
    x: np.ndarray  #: float32 (rows, npre): delayed z~ with the PSP cut-off ("gemm" only)
    xmax: np.ndarray  #: int32 (rows, C): max of x per plastic connection, as float32 bits ("gemm")
    smax: np.ndarray  #: int32 (rows, C): max of s over its post group ("gemm")
    rec_t: np.ndarray  #: int64: step of each LIF spike
    rec_i: np.ndarray  #: int64: its global index


class Events(NamedTuple):
    """Presynaptic events (see engine.fast): from chunk row ``r`` on, x of pre ``j`` (pre
    index) gains the free decay of z~ = a, z = b. For the sweep, sorted by lane (see
    :func:`sweep`), then row: lane l's are ``[lo[l], hi[l])``, each connection's in time order."""

    r: np.ndarray
    j: np.ndarray
    a: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


class Tracker(NamedTuple):
    """The forward kernel's bookkeeping of events (pre space) and its tables of powers."""

    mprev: np.ndarray  #: int8: z~ pushed in the last step was above the PSP cut-off
    run_t: np.ndarray  #: start, z~ and z of a running cut-off stretch (float64, exact)
    run_zt: np.ndarray
    run_z: np.ndarray
    net_t: np.ndarray  #: time, z~ and z of the state the events emitted so far add up to
    net_a: np.ndarray
    net_b: np.ndarray
    fl: np.ndarray  #: int8 flags of the pres with something to record, per connection padded to 8
    upk: np.ndarray  #: int64 scratch: the flagged pres
    qp: np.ndarray  #: q^m
    dp: np.ndarray  #: d^m
    gt: np.ndarray  #: G(m)


class SweepConsts(NamedTuple):
    """float64 constants of the sweep's recurrences (see :func:`sweep`): q, d, kk and the
    products it needs per row."""

    q: float
    d: float
    kk: float
    cq: float  #: c = kk / (q - d)
    dc: float  #: d c
    cqq: float  #: c q
    cqd: float  #: c d
    rqd: float  #: q / d
    rdq: float  #: d / q


class SweepTables(NamedTuple):
    """Per chunk row k: d^(n-k), G(n-1-k), q^(n-k) (float64)."""

    dk: np.ndarray
    gk: np.ndarray
    qk: np.ndarray


class Sums(NamedTuple):
    """The sweep's results: per synapse (flat, ``Layout.moff``) the products M (el_sum), PD (el),
    PG (el_flt); per post the weights ALPHA, BETA of the carried-in el_flt and el (float64)."""

    m: np.ndarray
    pd: np.ndarray
    pg: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


#: rows of the sweep's per-column state of one block (float64, one 2-D array, so that a helper
#: called per row takes one array, not ten): the error sums Eq, Ed; y = S Et of a row fed by the
#: delay line and its u, z factors; the discounted sums r0, r1 of y and P, Q, C of S (see sweep)
EQ, ED, Y, YD, YG, R0, R1, RP, RQ, RC = range(10)


class Synapses(NamedTuple):
    """One plastic connection's synapse arrays [pre, post] (float32, the state's own)."""

    el: np.ndarray
    el_flt: np.ndarray
    el_sum: np.ndarray
    w: np.ndarray


class Terms(NamedTuple):
    """One connection's share of the chunk's sums, for :func:`synapse_update`: M, PD, PG
    [pre, post] (float64, or float32 from "gemm"), and per post of the connection ALPHA, BETA and
    the regulariser sum RS; ``dn, qn, gn1`` = d^n, q^n, G(n-1)."""

    m: np.ndarray
    pd: np.ndarray
    pg: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    rs: np.ndarray
    dn: float
    qn: float
    gn1: float


@njit(cache=True, error_model="numpy")
def rebuild_spike_lists(st, g_off):
    """Distinct emitters of every ring slot of ``st.hist``, ascending global index (the order of
    delivery, SPEC 1), and where each group's start (:class:`FwdState`)."""
    HIST, SPK, SPKN = st.hist, st.spk, st.spkn
    R, N = HIST.shape
    for r in range(R):
        n = 0
        for j in range(N):
            if HIST[r, j] != 0:
                SPK[r, n] = j
                n += 1
        SPKN[r] = n
        _group_starts(SPK, n, st.spko, r, g_off)


@njit(cache=True, error_model="numpy")
def delay_line_rows(psp_line, xl, t0, pre_runs, psp_cut):
    """Rows k < D of x (see :func:`sweep`): ``xl[k, pre]`` = the z~ that the delay line of pre j
    (``psp_line``, packed; D rows, ``pre_runs``) returns in step t0 + k, where above the PSP
    cut-off, else 0. Call before :func:`forward`, which overwrites those entries."""
    for run in range(pre_runs.shape[0]):
        D = pre_runs[run, 3]
        for k in range(min(xl.shape[0], D)):
            r = (t0 + k) % D
            for j in range(pre_runs[run, 0], pre_runs[run, 1]):
                v = psp_line[r, j]
                xl[k, j] = v if v > psp_cut else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _group_starts(SPK, n, SPKO, r, g_off):
    # SPKO[r, g]: first entry of the ascending list SPK[r, :n] in group g (G+1 entries)
    e = 0
    G = g_off.shape[0] - 1
    for g in range(G):
        SPKO[r, g] = e
        while e < n and SPK[r, e] < g_off[g + 1]:
            e += 1
    SPKO[r, G] = n


# -- loops of the forward kernel over contiguous runs of neurons. They take flat arrays and
#    unsigned offsets instead of slices: a slice made inside the step loop costs two atomic
#    reference-count operations (they were half the kernel's time), and unsigned 1-D indices
#    spare the negative-index checks, so LLVM vectorises the loops (element-wise float32
#    arithmetic gives the same bits vectorised or not). Constants come as plain tuples of
#    scalars, and the helpers called every step are inlined into the kernel (numba's
#    inline="always"): a call passes every array as a struct of seven words, and a NamedTuple
#    holding arrays costs reference counting on each use. ---------------------------------------


@njit(cache=True, error_model="numpy")
def _post_pass(U, I, REF, H, oh, ERR, TRE, TREF, AVG, S, L, ol, E, orow, o, n, lc, tc, sc):
    # one pass over the neurons at post index o (one run of LIF groups, see forward) doing, per
    # neuron and in the reference's order: SPEC 1 (membrane, threshold/refractoriness, current
    # decay; spikes into H at ring offset oh), step 1 (error traces from the previous step's err),
    # step 2 (squared-error average), 4a (record the delayed sigma' into S at row offset orow,
    # push sigma'(U) into the delay line L at ol) and 4d's factor (E at orow). The per-neuron
    # float32 operations are those of the separate passes they replace; each neuron's depend on
    # nothing else. lc: LIF constants, tc = (k_rise, k_decay, dec_avg, dt, err_cut), sc =
    # (linear, threshold, beta, u_cut). Called, not inlined: inlined into the kernel, LLVM does not
    # vectorise a loop over this many arrays (it does as a function of its own; one call per run
    # and step costs less than the four passes it replaces)
    k_mem, u_rest, thr, dec_syn, ref_steps = lc
    k_rise, k_decay, dec_avg, dt, err_cut = tc
    linear, sthr, beta, u_cut = sc
    oh, ol, orow, o = U64(oh), U64(ol), U64(orow), U64(o)
    for q in range(U64(n)):
        j = o + q
        u = U[j]
        uq = u + k_mem * ((u_rest - u) + I[j])
        r = REF[j]
        sp = (r == 0) & (uq > thr)
        un = u_rest if (sp | (r > 0)) else uq
        U[j] = un
        REF[j] = ref_steps if sp else (r - 1 if r > 0 else r)
        I[j] = I[j] * dec_syn
        H[oh + q] = 1 if sp else 0
        te = TRE[j] + k_rise * (ERR[j] - TRE[j])
        TRE[j] = te
        tf = TREF[j] + k_decay * (te - TREF[j])
        TREF[j] = tf
        AVG[j] = AVG[j] * dec_avg + dt * tf * tf
        S[orow + j] = L[ol + j]
        L[ol + j] = np.float32(1.0) if linear else surrogate(un, sthr, beta, u_cut)
        E[orow + j] = tf if abs(tf) >= err_cut else np.float32(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _any_i8(H, o, n):
    o = U64(o)
    a = np.int8(0)
    for q in range(U64(n)):
        a |= H[o + q]
    return a != 0


@njit(cache=True, error_model="numpy", inline="always")
def _zero(A, o, n):
    # A[o:o+n] = 0, any dtype (compiled once per array type)
    o = U64(o)
    for q in range(U64(n)):
        A[o + q] = 0


@njit(cache=True, error_model="numpy", inline="always")
def _add_row(I, oi, W, ow, n):
    oi, ow = U64(oi), U64(ow)
    for i in range(U64(n)):
        I[oi + i] = I[oi + i] + W[ow + i]


@njit(cache=True, error_model="numpy", inline="always")
def _add_row_scaled(A, oa, W, ow, n, v):
    oa, ow = U64(oa), U64(ow)
    for i in range(U64(n)):
        A[oa + i] += W[ow + i] * v


@njit(cache=True, error_model="numpy", inline="always")
def _out_err(ERR, oe, TG, ot, H, oh, n):
    oe, ot, oh = U64(oe), U64(ot), U64(oh)
    for i in range(U64(n)):
        ERR[oe + i] = np.float32(TG[ot + i] - H[oh + i])


@njit(cache=True, error_model="numpy", inline="always")
def _any_bits(Ai, o, n):
    # any nonzero float32, via an int32 view (a -0.0 counts; its products change no sum)
    o = U64(o)
    a = np.int32(0)
    for q in range(U64(n)):
        a |= Ai[o + q]
    return a != 0


@njit(cache=True, error_model="numpy", inline="always")
def _copy_f(A, o, B, n):
    o = U64(o)
    for i in range(U64(n)):
        A[o + i] = B[i]


@njit(cache=True, error_model="numpy", inline="always")
def _pre_pass(TRP, TRZ, H, oh, L, ol, MPREV, FL, of, o, n, pc):
    # one presynaptic neuron at a time: z (step 1, delayed spikes), push z~ into the delay line
    # (4a), z~ (6). FL flags the neurons with a spike arriving or whose pushed z~ crossed the PSP
    # cut-off (4b) since the last step; returns whether any is flagged. pc = (dec_rise, k_decay,
    # psp_cut)
    dec_rise, k_decay, psp_cut = pc
    oh, ol, o, of = U64(oh), U64(ol), U64(o), U64(of)
    anyf = np.int8(0)
    for i in range(U64(n)):
        h = H[oh + i]
        z = (TRP[o + i] + h) * dec_rise
        TRP[o + i] = z
        p = TRZ[o + i]
        L[ol + i] = p
        f = ((np.int8(1) if p > psp_cut else np.int8(0)) ^ MPREV[o + i]) | (np.int8(1) if h != 0 else np.int8(0))
        FL[of + i] = f
        anyf |= f
        TRZ[o + i] = p + k_decay * (z - p)
    return anyf != 0


@njit(cache=True, error_model="numpy", inline="always")
def _pre_pass_x(TRP, TRZ, H, oh, L, ol, X, ox, o, n, pc):
    # as _pre_pass, recording the delayed z~ with the cut-off applied (the "gemm" method)
    dec_rise, k_decay, psp_cut = pc
    oh, ol, ox, o = U64(oh), U64(ol), U64(ox), U64(o)
    for i in range(U64(n)):
        z = (TRP[o + i] + H[oh + i]) * dec_rise
        TRP[o + i] = z
        pd = L[ol + i]
        X[ox + i] = pd if pd > psp_cut else np.float32(0.0)
        p = TRZ[o + i]
        L[ol + i] = p
        TRZ[o + i] = p + k_decay * (z - p)


@njit(cache=True, error_model="numpy", inline="always")
def _max_nonneg(Ai, o, n):
    # max of non-negative float32 values via their int32 bit patterns (same order; vectorises)
    o = U64(o)
    m = np.int32(0)
    for j in range(U64(n)):
        v = Ai[o + j]
        m = v if v > m else m
    return m


@njit(cache=True, error_model="numpy")
def _reg(RS, HET, oh, Ef, oe, n, always, rho, ia):
    # rho h^a for a whole exponent 0..15 by squaring (within an ulp of the reference's powf; the
    # sum only enters el_sum), where the post's error is active: E != 0 (E is tr_err_flt where
    # |tr_err_flt| >= the cut-off, so E != 0 is that test when the cut-off is positive), or
    # ``always`` (a cut-off of 0). Branches on the bits of a are the same for every neuron. RS
    # is a float32 partial sum (a float64 one halves the speed), flushed every REG_FLUSH steps
    b1, b2, b4, b8 = (ia & 1) != 0, (ia & 2) != 0, (ia & 4) != 0, (ia & 8) != 0
    one = np.float32(1.0)
    oh, oe = U64(oh), U64(oe)
    for q in range(U64(n)):
        h = HET[oh + q]
        h2 = h * h
        h4 = h2 * h2
        p = (h if b1 else one) * (h2 if b2 else one) * (h4 if b4 else one) * (h4 * h4 if b8 else one)
        RS[q] += rho * p if (always | (Ef[oe + q] != 0)) else np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _reg_pow(RS, HET, oh, Ef, oe, n, always, rho, reg_a):
    for q in range(n):
        if always or Ef[oe + q] != 0:
            RS[q] += rho * HET[oh + q] ** reg_a


@njit(cache=True, error_model="numpy")
def _scale(A, o, n, v):
    o = U64(o)
    for q in range(U64(n)):
        A[o + q] = A[o + q] * v


@njit(cache=True, error_model="numpy")
def _flush(RS, o, R32, n):
    # add the float32 partial sums of the regulariser to the float64 chunk sums, restart them
    o = U64(o)
    for q in range(U64(n)):
        RS[o + q] += np.float64(R32[q])
        R32[q] = np.float32(0.0)


@njit(cache=True, error_model="numpy", nogil=True)
def regulariser(rec, nrec, ch, rc, nin, het, rs, i0, i1):
    """The heterosynaptic regulariser (SPEC 2.3) of post columns [i0, i1) over a chunk.

    Advances the activity trace ``h <- (h + own spikes) dec_het`` (``het``, post space) with the
    chunk's spikes (``rec.rec_t``/``rec.rec_i``, ``nrec`` of them: absolute step and global
    index, in step order, as the forward kernel records them) and adds ``sum_k rho h(k)^a`` over
    the steps where the post's error is active (``rec.e``) to ``rs`` (float64; float32 partial
    sums of REG_FLUSH steps, as the per-step loop of the reference engine sums in float32). The
    float32 arithmetic is the reference's, with denormals flushed to zero as in :func:`forward`
    (h of a silent neuron otherwise sticks at a denormal value, where x86 arithmetic is slow: twice
    the time of this kernel). Run after the forward kernel, in the threads of the sums, it is off
    the serial forward path. Releases the GIL.
    """
    err_cut, rho, reg_a, dec_het = rc.err_cut, rc.rho, rc.reg_a, rc.dec_het
    REC_T, REC_I, E = rec.rec_t, rec.rec_i, rec.e
    n, t0 = ch.n, ch.t0
    always = not (err_cut > 0)
    ia = np.int64(reg_a)
    int_exp = np.float32(ia) == reg_a and ia >= 0 and ia <= 15
    w = i1 - i0
    if w <= 0:
        return
    NQ = E.shape[1]
    Ef = E.ravel()
    R32 = np.zeros(w, np.float32)
    g0, g1 = nin + i0, nin + i1
    fp_saved = _stmxcsr()
    if X86:
        _ldmxcsr(fp_saved | np.uint32(FTZ_DAZ))
    e = 0
    for k in range(n):
        t = t0 + k
        # own spikes of step k (undelayed, SPEC 2.3): h + 1, then every h decays (h + 0 is h)
        while e < nrec and REC_T[e] == t:
            g = REC_I[e]
            if g >= g0 and g < g1:
                het[g - nin] = het[g - nin] + np.float32(1.0)
            e += 1
        _scale(het, i0, w, dec_het)
        if int_exp:
            _reg(R32, het, i0, Ef, k * NQ + i0, w, always, rho, ia)
        else:
            _reg_pow(R32, het, i0, Ef, k * NQ + i0, w, always, rho, reg_a)
        if (k + 1) % REG_FLUSH == 0 or k == n - 1:
            _flush(rs, i0, R32, w)
    _ldmxcsr(fp_saved)


@njit(cache=True, error_model="numpy", nogil=True)
def forward(ch, rc, nc, topo, lay, inp, wts, st, rec, ev, trk):
    """Forward dynamics of ``ch.n`` steps with fixed weights; record the per-neuron series.

    Reproduces the neuron, trace, error and delay-line arithmetic of the reference engine
    (docs/MODEL.md sections 1-4; SPEC 1, 2.1 steps 1-3, 4a, 6) operation for operation in
    float32, so spikes are identical (denormals are flushed to zero, see the top of this module).
    Instead of steps 4b-4d it records, for chunk step k: ``rec.s[k, post]`` the delayed
    sigma'(U), ``rec.e[k, post]`` tr_err_flt where |tr_err_flt| >= the error cut-off (else 0).
    The regulariser (its trace h and the sum of rho h^a) is left to :func:`regulariser`, which
    needs only E and the spikes.

    The presynaptic factor x_j(k) (delayed z~ with the PSP cut-off) of every plastic connection is
    recorded either densely, ``rec.x[k, pre]`` (``ch.rec_x``; with the row maxima ``rec.xmax``,
    ``rec.smax`` of steps k < ``ch.k_old``), or as events ``ev`` (row, pre, a, b) meaning "from
    chunk row ``row`` on, x_j gains the free decay of z~ = a, z = b" (see engine.fast): the trace
    state at the chunk start, every spike arrival (b = count), and, around each stretch where z~
    is at or below the cut-off, a negative event cancelling the decay there and a positive one
    restoring it after (``trk.qp``, ``dp``, ``gt``: q^m, d^m, G(m) tables). Returns (spikes
    recorded in ``rec.rec_t``/``rec_i`` as (step, global index), events recorded; -1 if the event
    buffer was too small).
    """
    t0, n_steps, rec_x, k_old = ch.t0, ch.n, ch.rec_x, ch.k_old
    dec_rise, k_rise, k_decay, dec_avg = rc.dec_rise, rc.k_rise, rc.k_decay, rc.dec_avg
    dt, psp_cut, err_cut = rc.dt, rc.psp_cut, rc.err_cut
    delay, fb_lag, mask = rc.delay, rc.fb_lag, rc.mask
    g_off, g_lif_index, g_target = topo.g_off, topo.g_lif_index, topo.g_target
    c_pre, c_post, c_plastic = topo.c_pre, topo.c_post, topo.c_plastic
    e_src, e_dst = topo.e_src, topo.e_dst
    nin, N, NQ, NP, nout = lay.nin, lay.nglobal, lay.npost, lay.npre, lay.nout
    woff, foff, prange, tg_post = lay.woff, lay.foff, lay.prange, lay.tg_post
    pre_runs, lif_runs = lay.pre_runs, lay.lif_runs
    in_ptr, in_ids, tg_ptr, tg_ids = inp.in_ptr, inp.in_ids, inp.tg_ptr, inp.tg_ids
    has_win, wo_ptr, wo_ids, wc_ptr, wc_ids = inp.has_win, inp.wo_ptr, inp.wo_ids, inp.wc_ptr, inp.wc_ids
    WF, FF = wts.w, wts.fb
    HIST, TGH, WIN, SPK, SPKN, SPKO = st.hist, st.target_hist, st.window_state, st.spk, st.spkn, st.spko
    U, I, REF = st.u, st.i_syn, st.ref
    ERR, TRE, TREF, AVG, ERRH = st.err, st.tr_err, st.tr_err_flt, st.avg, st.err_hist
    TRP, TRZ, SIGL, PSPL = st.tr_pre, st.tr_psp, st.sig_line, st.psp_line
    S, E, X, XMAX, SMAX, REC_T, REC_I = rec.s, rec.e, rec.x, rec.xmax, rec.smax, rec.rec_t, rec.rec_i
    EVR, EVJ, EVA, EVB = ev.r, ev.j, ev.a, ev.b
    MPREV, RUN_T, RUN_ZT, RUN_Z = trk.mprev, trk.run_t, trk.run_zt, trk.run_z
    NET_T, NET_A, NET_B, FL, UPK = trk.net_t, trk.net_a, trk.net_b, trk.fl, trk.upk
    QP, DP, GT = trk.qp, trk.dp, trk.gt
    G = g_off.shape[0] - 1
    C = c_pre.shape[0]
    NE = e_src.shape[0]
    p_in, p_tg = in_ptr.shape[0] - 1, tg_ptr.shape[0] - 1
    # flat views, made once (see the helpers above)
    Hf = HIST.ravel()
    TGf = TGH.ravel()
    ERRHf = ERRH.ravel()
    ERRHi = ERRHf.view(np.int32)
    SIGLf = SIGL.ravel()
    PSPLf = PSPL.ravel()
    Sf = S.ravel()
    Ef = E.ravel()
    Xf = X.ravel()
    Xi = Xf.view(np.int32)
    Si = Sf.view(np.int32)
    FL64 = FL.view(np.uint64)
    fp_saved = _stmxcsr()
    if X86:
        _ldmxcsr(fp_saved | np.uint32(FTZ_DAZ))
    rec_n = 0
    ev_n = 0
    ev_cap = EVR.shape[0]
    overflow = False
    d64 = np.float64(dec_rise)
    # constants of the per-step helpers, as plain tuples of scalars (see the helpers above)
    pc = (dec_rise, k_decay, psp_cut)
    k_mem, u_rest, thr, dec_syn, ref_steps = nc.k_mem, nc.u_rest, nc.thr, nc.dec_syn, nc.ref_steps
    linear, beta, u_cut = rc.linear, rc.beta, rc.u_cut
    tc = (k_rise, k_decay, dec_avg, dt, err_cut)

    # events: trace state at the chunk start, or a cut-off stretch that is already running.
    # NET (z~, z at the time NET_T) is the state whose free decay the events emitted so far add
    # up to, RUN the state of a running cut-off stretch; both float64 and exact, so that the
    # events of a stretch cancel to float64 rounding (not float32's)
    if not rec_x:
        for r in range(pre_runs.shape[0]):
            row = pre_runs[r, 3]
            for j in range(pre_runs[r, 0], pre_runs[r, 1]):
                p = np.float64(TRZ[j])
                z = np.float64(TRP[j])
                NET_T[j] = t0
                RUN_T[j] = t0
                if TRZ[j] > psp_cut:
                    MPREV[j] = 1
                    NET_A[j] = p
                    NET_B[j] = z
                    if row < n_steps and (p != 0 or z != 0):
                        EVR[ev_n] = row
                        EVJ[ev_n] = j
                        EVA[ev_n] = p
                        EVB[ev_n] = z
                        ev_n += 1
                else:
                    MPREV[j] = 0
                    NET_A[j] = 0.0
                    NET_B[j] = 0.0
                    RUN_ZT[j] = p
                    RUN_Z[j] = z

    # runs of neighbouring LIF groups for the error step: hidden ones (zeroed together) and output
    # ones with consecutive target ids (target - own together)
    ER = np.zeros((G, 3), np.int64)
    n_er = 0
    for g in range(G):
        if g_lif_index[g] < 0:
            continue
        q0, ng, tg = g_off[g] - nin, g_off[g + 1] - g_off[g], g_target[g]
        if (
            n_er > 0
            and ER[n_er - 1, 0] + ER[n_er - 1, 1] == q0
            and (
                (tg < 0 and ER[n_er - 1, 2] < 0)
                or (tg >= 0 and ER[n_er - 1, 2] >= 0 and ER[n_er - 1, 2] + ER[n_er - 1, 1] == tg)
            )
        ):
            ER[n_er - 1, 1] += ng
        else:
            ER[n_er, 0], ER[n_er, 1], ER[n_er, 2] = q0, ng, tg
            n_er += 1
    # runs of feedback edges from neighbouring src groups: FR[e] = (end of the run, first src post
    # index, src neurons) at the run's first edge e, (0, 0, 0) elsewhere
    FR = np.zeros((NE + 1, 3), np.int64)
    e = 0
    while e < NE:
        f = e + 1
        while f < NE and g_off[e_src[f]] == g_off[e_src[f - 1] + 1]:
            f += 1
        FR[e, 0], FR[e, 1], FR[e, 2] = f, g_off[e_src[e]] - nin, g_off[e_src[f - 1] + 1] - g_off[e_src[e]]
        e = f
    for k in range(n_steps):
        t = t0 + k
        slot = t & mask
        dslot = (t - delay) & mask  # spikes emitted `delay` steps ago arrive now (SPEC 1)

        # -- input and target replay on the loop grid (SPEC 3) --------------------------------
        hs = slot * N  # row offsets of this step's and the arriving spikes in Hf
        hd = dslot * N
        _zero(Hf, hs, nin)
        nsp = 0
        s = t % p_in
        for e in range(in_ptr[s], in_ptr[s + 1]):  # ids ascending within a step
            j = in_ids[e]
            if HIST[slot, j] == 0:
                SPK[slot, nsp] = j
                nsp += 1
            HIST[slot, j] += 1
        _zero(TGf, slot * nout, nout)
        s = t % p_tg
        for e in range(tg_ptr[s], tg_ptr[s + 1]):
            TGH[slot, tg_ids[e]] += 1

        # -- neuron groups (SPEC 1), each LIF group with its own constants ---------------------
        # one pass per run of LIF groups with equal constants: the neurons (SPEC 1), and per
        # neuron also plasticity steps 1 (error traces, err from the previous step) and 2
        # (squared-error average), 4a (the delay line of sigma'; record the delayed one) and
        # 4d's factor (record the error of active posts); see _post_pass
        for r in range(lif_runs.shape[0]):
            q0, li = lif_runs[r, 0], lif_runs[r, 2]
            lc = (k_mem[li], u_rest[li], thr[li], dec_syn[li], ref_steps[li])
            sc = (linear, thr[li], beta, u_cut)
            pos = t % lif_runs[r, 3]
            _post_pass(U, I, REF, Hf, hs + nin + q0, ERR, TRE, TREF, AVG, Sf, SIGLf, pos * NQ, Ef, k * NQ, q0,
                       lif_runs[r, 1] - q0, lc, tc, sc)  # fmt: skip
        if _any_i8(Hf, hs + nin, NQ):
            # the spiking neurons, ascending; 32 at a time skipped when none spiked (a scalar
            # scan of every neuron cost a quarter of the step on the Oxford network)
            for q0 in range(0, NQ, SCAN):
                if _any_i8(Hf, hs + nin + q0, min(SCAN, NQ - q0)):
                    for q in range(q0, min(q0 + SCAN, NQ)):
                        if HIST[slot, nin + q] != 0:
                            SPK[slot, nsp] = nin + q
                            nsp += 1
                            REC_T[rec_n] = t
                            REC_I[rec_n] = nin + q
                            rec_n += 1
        SPKN[slot] = nsp
        _group_starts(SPK, nsp, SPKO, slot, g_off)

        # -- spike delivery: I_syn += w for spikes emitted at t - delay; connections in creation
        #    order, each pre group's spikes ascending (the order of the float32 sums) -------------
        for c in range(C):
            gp, gq = c_pre[c], c_post[c]
            e0, e1 = SPKO[dslot, gp], SPKO[dslot, gp + 1]
            if e1 == e0:
                continue
            a = g_off[gp]
            q0 = g_off[gq] - nin
            npost = g_off[gq + 1] - g_off[gq]
            for e in range(e0, e1):
                j = SPK[dslot, e]
                for _ in range(HIST[dslot, j]):
                    _add_row(I, q0, WF, woff[c] + (j - a) * npost, npost)

        # -- 3. errors ----------------------------------------------------------------------------
        if has_win:
            # windows of opportunity (superspike.task.windows), as in the reference engine
            for i in range(nout):
                ERR[tg_post[i]] = np.float32(0.0)
            if t >= delay:
                s = (t - delay) % (wo_ptr.shape[0] - 1)
                for e in range(wc_ptr[s], wc_ptr[s + 1]):
                    i = wc_ids[e]
                    if WIN[i] == 1:
                        ERR[tg_post[i]] += np.float32(1.0)
                    WIN[i] = 0
                for e in range(wo_ptr[s], wo_ptr[s + 1]):
                    WIN[wo_ids[e]] = 1
                for i in range(nout):
                    own = HIST[dslot, nin + tg_post[i]]
                    if own > 0:
                        if WIN[i] == 0:
                            ERR[tg_post[i]] -= np.float32(own)
                        else:
                            WIN[i] = 2
        for r in range(n_er):
            q0, ng, tg = ER[r, 0], ER[r, 1], ER[r, 2]
            if tg < 0:
                _zero(ERR, q0, ng)  # hidden: the accumulator of the feedback below
            elif not has_win:  # output: target - own, both delayed
                _out_err(ERR, q0, TGf, dslot * nout + tg, Hf, hd + nin + q0, ng)
        lslot = (t - fb_lag) & mask
        e = 0
        while e < NE:
            # err of hidden group dst += F^T err(src)(t - lag), F = W_via^T (symmetric) or B
            # (fixed), [src, dst] (SPEC 2.2), edges in order. Only nonzero src errors are added,
            # in ascending order: the same float32 sums as the reference's dense loop. A run of
            # edges from neighbouring src groups (an ensemble's output layers) whose src errors
            # are all zero is skipped at once
            if FR[e, 0] > e and not _any_bits(ERRHi, lslot * NQ + FR[e, 1], FR[e, 2]):
                e = FR[e, 0]
                continue
            src, dst = e_src[e], e_dst[e]
            u0, nup = g_off[src] - nin, g_off[src + 1] - g_off[src]
            q0, nlo = g_off[dst] - nin, g_off[dst + 1] - g_off[dst]
            for m0 in range(0, nup, SCAN):  # as above: skip 32 src neurons at a time
                if _any_bits(ERRHi, lslot * NQ + u0 + m0, min(SCAN, nup - m0)):
                    for m in range(m0, min(m0 + SCAN, nup)):
                        v = ERRH[lslot, u0 + m]
                        if v != 0:
                            _add_row_scaled(ERR, q0, FF, foff[e] + m * nlo, nlo, v)
            e += 1
        _copy_f(ERRHf, slot * NQ, ERR, NQ)

        # -- 4a. delay lines; record the delayed series; presynaptic events ------------------------
        if rec_x:
            for r in range(pre_runs.shape[0]):
                p0, p1, a, dl = pre_runs[r, 0], pre_runs[r, 1], pre_runs[r, 2], pre_runs[r, 3]
                pos = t % dl
                # z (step 1, delayed spikes), delay line of z~ (4a), z~ (6) in one pass; the
                # traces of one presynaptic neuron depend on nothing else
                _pre_pass_x(TRP, TRZ, Hf, hd + a, PSPLf, pos * NP + p0, Xf, k * NP + p0, p0, p1 - p0, pc)
            if k < k_old:
                for c in range(C):
                    if c_plastic[c] != 0:
                        p0, p1, gq = prange[c, 0], prange[c, 1], c_post[c]
                        XMAX[k, c] = _max_nonneg(Xi, k * NP + p0, p1 - p0)
                        SMAX[k, c] = _max_nonneg(Si, k * NQ + g_off[gq] - nin, g_off[gq + 1] - g_off[gq])
        for r in range(0 if rec_x else pre_runs.shape[0]):
            # a run of pre-space segments (engine.fast): pre j is global index a + j - p0
            p0, p1, a, dl, fo = pre_runs[r, 0], pre_runs[r, 1], pre_runs[r, 2], pre_runs[r, 3], pre_runs[r, 4]
            pos = t % dl
            if not _pre_pass(TRP, TRZ, Hf, hd + a, PSPLf, pos * NP + p0, MPREV, FL, fo, p0, p1 - p0, pc):
                continue
            row = k + dl
            # the flagged neurons, found eight flags at a time
            nj = 0
            for wd in range(fo // 8, (fo + p1 - p0 + 7) // 8):
                if FL64[wd] != 0:
                    for bt in range(8):
                        i = wd * 8 + bt
                        if FL[i] != 0:
                            UPK[nj] = p0 + i - fo
                            nj += 1
            for jj in range(nj):
                j = UPK[jj]
                m = 1 if PSPL[pos, j] > psp_cut else 0
                cnt = HIST[dslot, a + j - p0]
                if m:
                    if MPREV[j] == 0:
                        # a cut-off stretch ended at t - 1: restore the free decay from t on
                        lr = t - RUN_T[j]
                        gv = GT[lr - 1] if lr > 0 else 0.0
                        av = QP[lr] * RUN_ZT[j] + d64 * gv * RUN_Z[j]
                        bv = DP[lr] * RUN_Z[j]
                        NET_A[j] = av
                        NET_B[j] = bv
                        NET_T[j] = t
                        if row < n_steps:
                            if ev_n < ev_cap:
                                EVR[ev_n] = row
                                EVJ[ev_n] = j
                                EVA[ev_n] = av
                                EVB[ev_n] = bv
                                ev_n += 1
                            else:
                                overflow = True
                    if cnt:
                        lr = t - NET_T[j]
                        gv = GT[lr - 1] if lr > 0 else 0.0
                        av = QP[lr] * NET_A[j] + d64 * gv * NET_B[j]
                        NET_B[j] = DP[lr] * NET_B[j] + cnt
                        NET_A[j] = av
                        NET_T[j] = t
                        if row < n_steps:
                            if ev_n < ev_cap:
                                EVR[ev_n] = row
                                EVJ[ev_n] = j
                                EVA[ev_n] = 0.0
                                EVB[ev_n] = cnt
                                ev_n += 1
                            else:
                                overflow = True
                else:
                    if MPREV[j]:
                        # z~ pushed now is at or below the cut-off: cancel the free decay of
                        # everything emitted so far (exactly), and keep it as the stretch's state
                        lr = t - NET_T[j]
                        gv = GT[lr - 1] if lr > 0 else 0.0
                        av = QP[lr] * NET_A[j] + d64 * gv * NET_B[j]
                        bv = DP[lr] * NET_B[j]
                        if row < n_steps:
                            if ev_n < ev_cap:
                                EVR[ev_n] = row
                                EVJ[ev_n] = j
                                EVA[ev_n] = -av
                                EVB[ev_n] = -bv
                                ev_n += 1
                            else:
                                overflow = True
                        RUN_T[j] = t
                        RUN_ZT[j] = av
                        RUN_Z[j] = bv
                        NET_A[j] = 0.0
                        NET_B[j] = 0.0
                        NET_T[j] = t
                    if cnt:
                        # a spike arriving inside a stretch joins its free decay
                        lr = t - RUN_T[j]
                        gv = GT[lr - 1] if lr > 0 else 0.0
                        av = QP[lr] * RUN_ZT[j] + d64 * gv * RUN_Z[j]
                        RUN_Z[j] = DP[lr] * RUN_Z[j] + cnt
                        RUN_ZT[j] = av
                        RUN_T[j] = t
                MPREV[j] = m

    _ldmxcsr(fp_saved)
    return rec_n, (-1 if overflow else ev_n)


@njit(cache=True, error_model="numpy", nogil=True)
def backward(rec, n, sk, alpha, beta, a0, a1):
    """Backward-filter the errors of a chunk ("gemm"); ``S <- S * Et`` in place (rows 0..n-1).

    For every post column: ``Et(k) = sum_{m>=k} G(m-k) E(m)`` with G the response of el_flt to a
    unit coincidence (SPEC 5), via ``Bd(k) = E(k) + d Bd(k+1)``, ``Et(k) = q Et(k+1) + kk Bd(k)``
    (float64). ``alpha = sum_k E(k) q^(k+1)`` and ``beta = Et(0)`` weigh the eligibility carried
    into the chunk. Columns [a0, a1); releases the GIL (column ranges can run in threads).
    """
    S, E = rec.s, rec.e
    q_f, d_f, k_f = sk.q, sk.d, sk.kk
    if a1 > a0:
        w = a1 - a0
        bd = np.zeros(w)
        et = np.zeros(w)
        bq = np.zeros(w)
        for k in range(n - 1, -1, -1):
            for i in range(w):
                e = np.float64(E[k, a0 + i])
                bd[i] = e + d_f * bd[i]
                et[i] = q_f * et[i] + k_f * bd[i]
                bq[i] = q_f * (e + bq[i])
                S[k, a0 + i] = np.float32(S[k, a0 + i] * et[i])
        for i in range(w):
            alpha[a0 + i] = bq[i]
            beta[a0 + i] = et[i]


@njit(cache=True, error_model="numpy", nogil=True)
def sweep(rec, n, sk, tab, blocks, topo, lay, ev, sums, xl):
    """The chunk's plasticity from per-neuron series and presynaptic events (SPEC 5), backwards.

    For each post column i (``blocks``: rows of (first, end, lane) post index, a block within one
    *lane*: neighbouring LIF groups with the same delay line, such as an ensemble's copies of a
    layer), over rows k = n-1..0: ``Et(k) = sum_{m>=k} G(m-k) E(m)`` as ``c (q Eq(k) - d Ed(k))``
    with ``Eq(k) = E(k) + q Eq(k+1)``, ``Ed`` likewise and ``c = kk/(q-d)``. Three right-hand
    factors have their discounted sums ``Rq(k) = y(k) + q Rq(k+1)`` and ``Rd`` taken: ``y = S Et``
    (el_sum), ``u = S d^(n-k)`` (el, ``tab.dk``) and ``z = S G(n-1-k)`` (el_flt, ``tab.gk``). For y
    they are carried as such (r0, r1). For u and z, whose weights are powers, three sums of S
    carry them all, with fewer operations per row: ``P(k) = S(k) + (q/d) P(k+1)``, ``Q(k) = S(k) +
    (d/q) Q(k+1)`` and ``C(k) = S(k) + C(k+1)`` give, with ``dk = d^(n-k)`` and ``qk = q^(n-k)``
    (``tab.qk``), ``Rq(u) = dk P``, ``Rd(u) = dk C``, ``Rq(z) = c (qk C - dk P)``, ``Rd(z) = c (qk
    Q - dk C)``. P grows by q/d per row (Q by d/q, should d exceed q); the engine keeps chunks
    short enough for float64 (:data:`P_GROWTH_LIMIT`).

    An event (row r, pre j, a, b) adds ``a Rq(r) + b d c (Rq(r) - Rd(r))`` (= sum over k >= r of
    its presynaptic trace times the factor) to row j of the M (PD, PG) of every plastic connection
    into the block's groups that reads j's segment, on the block's columns of its post group:
    the column recurrences are shared by all of them (``ev``: sorted by lane, then row; lane l's are
    ``[ev.lo[l], ev.hi[l])``). Rows without events of the lane are advanced up to four at a time
    (:func:`_sweep_rows`; their states are loaded and stored once): each column's arithmetic is
    the same whichever rows are grouped, so a column's results do not depend on the block it is
    swept in. Rows k < D take x from the delay line, ``xl[k, pre]`` (dense). ``sums.alpha = q
    Eq(0)``, ``sums.beta = Et(0)``. All float64. The block's columns of M, PD and PG are zeroed
    here. Releases the GIL: blocks of columns can run in threads.
    """
    S, E = rec.s, rec.e
    q_f, d_f, cq, dc = sk.q, sk.d, sk.cq, sk.dc
    kc = (sk.q, sk.d, sk.cqq, sk.cqd, sk.rqd, sk.rdq)  # the row recurrences' constants, a plain tuple
    DK, GK, QK = tab.dk, tab.gk, tab.qk
    M, PD, PG = sums.m, sums.pd, sums.pg
    EVR, EVJ, EVA, EVB, ev_lo, ev_hi = ev.r, ev.j, ev.a, ev.b, ev.lo, ev.hi
    g_off, c_post, c_plastic, g_dlen = topo.g_off, topo.c_post, topo.c_plastic, topo.g_dlen
    nin, prange, moff = lay.nin, lay.prange, lay.moff
    C = c_post.shape[0]
    NQ = S.shape[1]
    Sf = S.ravel()
    Ef = E.ravel()
    # the segment of each pre index (jc) and of each connection (cf), named by its first
    # connection; per block, the block's connections reading a segment are a chain:
    # head[segment], then chain[u]
    jc = np.empty(lay.npre, np.int64)
    for c in range(C - 1, -1, -1):
        if c_plastic[c] != 0:
            for j in range(prange[c, 0], prange[c, 1]):
                jc[j] = c
    cf = np.arange(C)
    for c in range(C):
        if prange[c, 1] > prange[c, 0]:
            cf[c] = jc[prange[c, 0]]
    head = np.full(C, -1, np.int64)
    chain = np.empty(C, np.int64)
    cs = np.empty(C, np.int64)
    c_lo = np.empty(C, np.int64)  # per connection: the block's first and end column of its post group
    c_hi = np.empty(C, np.int64)
    for b in range(blocks.shape[0]):
        i0, i1, lane = blocks[b, 0], blocks[b, 1], blocks[b, 2]
        w = i1 - i0
        # the block's groups (one lane: one delay line length) and the plastic connections into them
        g = 0
        while g_off[g + 1] - nin <= i0:
            g += 1
        g_end = g
        while g_end < g_off.shape[0] - 1 and g_off[g_end] - nin < i1:
            g_end += 1
        dmax = g_dlen[g]
        nc = 0
        for c in range(C):
            gc = c_post[c]
            if c_plastic[c] != 0 and gc >= g and gc < g_end:
                cs[nc] = c
                nc += 1
                c_lo[c] = max(i0, g_off[gc] - nin)
                c_hi[c] = min(i1, g_off[gc + 1] - nin)
        if nc == 0:
            continue
        for u in range(nc - 1, -1, -1):
            chain[u] = head[cf[cs[u]]]
            head[cf[cs[u]]] = u
        col = np.zeros((10, w))
        for u in range(nc):
            c = cs[u]
            # this block's columns of the sums start at zero (here, in the block's thread)
            qa = g_off[c_post[c]] - nin
            npost = g_off[c_post[c] + 1] - g_off[c_post[c]]
            for j in range(prange[c, 1] - prange[c, 0]):
                o = moff[c] + j * npost + (c_lo[c] - qa)
                _zero(M, o, c_hi[c] - c_lo[c])
                _zero(PD, o, c_hi[c] - c_lo[c])
                _zero(PG, o, c_hi[c] - c_lo[c])
        lo = ev_lo[lane]
        ep = ev_hi[lane] - 1  # events newest first
        k = n - 1
        while k >= 0:
            # rows k, k-1, ... with no events (and not fed by the delay line) are advanced
            # together, four or two at a time: their states are loaded and stored once (the
            # stores bound this loop); events are applied at the lowest row of the group
            nxt = EVR[ep] if ep >= lo else -1
            o = U64(k * NQ + i0)
            if nxt <= k - 3 and k - 3 >= dmax:
                _sweep_rows(Ef, Sf, (o, o - U64(NQ), o - U64(2 * NQ), o - U64(3 * NQ)), w, col, kc)
                k -= 3
            elif nxt <= k - 1 and k - 1 >= dmax:
                _sweep_rows(Ef, Sf, (o, o - U64(NQ)), w, col, kc)
                k -= 1
            elif k >= dmax:
                # a row with events: alone (the tuple kernel, 2.5 times faster than _sweep_row)
                _sweep_rows(Ef, Sf, (o,), w, col, kc)
            else:  # a row fed by the delay line also needs y
                _sweep_row(Ef, Sf, o, w, col, kc)
            dk, qk = DK[k], QK[k]
            if k < dmax:
                # a row fed by the delay line: x pushed in the previous chunk, this row only
                for i in range(w):
                    v = np.float64(S[k, i0 + i])
                    col[YD, i] = v * dk
                    col[YG, i] = v * GK[k]
                for u in range(nc):
                    c = cs[u]
                    p0 = prange[c, 0]
                    qa = g_off[c_post[c]] - nin
                    npost = g_off[c_post[c] + 1] - g_off[c_post[c]]
                    for j in range(p0, prange[c, 1]):
                        x = xl[k, j]
                        if x != 0.0:
                            o2 = moff[c] + (j - p0) * npost + (c_lo[c] - qa)
                            _add_x(M, PD, PG, o2, x, col, c_lo[c] - i0, c_hi[c] - c_lo[c])
            while ep >= lo and EVR[ep] == k:
                # a Rq + bb (Rq - Rd) = A Rq - B Rd per factor, Rq and Rd of u and z as above, to
                # every connection of the block that reads the event's segment (the lane's other
                # blocks take the others)
                j = EVJ[ep]
                u = head[jc[j]]
                if u >= 0:
                    bb = EVB[ep] * dc
                    A = EVA[ep] + bb
                    coef = (A, -bb, A * dk, -bb * dk, cq * (A * qk + bb * dk), -A * cq * dk, -bb * cq * qk)
                    while u >= 0:
                        c = cs[u]
                        gc = c_post[c]
                        qa = g_off[gc] - nin
                        npost = g_off[gc + 1] - g_off[gc]
                        o2 = moff[c] + (j - prange[c, 0]) * npost + (c_lo[c] - qa)
                        _apply_event(M, PD, PG, o2, coef, col, c_lo[c] - i0, c_hi[c] - c_lo[c])
                        u = chain[u]
                ep -= 1
            k -= 1
        for u in range(nc):
            head[cf[cs[u]]] = -1
        for i in range(w):
            sums.alpha[i0 + i] = q_f * col[EQ, i]
            sums.beta[i0 + i] = cq * (q_f * col[EQ, i] - d_f * col[ED, i])


# the sweep's helpers are float64 sums (not part of the bit-exact forward): FMA contraction is fine
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sweep_row(Ef, Sf, off, w, col, kc):
    # one row, also storing y = S Et (a row fed by the delay line)
    off = U64(off)
    for i in range(U64(w)):
        a, b, v, x0, x1, p, qs, cs = _row_step(
            np.float64(Ef[off + i]), np.float64(Sf[off + i]),
            col[EQ, i], col[ED, i], col[R0, i], col[R1, i], col[RP, i], col[RQ, i], col[RC, i], kc,
        )  # fmt: skip
        col[EQ, i], col[ED, i], col[Y, i], col[R0, i], col[R1, i] = a, b, v, x0, x1
        col[RP, i], col[RQ, i], col[RC, i] = p, qs, cs


@njit(inline="always", fastmath={"contract"})
def _row_step(e, s, a, bd, x0, x1, p, qs, cs, kc):
    # one row of the sweep's recurrences for one column: Eq, Ed, y = S Et (el_sum's factor), its
    # discounted sums r0, r1, and the sums P, Q, C of S (see sweep); kc = (q, d, cq q, cq d, q/d, d/q)
    q_f, d_f, cqq, cqd, rqd, rdq = kc
    a = e + q_f * a
    bd = e + d_f * bd
    v = s * (cqq * a - cqd * bd)
    return a, bd, v, v + q_f * x0, v + d_f * x1, s + rqd * p, s + rdq * qs, s + cs


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sweep_rows(Ef, Sf, offs, w, col, kc):
    # several rows of _sweep_row (offsets ``offs``, a tuple, top row first), states loaded and
    # stored once; the tuple's length is a compile-time constant, so the row loop is unrolled and
    # the column loop vectorised (one compiled version per length used: 1, 2 and 4)
    for i in range(U64(w)):
        a, b, x0, x1 = col[EQ, i], col[ED, i], col[R0, i], col[R1, i]
        p, qs, cs = col[RP, i], col[RQ, i], col[RC, i]
        for r in range(len(offs)):
            o = offs[r]
            a, b, _, x0, x1, p, qs, cs = _row_step(
                np.float64(Ef[o + i]), np.float64(Sf[o + i]), a, b, x0, x1, p, qs, cs, kc
            )
        col[EQ, i], col[ED, i], col[R0, i], col[R1, i] = a, b, x0, x1
        col[RP, i], col[RQ, i], col[RC, i] = p, qs, cs


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _add_x(M, PD, PG, base, x, col, oc, n):
    # a delay-line row: M += x y, PD += x yd, PG += x yg (the block's columns oc, oc + 1, ...)
    base, oc = U64(base), U64(oc)
    for i in range(U64(n)):
        M[base + i] += x * col[Y, oc + i]
        PD[base + i] += x * col[YD, oc + i]
        PG[base + i] += x * col[YG, oc + i]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _apply_event(M, PD, PG, base, coef, col, oc, n):
    # M += m0 r0 + m1 r1; PD += d0 P + d1 C; PG += gc C + gp P + gq Q (coefficients: see sweep),
    # on the block's columns oc, oc + 1, ...
    m0, m1, d0, d1, gc, gp, gq = coef
    base, oc = U64(base), U64(oc)
    for i in range(U64(n)):
        M[base + i] += m0 * col[R0, oc + i] + m1 * col[R1, oc + i]
        PD[base + i] += d0 * col[RP, oc + i] + d1 * col[RC, oc + i]
        PG[base + i] += gc * col[RC, oc + i] + gp * col[RP, oc + i] + gq * col[RQ, oc + i]


@njit(cache=True, error_model="numpy", nogil=True)
def synapse_block(syn, sums, rs, dn, qn, gn1, blocks, topo, lay):
    """:func:`synapse_update` for every plastic connection into the post columns of ``blocks``
    (rows of (first, end, lane), as :func:`sweep` takes them) in one call: ``syn`` holds the
    fields of all plastic connections in one flat array each, connection c's [pre, post]
    synapses at ``lay.moff[c]`` as in ``sums`` (an ensemble's state, engine.fast.flatten_state);
    ``rs`` the regulariser sums (post space). The same arithmetic per synapse as
    :func:`synapse_update`. Releases the GIL."""
    EL, ELF, ELS, W = syn.el, syn.el_flt, syn.el_sum, syn.w
    M, PD, PG, alpha, beta = sums.m, sums.pd, sums.pg, sums.alpha, sums.beta
    g_off, c_post, c_plastic = topo.g_off, topo.c_post, topo.c_plastic
    nin, prange, moff = lay.nin, lay.prange, lay.moff
    for b in range(blocks.shape[0]):
        i0, i1 = blocks[b, 0], blocks[b, 1]
        for c in range(c_post.shape[0]):
            if c_plastic[c] == 0:
                continue
            g = c_post[c]
            qa, qb = g_off[g] - nin, g_off[g + 1] - nin
            lo, hi = max(i0, qa), min(i1, qb)
            if hi <= lo:
                continue
            npost = qb - qa
            for j in range(prange[c, 1] - prange[c, 0]):
                o = moff[c] + j * npost - qa
                for i in range(lo, hi):
                    e0 = np.float64(EL[o + i])
                    f0 = np.float64(ELF[o + i])
                    g_ = np.float64(M[o + i]) + f0 * alpha[i] + e0 * beta[i] - np.float64(W[o + i]) * rs[i]
                    ELS[o + i] = np.float32(np.float64(ELS[o + i]) + g_)
                    EL[o + i] = np.float32(dn * e0 + PD[o + i])
                    ELF[o + i] = np.float32(qn * f0 + gn1 * e0 + PG[o + i])


@njit(cache=True, error_model="numpy", nogil=True)
def synapse_update(syn, terms, rows, cols):
    """Per synapse: el_sum += M + el_flt alpha + el beta - w rs; then the end-of-chunk el, el_flt.

    ``terms`` (:class:`Terms`): ``m`` the chunk's product X^T (S Et); ``pd``/``pg`` the products
    giving the chunk's own contribution to el/el_flt; coefficients as in SPEC 5 (see
    engine.fast). The synapses of pre rows ``rows`` = (first, end) and post columns ``cols`` of
    one connection (``syn``: its arrays; the per-post factors are the connection's); releases
    the GIL.
    """
    EL, ELF, ELS, W = syn.el, syn.el_flt, syn.el_sum, syn.w
    M, PD, PG, alpha, beta, rs = terms.m, terms.pd, terms.pg, terms.alpha, terms.beta, terms.rs
    dn, qn, gn1 = terms.dn, terms.qn, terms.gn1
    for j in range(U64(rows[0]), U64(rows[1])):
        for i in range(U64(cols[0]), U64(cols[1])):
            e0 = np.float64(EL[j, i])
            f0 = np.float64(ELF[j, i])
            g = np.float64(M[j, i]) + f0 * alpha[i] + e0 * beta[i] - np.float64(W[j, i]) * rs[i]
            ELS[j, i] = np.float32(np.float64(ELS[j, i]) + g)
            EL[j, i] = np.float32(dn * e0 + PD[j, i])
            ELF[j, i] = np.float32(qn * f0 + gn1 * e0 + PG[j, i])
