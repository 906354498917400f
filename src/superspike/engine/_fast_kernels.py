"""Compiled kernels of the fast engine (SPEC 5). See :mod:`superspike.engine.fast` for the maths.

Layout: all groups share one global neuron index (input first, then hidden layers, output last).
The *pre space* holds the neurons of groups 0..L-1 (the presynaptic side of connections 0..L-1;
pre index = global index), the *post space* those of groups 1..L (post index = global - nin).
Per-neuron state of connection c therefore lives in a contiguous segment of a flat array: its
presynaptic traces at [goff[c], goff[c+1]) of the pre space, its error traces at
[goff[c+1] - nin, goff[c+2] - nin) of the post space.
"""

from __future__ import annotations

import platform

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


@njit(cache=True, error_model="numpy")
def rebuild_spike_lists(HIST, SPK, SPKN):
    """Distinct emitters of every ring slot, ascending global index (delivery order, SPEC 1)."""
    R, N = HIST.shape
    for r in range(R):
        n = 0
        for j in range(N):
            if HIST[r, j] != 0:
                SPK[r, n] = j
                n += 1
        SPKN[r] = n


# -- loops of the forward kernel over contiguous runs of neurons. They take flat arrays and
#    unsigned offsets instead of slices: a slice made inside the step loop costs two atomic
#    reference-count operations (they were half the kernel's time), and unsigned 1-D indices
#    spare the negative-index checks, so LLVM vectorises the loops (element-wise float32
#    arithmetic gives the same bits vectorised or not). ---------------------------------------


@njit(cache=True, error_model="numpy")
def _lif(U, I, REF, H, oh, n, k_mem, u_rest, thr, ref_steps, dec_syn):
    # SPEC 1, the reference's order: membrane, threshold/refractoriness, current decay
    oh = U64(oh)
    for q in range(U64(n)):
        uq = U[q] + k_mem * ((u_rest - U[q]) + I[q])
        r = REF[q]
        sp = (r == 0) & (uq > thr)
        U[q] = u_rest if (sp | (r > 0)) else uq
        REF[q] = ref_steps if sp else (r - 1 if r > 0 else r)
        I[q] = I[q] * dec_syn
        H[oh + q] = 1 if sp else 0


@njit(cache=True, error_model="numpy")
def _any_i8(H, o, n):
    o = U64(o)
    a = np.int8(0)
    for q in range(U64(n)):
        a |= H[o + q]
    return a != 0


@njit(cache=True, error_model="numpy")
def _zero(A, o, n):
    # A[o:o+n] = 0, any dtype (compiled once per array type)
    o = U64(o)
    for q in range(U64(n)):
        A[o + q] = 0


@njit(cache=True, error_model="numpy")
def _add_row(I, oi, W, ow, n):
    oi, ow = U64(oi), U64(ow)
    for i in range(U64(n)):
        I[oi + i] = I[oi + i] + W[ow + i]


@njit(cache=True, error_model="numpy")
def _add_row_scaled(A, oa, W, ow, n, v):
    oa, ow = U64(oa), U64(ow)
    for i in range(U64(n)):
        A[oa + i] += W[ow + i] * v


@njit(cache=True, error_model="numpy")
def _err_traces(ERR, TRE, TREF, n, k_rise, k_decay):
    for q in range(U64(n)):
        TRE[q] = TRE[q] + k_rise * (ERR[q] - TRE[q])
        TREF[q] = TREF[q] + k_decay * (TRE[q] - TREF[q])


@njit(cache=True, error_model="numpy")
def _avg(AVG, TREF, n, dec_avg, dt):
    for q in range(U64(n)):
        AVG[q] = AVG[q] * dec_avg + dt * TREF[q] * TREF[q]


@njit(cache=True, error_model="numpy")
def _out_err(ERR, oe, TG, ot, H, oh, n):
    oe, ot, oh = U64(oe), U64(ot), U64(oh)
    for i in range(U64(n)):
        ERR[oe + i] = np.float32(TG[ot + i] - H[oh + i])


@njit(cache=True, error_model="numpy")
def _any_bits(Ai, o, n):
    # any nonzero float32, via an int32 view (a -0.0 counts; its products change no sum)
    o = U64(o)
    a = np.int32(0)
    for q in range(U64(n)):
        a |= Ai[o + q]
    return a != 0


@njit(cache=True, error_model="numpy")
def _copy_f(A, o, B, n):
    o = U64(o)
    for i in range(U64(n)):
        A[o + i] = B[i]


@njit(cache=True, error_model="numpy")
def _sig_line(S, os, L, ol, U, o, n, linear, thr, beta, u_cut):
    os, ol, o = U64(os), U64(ol), U64(o)
    for q in range(U64(n)):
        S[os + q] = L[ol + q]
        L[ol + q] = np.float32(1.0) if linear else surrogate(U[o + q], thr, beta, u_cut)


@njit(cache=True, error_model="numpy")
def _pre_pass(TRP, TRZ, H, oh, L, ol, MPREV, FL, of, o, n, dec_rise, k_decay, psp_cut):
    # one presynaptic neuron at a time: z (step 1, delayed spikes), push z~ into the delay line
    # (4a), z~ (6). FL flags the neurons with a spike arriving or whose pushed z~ crossed the PSP
    # cut-off (4b) since the last step; returns whether any is flagged
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


@njit(cache=True, error_model="numpy")
def _pre_pass_x(TRP, TRZ, H, oh, L, ol, X, ox, o, n, dec_rise, k_decay, psp_cut):
    # as _pre_pass, recording the delayed z~ with the cut-off applied (the "gemm" method)
    oh, ol, ox, o = U64(oh), U64(ol), U64(ox), U64(o)
    for i in range(U64(n)):
        z = (TRP[o + i] + H[oh + i]) * dec_rise
        TRP[o + i] = z
        pd = L[ol + i]
        X[ox + i] = pd if pd > psp_cut else np.float32(0.0)
        p = TRZ[o + i]
        L[ol + i] = p
        TRZ[o + i] = p + k_decay * (z - p)


@njit(cache=True, error_model="numpy")
def _max_nonneg(Ai, o, n):
    # max of non-negative float32 values via their int32 bit patterns (same order; vectorises)
    o = U64(o)
    m = np.int32(0)
    for j in range(U64(n)):
        v = Ai[o + j]
        m = v if v > m else m
    return m


@njit(cache=True, error_model="numpy")
def _err_row(E, oe, TREF, n, err_cut):
    oe = U64(oe)
    for q in range(U64(n)):
        v = TREF[q]
        E[oe + q] = v if abs(v) >= err_cut else np.float32(0.0)


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
def regulariser(E, n, t0, REC_T, REC_I, nrec, nin, HET, RS, cf, i0, i1):
    """The heterosynaptic regulariser (SPEC 2.3) of post columns [i0, i1) (hidden) over a chunk.

    Advances the activity trace ``h <- (h + own spikes) dec_het`` with the chunk's spikes
    (``REC_T``/``REC_I``: absolute step and global index, in step order, as the forward kernel
    records them) and adds ``sum_k rho h(k)^a`` over the steps where the post's error is active
    (``E``, the forward kernel's error series) to ``RS`` (float64; float32 partial sums of
    REG_FLUSH steps, as the per-step loop of the reference engine sums in float32). The float32
    arithmetic is the reference's, with denormals flushed to zero as in :func:`forward` (h of a
    silent neuron otherwise sticks at a denormal value, where x86 arithmetic is slow: twice the
    time of this kernel). Run after the forward kernel, in the threads of the sums, it is off the
    serial forward path. Releases the GIL.
    """
    err_cut, rho, reg_a, dec_het = cf[12], cf[13], cf[14], cf[15]
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
                HET[g - nin] = HET[g - nin] + np.float32(1.0)
            e += 1
        _scale(HET, i0, w, dec_het)
        if int_exp:
            _reg(R32, HET, i0, Ef, k * NQ + i0, w, always, rho, ia)
        else:
            _reg_pow(R32, HET, i0, Ef, k * NQ + i0, w, always, rho, reg_a)
        if (k + 1) % REG_FLUSH == 0 or k == n - 1:
            _flush(RS, i0, R32, w)
    _ldmxcsr(fp_saved)


@njit(cache=True, error_model="numpy")
def forward(
    t0, n_steps, cf, ci, L, nin, goff, grp, dlen,
    in_ptr, in_ids, tg_ptr, tg_ids,
    HIST, TGH, SPK, SPKN,
    U, I, REF,
    WF, woff, FF, foff,
    ERR, TRE, TREF, AVG, ERRH, TRP, TRZ, SIGL, PSPL,
    S, E, UPK,
    rec_x, X, k_old, XMAX, SMAX,
    QP, DP, GT, EVR, EVJ, EVA, EVB, MPREV, RUN_T, RUN_ZT, RUN_Z, NET_T, NET_A, NET_B, FL, fl_off,
    REC_T, REC_I,
    has_win, wo_ptr, wo_ids, wc_ptr, wc_ids, WIN,
):  # fmt: skip
    """Forward dynamics of ``n_steps`` steps with fixed weights; record the per-neuron series.

    Reproduces the neuron, trace, error and delay-line arithmetic of the reference engine
    (SPEC 1, 2.1 steps 1-3, 4a, 6) operation for operation in float32, so spikes are identical
    (denormals are flushed to zero, see the top of this module). Instead of steps 4b-4d it
    records, for chunk step k: ``S[k, post]`` the delayed sigma'(U), ``E[k, post]`` tr_err_flt
    where |tr_err_flt| >= the error cut-off (else 0). The regulariser (its trace h and the sum of
    rho h^a) is left to :func:`regulariser`, which needs only E and the spikes.

    The presynaptic factor x_j(k) (delayed z~ with the PSP cut-off) is recorded either densely,
    ``X[k, pre]`` (``rec_x``; with the row maxima ``XMAX``/``SMAX`` of steps k < ``k_old``), or
    as events (row, pre, a, b) meaning "from chunk row ``row`` on, x_j gains the free decay of
    z~ = a, z = b" (see engine.fast): the trace state at the chunk start, every spike arrival
    (b = count), and, around each stretch where z~ is at or below the cut-off, a negative event
    cancelling the decay there and a positive one restoring it after (``QP``, ``DP``, ``GT``:
    q^m, d^m, G(m) tables). Returns (spikes recorded in ``REC_T``/``REC_I`` as (step, global
    index), events recorded; -1 if the event buffer was too small).
    """
    u_rest, thr, k_mem, dec_syn = cf[0], cf[1], cf[2], cf[3]
    dec_rise, k_rise, k_decay, dec_avg = cf[4], cf[5], cf[6], cf[7]
    dt, beta, u_cut, psp_cut, err_cut = cf[8], cf[9], cf[10], cf[11], cf[12]
    delay, ref_steps, fb_lag = ci[1], ci[2], ci[3]
    linear, mask = ci[6] == 1, ci[7]
    ref_steps32 = np.int32(ref_steps)
    p_in, p_tg = in_ptr.shape[0] - 1, tg_ptr.shape[0] - 1
    N = goff[L + 1]
    NQ = N - nin
    nout = N - goff[L]
    o_out = goff[L] - nin  # post index of the first output neuron
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
    NP = goff[L]
    fp_saved = _stmxcsr()
    if X86:
        _ldmxcsr(fp_saved | np.uint32(FTZ_DAZ))
    rec_n = 0
    ev_n = 0
    ev_cap = EVR.shape[0]
    overflow = False
    d64 = np.float64(dec_rise)

    # events: trace state at the chunk start, or a cut-off stretch that is already running.
    # NET (z~, z at the time NET_T) is the state whose free decay the events emitted so far add
    # up to, RUN the state of a running cut-off stretch; both float64 and exact, so that the
    # events of a stretch cancel to float64 rounding (not float32's)
    if not rec_x:
        for c in range(L):
            row = dlen[c]
            for j in range(goff[c], goff[c + 1]):
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
        for e in range(in_ptr[s], in_ptr[s + 1]):
            j = in_ids[e]
            if HIST[slot, j] == 0:
                SPK[slot, nsp] = j
                nsp += 1
            HIST[slot, j] += 1
        _zero(TGf, slot * nout, nout)
        s = t % p_tg
        for e in range(tg_ptr[s], tg_ptr[s + 1]):
            TGH[slot, tg_ids[e]] += 1

        # -- neuron groups (SPEC 1), all LIF groups at once -------------------------------------
        _lif(U, I, REF, Hf, hs + nin, NQ, k_mem, u_rest, thr, ref_steps32, dec_syn)
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

        # -- spike delivery: I_syn += w for spikes emitted at t - delay, ascending pre id -----
        for e in range(SPKN[dslot]):
            j = SPK[dslot, e]
            c = grp[j]
            if c == L:
                continue
            npost = goff[c + 2] - goff[c + 1]
            for _ in range(HIST[dslot, j]):
                _add_row(I, goff[c + 1] - nin, WF, woff[c] + (j - goff[c]) * npost, npost)

        # -- plasticity step 1: error traces (z: in the presynaptic pass below) ------------------
        _err_traces(ERR, TRE, TREF, NQ, k_rise, k_decay)  # err from the previous step

        # -- 2. squared-error average -------------------------------------------------------------
        _avg(AVG, TREF, NQ, dec_avg, dt)

        # -- 3. errors ----------------------------------------------------------------------------
        if has_win:
            # windows of opportunity (superspike.task.windows), as in the reference engine
            for i in range(nout):
                ERR[o_out + i] = np.float32(0.0)
            if t >= delay:
                s = (t - delay) % (wo_ptr.shape[0] - 1)
                for e in range(wc_ptr[s], wc_ptr[s + 1]):
                    i = wc_ids[e]
                    if WIN[i] == 1:
                        ERR[o_out + i] += np.float32(1.0)
                    WIN[i] = 0
                for e in range(wo_ptr[s], wo_ptr[s + 1]):
                    WIN[wo_ids[e]] = 1
                for i in range(nout):
                    own = HIST[dslot, goff[L] + i]
                    if own > 0:
                        if WIN[i] == 0:
                            ERR[o_out + i] -= np.float32(own)
                        else:
                            WIN[i] = 2
        else:
            _out_err(ERR, o_out, TGf, dslot * nout, Hf, hd + goff[L], nout)
        lslot = (t - fb_lag) & mask
        for c in range(L - 1):
            # err of layer c+1 = F_c^T err(layer c+2)(t - lag), F_c = W_{c+1}^T (symmetric) or
            # B (random/uniform), [upper, lower] (SPEC 2.2). Only nonzero upper errors are added,
            # in ascending order: the same float32 sums as the reference's dense loop.
            q0 = goff[c + 1] - nin
            nlo = goff[c + 2] - goff[c + 1]
            u0 = goff[c + 2] - nin
            nup = goff[c + 3] - goff[c + 2]
            _zero(ERR, q0, nlo)
            for m0 in range(0, nup, SCAN):  # as above: skip 32 upper neurons at a time
                if _any_bits(ERRHi, lslot * NQ + u0 + m0, min(SCAN, nup - m0)):
                    for m in range(m0, min(m0 + SCAN, nup)):
                        v = ERRH[lslot, u0 + m]
                        if v != 0:
                            _add_row_scaled(ERR, q0, FF, foff[c] + m * nlo, nlo, v)
        _copy_f(ERRHf, slot * NQ, ERR, NQ)

        # -- 4a. delay lines; record the delayed series; presynaptic events ------------------------
        for c in range(L):
            pos = t % dlen[c]
            q0, q1 = goff[c + 1] - nin, goff[c + 2] - nin
            _sig_line(Sf, k * NQ + q0, SIGLf, pos * NQ + q0, U, q0, q1 - q0, linear, thr, beta, u_cut)
            p0, p1 = goff[c], goff[c + 1]
            if rec_x:
                # z (step 1, delayed spikes), delay line of z~ (4a), z~ (6) in one pass; the
                # traces of one presynaptic neuron depend on nothing else
                _pre_pass_x(TRP, TRZ, Hf, hd + p0, PSPLf, pos * NP + p0, Xf, k * NP + p0, p0, p1 - p0,
                            dec_rise, k_decay, psp_cut)  # fmt: skip
                if k < k_old:
                    XMAX[k, c] = _max_nonneg(Xi, k * NP + p0, p1 - p0)
                    SMAX[k, c] = _max_nonneg(Si, k * NQ + q0, q1 - q0)
                continue
            if not _pre_pass(TRP, TRZ, Hf, hd + p0, PSPLf, pos * NP + p0, MPREV, FL, fl_off[c], p0, p1 - p0,
                             dec_rise, k_decay, psp_cut):  # fmt: skip
                continue
            row = k + dlen[c]
            # the flagged neurons, found eight flags at a time
            nj = 0
            for wd in range(fl_off[c] // 8, (fl_off[c] + p1 - p0 + 7) // 8):
                if FL64[wd] != 0:
                    for bt in range(8):
                        i = wd * 8 + bt
                        if FL[i] != 0:
                            UPK[nj] = p0 + i - fl_off[c]
                            nj += 1
            for jj in range(nj):
                j = UPK[jj]
                m = 1 if PSPL[pos, j] > psp_cut else 0
                cnt = HIST[dslot, j]
                if m:
                    if MPREV[j] == 0:
                        # a cut-off stretch ended at t - 1: restore the free decay from t on
                        lr = t - RUN_T[j]
                        g = GT[lr - 1] if lr > 0 else 0.0
                        a = QP[lr] * RUN_ZT[j] + d64 * g * RUN_Z[j]
                        b = DP[lr] * RUN_Z[j]
                        NET_A[j] = a
                        NET_B[j] = b
                        NET_T[j] = t
                        if row < n_steps:
                            if ev_n < ev_cap:
                                EVR[ev_n] = row
                                EVJ[ev_n] = j
                                EVA[ev_n] = a
                                EVB[ev_n] = b
                                ev_n += 1
                            else:
                                overflow = True
                    if cnt:
                        lr = t - NET_T[j]
                        g = GT[lr - 1] if lr > 0 else 0.0
                        a = QP[lr] * NET_A[j] + d64 * g * NET_B[j]
                        NET_B[j] = DP[lr] * NET_B[j] + cnt
                        NET_A[j] = a
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
                        g = GT[lr - 1] if lr > 0 else 0.0
                        a = QP[lr] * NET_A[j] + d64 * g * NET_B[j]
                        b = DP[lr] * NET_B[j]
                        if row < n_steps:
                            if ev_n < ev_cap:
                                EVR[ev_n] = row
                                EVJ[ev_n] = j
                                EVA[ev_n] = -a
                                EVB[ev_n] = -b
                                ev_n += 1
                            else:
                                overflow = True
                        RUN_T[j] = t
                        RUN_ZT[j] = a
                        RUN_Z[j] = b
                        NET_A[j] = 0.0
                        NET_B[j] = 0.0
                        NET_T[j] = t
                    if cnt:
                        # a spike arriving inside a stretch joins its free decay
                        lr = t - RUN_T[j]
                        g = GT[lr - 1] if lr > 0 else 0.0
                        a = QP[lr] * RUN_ZT[j] + d64 * g * RUN_Z[j]
                        RUN_Z[j] = DP[lr] * RUN_Z[j] + cnt
                        RUN_ZT[j] = a
                        RUN_T[j] = t
                MPREV[j] = m

        # -- 4d (the per-neuron factors): error of active posts, regulariser -------------------
        _err_row(Ef, k * NQ, TREF, NQ, err_cut)

    _ldmxcsr(fp_saved)
    return rec_n, (-1 if overflow else ev_n)


@njit(cache=True, error_model="numpy", nogil=True)
def backward(S, E, n, q_f, d_f, k_f, ALPHA, BETA, a0, a1):
    """Backward-filter the errors of a chunk; ``S <- S * Et`` in place (rows 0..n-1).

    For every post column: ``Et(k) = sum_{m>=k} G(m-k) E(m)`` with G the response of el_flt to a
    unit coincidence (SPEC 5), via ``Bd(k) = E(k) + d Bd(k+1)``, ``Et(k) = q Et(k+1) + kk Bd(k)``
    (float64). ``ALPHA = sum_k E(k) q^(k+1)`` and ``BETA = Et(0)`` weigh the eligibility carried
    into the chunk. Columns [a0, a1); releases the GIL (column ranges can run in threads).
    """
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
            ALPHA[a0 + i] = bq[i]
            BETA[a0 + i] = et[i]


@njit(cache=True, error_model="numpy", nogil=True)
def sweep(
    S, E, n, q_f, d_f, k_f, DK, GK, QK, blocks, ev_lo, ev_hi, EVR, EVJ, EVA, EVB,
    goff, nin, moff, M, PD, PG, dlen, XL, ALPHA, BETA,
):  # fmt: skip
    """The chunk's plasticity from per-neuron series and presynaptic events (SPEC 5), backwards.

    For each post column i (``blocks``: rows of (first, end) post index), over rows k = n-1..0:
    ``Et(k) = sum_{m>=k} G(m-k) E(m)`` as ``c (q Eq(k) - d Ed(k))`` with ``Eq(k) = E(k) +
    q Eq(k+1)``, ``Ed`` likewise and ``c = kk/(q-d)``. Three right-hand factors have their
    discounted sums ``Rq(k) = y(k) + q Rq(k+1)`` and ``Rd`` taken: ``y = S Et`` (el_sum),
    ``u = S d^(n-k)`` (el, ``DK``) and ``z = S G(n-1-k)`` (el_flt, ``GK``). For y they are
    carried as such (r0, r1). For u and z, whose weights are powers, three sums of S carry them
    all, with fewer operations per row: ``P(k) = S(k) + (q/d) P(k+1)``, ``Q(k) = S(k) + (d/q)
    Q(k+1)`` and ``C(k) = S(k) + C(k+1)`` give, with ``dk = d^(n-k)`` and ``qk = q^(n-k)``
    (``QK``), ``Rq(u) = dk P``, ``Rd(u) = dk C``, ``Rq(z) = c (qk C - dk P)``, ``Rd(z) = c (qk Q -
    dk C)``. P grows by q/d per row (Q by d/q, should d exceed q); the engine keeps chunks short
    enough for float64 (:data:`P_GROWTH_LIMIT`).

    An event (row r, pre j, a, b) adds ``a Rq(r) + b d c (Rq(r) - Rd(r))`` (= sum over k >= r of
    its presynaptic trace times the factor) to row j of M (PD, PG). Rows without events are
    advanced up to four at a time (:func:`_sweep_rows`; their states are loaded and stored
    once). Rows k < D take x from the delay line, ``XL[k, pre]`` (dense). ``ALPHA = q Eq(0)``,
    ``BETA = Et(0)``. All float64. M, PD and PG are zeroed here, the block's columns only.
    Releases the GIL: blocks of columns can run in threads.
    """
    cq = k_f / (q_f - d_f)
    dc = d_f * cq
    cqq, cqd, rqd, rdq = cq * q_f, cq * d_f, q_f / d_f, d_f / q_f
    L = goff.shape[0] - 2
    NQ = S.shape[1]
    Sf = S.ravel()
    Ef = E.ravel()
    for b in range(blocks.shape[0]):
        i0, i1 = blocks[b, 0], blocks[b, 1]
        w = i1 - i0
        eq = np.zeros(w)
        ed = np.zeros(w)
        y = np.zeros(w)
        yd = np.zeros(w)
        yg = np.zeros(w)
        r0 = np.zeros(w)
        r1 = np.zeros(w)
        rp = np.zeros(w)
        rq = np.zeros(w)
        rc = np.zeros(w)
        # connections whose post columns overlap the block, and their events (newest first)
        cs = np.empty(L, np.int64)
        nc = 0
        for c in range(L):
            if goff[c + 2] - nin > i0 and goff[c + 1] - nin < i1:
                cs[nc] = c
                nc += 1
        e_ptr = np.empty(L, np.int64)
        dmax = 0
        for c in range(L):
            e_ptr[c] = ev_hi[c] - 1
        for u in range(nc):
            c = cs[u]
            dmax = max(dmax, dlen[c])
            # this block's columns of the sums start at zero (here, in the block's thread)
            qa = goff[c + 1] - nin
            npost = goff[c + 2] - goff[c + 1]
            lo = max(i0, qa)
            hi = min(i1, qa + npost)
            for j in range(goff[c + 1] - goff[c]):
                base = moff[c] + j * npost + (lo - qa)
                _zero(M, base, hi - lo)
                _zero(PD, base, hi - lo)
                _zero(PG, base, hi - lo)
        k = n - 1
        while k >= 0:
            # rows k, k-1, ... with no events (and not fed by the delay line) are advanced
            # together, four or two at a time: their states are loaded and stored once (the
            # stores bound this loop); events are applied at the lowest row of the group
            nxt = -1
            for u in range(nc):
                c = cs[u]
                if e_ptr[c] >= ev_lo[c]:
                    nxt = max(nxt, EVR[e_ptr[c]])
            if nxt <= k - 3 and k - 3 >= dmax:
                o = U64(k * NQ + i0)
                _sweep_rows(Ef, Sf, (o, o - U64(NQ), o - U64(2 * NQ), o - U64(3 * NQ)), w, eq, ed, r0, r1, rp, rq,
                            rc, q_f, d_f, cqq, cqd, rqd, rdq)  # fmt: skip
                k -= 3
            elif nxt <= k - 1 and k - 1 >= dmax:
                o = U64(k * NQ + i0)
                _sweep_rows(Ef, Sf, (o, o - U64(NQ)), w, eq, ed, r0, r1, rp, rq, rc, q_f, d_f, cqq, cqd, rqd, rdq)
                k -= 1
            elif k >= dmax:
                # a row with events: alone (the tuple kernel, 2.5 times faster than _sweep_row)
                _sweep_rows(Ef, Sf, (U64(k * NQ + i0),), w, eq, ed, r0, r1, rp, rq, rc, q_f, d_f, cqq, cqd, rqd, rdq)
            else:  # a row fed by the delay line also needs y
                _sweep_row(Ef, Sf, k * NQ + i0, w, eq, ed, y, r0, r1, rp, rq, rc, q_f, d_f, cqq, cqd, rqd, rdq)
            dk, qk = DK[k], QK[k]
            for u in range(nc):
                c = cs[u]
                qa = goff[c + 1] - nin
                npost = goff[c + 2] - goff[c + 1]
                lo = max(i0, qa)
                hi = min(i1, qa + npost)
                if k < dlen[c]:
                    # a row fed by the delay line: x pushed in the previous chunk, this row only
                    for i in range(lo - i0, hi - i0):
                        v = np.float64(S[k, i0 + i])
                        yd[i] = v * dk
                        yg[i] = v * GK[k]
                    for j in range(goff[c], goff[c + 1]):
                        x = XL[k, j]
                        if x != 0.0:
                            base = moff[c] + (j - goff[c]) * npost + (lo - qa)
                            _add_x(M, PD, PG, base, x, y, yd, yg, lo - i0, hi - lo)
                ep = e_ptr[c]
                while ep >= ev_lo[c] and EVR[ep] == k:
                    base = moff[c] + (EVJ[ep] - goff[c]) * npost + (lo - qa)
                    # a Rq + bb (Rq - Rd) = A Rq - B Rd per factor, Rq and Rd of u and z as above
                    bb = EVB[ep] * dc
                    A = EVA[ep] + bb
                    _apply_event(M, PD, PG, base, A, -bb, A * dk, -bb * dk, cq * (A * qk + bb * dk), -A * cq * dk,
                                 -bb * cq * qk, r0, r1, rp, rq, rc, lo - i0, hi - lo)  # fmt: skip
                    ep -= 1
                e_ptr[c] = ep
            k -= 1
        for i in range(w):
            ALPHA[i0 + i] = q_f * eq[i]
            BETA[i0 + i] = cq * (q_f * eq[i] - d_f * ed[i])


# the sweep's helpers are float64 sums (not part of the bit-exact forward): FMA contraction is fine
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sweep_row(Ef, Sf, off, w, eq, ed, y, r0, r1, rp, rq, rc, q_f, d_f, cqq, cqd, rqd, rdq):
    off = U64(off)
    for i in range(U64(w)):
        a, b, v, x0, x1, p, qs, cs = _row_step(
            np.float64(Ef[off + i]), np.float64(Sf[off + i]), eq[i], ed[i], r0[i], r1[i], rp[i], rq[i], rc[i],
            q_f, d_f, cqq, cqd, rqd, rdq,
        )  # fmt: skip
        eq[i], ed[i], y[i], r0[i], r1[i], rp[i], rq[i], rc[i] = a, b, v, x0, x1, p, qs, cs


@njit(inline="always", fastmath={"contract"})
def _row_step(e, s, a, bd, x0, x1, p, qs, cs, q_f, d_f, cqq, cqd, rqd, rdq):
    # one row of the sweep's recurrences for one column: Eq, Ed, y = S Et (el_sum's factor), its
    # discounted sums r0, r1, and the sums P, Q, C of S (see sweep)
    a = e + q_f * a
    bd = e + d_f * bd
    v = s * (cqq * a - cqd * bd)
    return a, bd, v, v + q_f * x0, v + d_f * x1, s + rqd * p, s + rdq * qs, s + cs


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sweep_rows(Ef, Sf, offs, w, eq, ed, r0, r1, rp, rq, rc, q_f, d_f, cqq, cqd, rqd, rdq):
    # several rows of _sweep_row (offsets ``offs``, a tuple, top row first), states loaded and
    # stored once; the tuple's length is a compile-time constant, so the row loop is unrolled and
    # the column loop vectorised (one compiled version per length used: 1, 2 and 4)
    for i in range(U64(w)):
        a, b, x0, x1, p, qs, cs = eq[i], ed[i], r0[i], r1[i], rp[i], rq[i], rc[i]
        for r in range(len(offs)):
            o = offs[r]
            a, b, _, x0, x1, p, qs, cs = _row_step(
                np.float64(Ef[o + i]), np.float64(Sf[o + i]), a, b, x0, x1, p, qs, cs, q_f, d_f, cqq, cqd, rqd, rdq
            )
        eq[i], ed[i], r0[i], r1[i], rp[i], rq[i], rc[i] = a, b, x0, x1, p, qs, cs


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _add_x(M, PD, PG, base, x, y, yd, yg, o, n):
    base, o = U64(base), U64(o)
    for i in range(U64(n)):
        M[base + i] += x * y[o + i]
        PD[base + i] += x * yd[o + i]
        PG[base + i] += x * yg[o + i]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _apply_event(M, PD, PG, base, m0, m1, d0, d1, gc, gp, gq, r0, r1, rp, rq, rc, o, n):
    # M += m0 r0 + m1 r1; PD += d0 P + d1 C; PG += gc C + gp P + gq Q (coefficients: see sweep)
    base, o = U64(base), U64(o)
    for i in range(U64(n)):
        j = o + i
        M[base + i] += m0 * r0[j] + m1 * r1[j]
        PD[base + i] += d0 * rp[j] + d1 * rc[j]
        PG[base + i] += gc * rc[j] + gp * rp[j] + gq * rq[j]


@njit(cache=True, error_model="numpy", nogil=True)
def synapse_update(EL, ELF, ELS, W, M, PD, PG, alpha, beta, rs, dn, qn, gn1, r0, r1, c0, c1):
    """Per synapse: el_sum += M + el_flt alpha + el beta - w rs; then the end-of-chunk el, el_flt.

    ``M`` is the chunk's product X^T (S Et); ``PD``/``PG`` the products giving the chunk's
    own contribution to el/el_flt. Coefficients as in SPEC 5 (see engine.fast). The synapses of
    pre rows [r0, r1) and post columns [c0, c1) of one connection (``alpha``, ``beta``, ``rs``:
    per post of the connection); releases the GIL.
    """
    for j in range(U64(r0), U64(r1)):
        for i in range(U64(c0), U64(c1)):
            e0 = np.float64(EL[j, i])
            f0 = np.float64(ELF[j, i])
            g = np.float64(M[j, i]) + f0 * alpha[i] + e0 * beta[i] - np.float64(W[j, i]) * rs[i]
            ELS[j, i] = np.float32(np.float64(ELS[j, i]) + g)
            EL[j, i] = np.float32(dn * e0 + PD[j, i])
            ELF[j, i] = np.float32(qn * f0 + gn1 * e0 + PG[j, i])
