"""Compiled kernels of the fast engine (SPEC 5). See :mod:`superspike.engine.fast` for the maths.

Layout: all groups share one global neuron index (input first, then hidden layers, output last).
The *pre space* holds the neurons of groups 0..L-1 (the presynaptic side of connections 0..L-1;
pre index = global index), the *post space* those of groups 1..L (post index = global - nin).
Per-neuron state of connection c therefore lives in a contiguous segment of a flat array: its
presynaptic traces at [goff[c], goff[c+1]) of the pre space, its error traces at
[goff[c+1] - nin, goff[c+2] - nin) of the post space.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from superspike.rule.surrogate import surrogate


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


# -- small loops over contiguous 1-D segments (vectorised by LLVM; element-wise float32
#    arithmetic gives the same bits vectorised or not) ---------------------------------------


@njit(cache=True, error_model="numpy")
def _lif(U, I, REF, H, k_mem, u_rest, thr, ref_steps, dec_syn):
    # SPEC 1, the reference's order: membrane, threshold/refractoriness, current decay
    for q in range(U.shape[0]):
        uq = U[q] + k_mem * ((u_rest - U[q]) + I[q])
        r = REF[q]
        sp = (r == 0) & (uq > thr)
        U[q] = u_rest if (sp | (r > 0)) else uq
        REF[q] = ref_steps if sp else (r - 1 if r > 0 else r)
        I[q] = I[q] * dec_syn
        H[q] = 1 if sp else 0


@njit(cache=True, error_model="numpy")
def _any(H):
    a = 0
    for q in range(H.shape[0]):
        a |= H[q]
    return a != 0


@njit(cache=True, error_model="numpy")
def _any_f(x):
    a = False
    for q in range(x.shape[0]):
        a |= x[q] != 0
    return a


@njit(cache=True, error_model="numpy")
def _zero_i8(H):
    for q in range(H.shape[0]):
        H[q] = 0


@njit(cache=True, error_model="numpy")
def _add_row(I, w):
    for i in range(I.shape[0]):
        I[i] = I[i] + w[i]


@njit(cache=True, error_model="numpy")
def _add_row_scaled(acc, w, v):
    for i in range(acc.shape[0]):
        acc[i] += w[i] * v


@njit(cache=True, error_model="numpy")
def _err_traces(ERR, TRE, TREF, AVG, k_rise, k_decay):
    for q in range(ERR.shape[0]):
        TRE[q] = TRE[q] + k_rise * (ERR[q] - TRE[q])
        TREF[q] = TREF[q] + k_decay * (TRE[q] - TREF[q])


@njit(cache=True, error_model="numpy")
def _avg(AVG, TREF, dec_avg, dt):
    for q in range(AVG.shape[0]):
        AVG[q] = AVG[q] * dec_avg + dt * TREF[q] * TREF[q]


@njit(cache=True, error_model="numpy")
def _het(HET, hs, dec_het):
    for q in range(HET.shape[0]):
        HET[q] = (HET[q] + hs[q]) * dec_het


@njit(cache=True, error_model="numpy")
def _out_err(ERR, tg, own):
    for i in range(ERR.shape[0]):
        ERR[i] = np.float32(tg[i] - own[i])


@njit(cache=True, error_model="numpy")
def _copy_f(dst, src):
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(cache=True, error_model="numpy")
def _zero_f(dst):
    for i in range(dst.shape[0]):
        dst[i] = np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _sig_line(Srow, line, U, linear, thr, beta, u_cut):
    for q in range(Srow.shape[0]):
        Srow[q] = line[q]
        line[q] = np.float32(1.0) if linear else surrogate(U[q], thr, beta, u_cut)


@njit(cache=True, error_model="numpy")
def _pre_pass(TRP, TRZ, hd, line, ZOLD, MNEW, dec_rise, k_decay, psp_cut):
    # one presynaptic neuron at a time: z (step 1), push z~ into the delay line (4a), z~ (6);
    # keep z before the update and whether the pushed z~ passes the PSP cut-off (4b)
    for j in range(TRP.shape[0]):
        zold = TRP[j]
        z = (zold + hd[j]) * dec_rise
        TRP[j] = z
        p = TRZ[j]
        line[j] = p
        ZOLD[j] = zold
        MNEW[j] = 1 if p > psp_cut else 0
        TRZ[j] = p + k_decay * (z - p)


@njit(cache=True, error_model="numpy")
def _pre_pass_x(TRP, TRZ, hd, line, Xrow, dec_rise, k_decay, psp_cut):
    # as _pre_pass, recording the delayed z~ with the cut-off applied (the product path)
    for j in range(TRP.shape[0]):
        z = (TRP[j] + hd[j]) * dec_rise
        TRP[j] = z
        pd = line[j]
        Xrow[j] = pd if pd > psp_cut else np.float32(0.0)
        p = TRZ[j]
        line[j] = p
        TRZ[j] = p + k_decay * (z - p)


@njit(cache=True, error_model="numpy")
def _any_ne(a, b):
    r = 0
    for j in range(a.shape[0]):
        r |= a[j] ^ b[j]
    return r != 0


@njit(cache=True, error_model="numpy")
def _max_nonneg(x):
    # max of non-negative float32 values via their int32 bit patterns (same order; vectorises)
    xi = x.view(np.int32)
    m = np.int32(0)
    for j in range(xi.shape[0]):
        v = xi[j]
        m = v if v > m else m
    return m


@njit(cache=True, error_model="numpy")
def _err_row(Erow, TREF, err_cut):
    for q in range(Erow.shape[0]):
        v = TREF[q]
        Erow[q] = v if abs(v) >= err_cut else np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _reg(RS, HET, TREF, err_cut, rho, ia):
    for q in range(RS.shape[0]):
        h = HET[q]
        p = np.float32(1.0)
        for _ in range(ia):
            p = p * h
        RS[q] += rho * p if abs(TREF[q]) >= err_cut else np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _reg_pow(RS, HET, TREF, err_cut, rho, reg_a):
    for q in range(RS.shape[0]):
        if abs(TREF[q]) >= err_cut:
            RS[q] += rho * HET[q] ** reg_a


@njit(cache=True, error_model="numpy")
def forward(
    t0, n_steps, cf, ci, L, nin, goff, grp, dlen,
    in_ptr, in_ids, tg_ptr, tg_ids,
    HIST, TGH, SPK, SPKN,
    U, I, REF,
    WF, woff, FF, foff,
    ERR, TRE, TREF, AVG, HET, ERRH, TRP, TRZ, SIGL, PSPL,
    S, E, RS, UPK,
    rec_x, X, k_old, XMAX, SMAX,
    QP, DP, GT, EVR, EVJ, EVA, EVB, MPREV, RUN_T, RUN_ZT, RUN_Z, ZOLD, MNEW,
    REC_T, REC_I,
    has_win, wo_ptr, wo_ids, wc_ptr, wc_ids, WIN,
):  # fmt: skip
    """Forward dynamics of ``n_steps`` steps with fixed weights; record the per-neuron series.

    Reproduces the neuron, trace, error and delay-line arithmetic of the reference engine
    (SPEC 1, 2.1 steps 1-3, 4a, 6) operation for operation in float32, so spikes are identical.
    Instead of steps 4b-4d it records, for chunk step k: ``S[k, post]`` the delayed sigma'(U),
    ``E[k, post]`` tr_err_flt where |tr_err_flt| >= the error cut-off (else 0), and sums in
    ``RS[post]`` the regulariser factor rho h^a of active posts (float32 per step, float64 sum).

    The presynaptic factor x_j(k) (delayed z~ with the PSP cut-off) is recorded either densely,
    ``X[k, pre]`` (``rec_x``; with the row maxima ``XMAX``/``SMAX`` of steps k < ``k_old``), or
    as events (row, pre, a, b) meaning "from chunk row ``row`` on, x_j gains the free decay of
    z~ = a, z = b" (see engine.fast): the trace state at the chunk start, every spike arrival
    (b = count), and, around each stretch where z~ is at or below the cut-off, a negative event
    cancelling the decay there and a positive one restoring it after (``QP``, ``DP``, ``GT``:
    q^m, d^m, G(m) tables). Returns (spikes recorded in ``REC_T``/``REC_I`` as (step, global
    index), events recorded).
    """
    u_rest, thr, k_mem, dec_syn = cf[0], cf[1], cf[2], cf[3]
    dec_rise, k_rise, k_decay, dec_avg = cf[4], cf[5], cf[6], cf[7]
    dt, beta, u_cut, psp_cut, err_cut = cf[8], cf[9], cf[10], cf[11], cf[12]
    rho, reg_a, dec_het = cf[13], cf[14], cf[15]
    delay, ref_steps, fb_lag = ci[1], ci[2], ci[3]
    reg_on, linear, mask = ci[5] == 1, ci[6] == 1, ci[7]
    ref_steps32 = np.int32(ref_steps)
    p_in, p_tg = in_ptr.shape[0] - 1, tg_ptr.shape[0] - 1
    N = goff[L + 1]
    NP = goff[L]
    nout = N - goff[L]
    o_out = goff[L] - nin  # post index of the first output neuron
    n_hid_q = goff[L] - nin  # hidden neurons: post indices [0, n_hid_q)
    ia = np.int64(reg_a)
    int_exp = np.float32(ia) == reg_a and ia >= 0 and ia <= 8
    rec_n = 0
    ev_n = 0
    ev_cap = EVR.shape[0]
    d64 = np.float64(dec_rise)

    # events: trace state at the chunk start, or a cut-off stretch that is already running
    if not rec_x:
        for c in range(L):
            row = dlen[c]
            for j in range(goff[c], goff[c + 1]):
                p = TRZ[j]
                if p > psp_cut:
                    MPREV[j] = 1
                    if row < n_steps and (p != 0 or TRP[j] != 0):
                        EVR[ev_n] = row
                        EVJ[ev_n] = j
                        EVA[ev_n] = p
                        EVB[ev_n] = TRP[j]
                        ev_n += 1
                else:
                    MPREV[j] = 0
                    RUN_T[j] = t0
                    RUN_ZT[j] = p
                    RUN_Z[j] = TRP[j]

    for k in range(n_steps):
        t = t0 + k
        slot = t & mask
        dslot = (t - delay) & mask  # spikes emitted `delay` steps ago arrive now (SPEC 1)
        hs = HIST[slot]
        hd = HIST[dslot]

        # -- input and target replay on the loop grid (SPEC 3) --------------------------------
        _zero_i8(hs[:nin])
        nsp = 0
        s = t % p_in
        for e in range(in_ptr[s], in_ptr[s + 1]):
            j = in_ids[e]
            if hs[j] == 0:
                SPK[slot, nsp] = j
                nsp += 1
            hs[j] += 1
        _zero_i8(TGH[slot])
        s = t % p_tg
        for e in range(tg_ptr[s], tg_ptr[s + 1]):
            TGH[slot, tg_ids[e]] += 1

        # -- neuron groups (SPEC 1), all LIF groups at once -------------------------------------
        hq = hs[nin:]
        _lif(U, I, REF, hq, k_mem, u_rest, thr, ref_steps32, dec_syn)
        if _any(hq):
            for q in range(hq.shape[0]):
                if hq[q] != 0:
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
            base = woff[c] + (j - goff[c]) * npost
            q0 = goff[c + 1] - nin
            for _ in range(hd[j]):
                _add_row(I[q0 : q0 + npost], WF[base : base + npost])

        # -- plasticity step 1: traces (z: in the presynaptic pass below) ------------------------
        _err_traces(ERR, TRE, TREF, AVG, k_rise, k_decay)  # err from the previous step
        if reg_on:
            _het(HET[:n_hid_q], hs[nin : nin + n_hid_q], dec_het)  # undelayed own spikes (2.3)

        # -- 2. squared-error average -------------------------------------------------------------
        _avg(AVG, TREF, dec_avg, dt)

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
                    own = hd[goff[L] + i]
                    if own > 0:
                        if WIN[i] == 0:
                            ERR[o_out + i] -= np.float32(own)
                        else:
                            WIN[i] = 2
        else:
            _out_err(ERR[o_out:], TGH[dslot], hd[goff[L] :])
        lslot = (t - fb_lag) & mask
        for c in range(L - 1):
            # err of layer c+1 = F_c^T err(layer c+2)(t - lag), F_c = W_{c+1}^T (symmetric) or
            # B (random/uniform), [upper, lower] (SPEC 2.2). Only nonzero upper errors are added,
            # in ascending order: the same float32 sums as the reference's dense loop.
            q0 = goff[c + 1] - nin
            nlo = goff[c + 2] - goff[c + 1]
            u0 = goff[c + 2] - nin
            nup = goff[c + 3] - goff[c + 2]
            errc = ERR[q0 : q0 + nlo]
            _zero_f(errc)
            up = ERRH[lslot, u0 : u0 + nup]
            if _any_f(up):
                for m in range(nup):
                    v = up[m]
                    if v != 0:
                        base = foff[c] + m * nlo
                        _add_row_scaled(errc, FF[base : base + nlo], v)
        _copy_f(ERRH[slot], ERR)

        # -- 4a. delay lines; record the delayed series -----------------------------------------
        for c in range(L):
            pos = t % dlen[c]
            q0, q1 = goff[c + 1] - nin, goff[c + 2] - nin
            _sig_line(S[k, q0:q1], SIGL[pos, q0:q1], U[q0:q1], linear, thr, beta, u_cut)
            p0, p1 = goff[c], goff[c + 1]
            if rec_x:
                # z (step 1, delayed spikes), delay line of z~ (4a), z~ (6) in one pass; the
                # traces of one presynaptic neuron depend on nothing else
                _pre_pass_x(TRP[p0:p1], TRZ[p0:p1], hd[p0:p1], PSPL[pos, p0:p1], X[k, p0:p1],
                            dec_rise, k_decay, psp_cut)  # fmt: skip
                if k < k_old:
                    XMAX[k, c] = _max_nonneg(X[k, p0:p1])
                    SMAX[k, c] = _max_nonneg(S[k, q0:q1])
                continue
            _pre_pass(TRP[p0:p1], TRZ[p0:p1], hd[p0:p1], PSPL[pos, p0:p1], ZOLD[p0:p1], MNEW[p0:p1],
                      dec_rise, k_decay, psp_cut)  # fmt: skip
            arrivals = False
            for e in range(SPKN[dslot]):
                j = SPK[dslot, e]
                if j >= p0 and j < p1:
                    arrivals = True
                    break
            if not arrivals and not _any_ne(MNEW[p0:p1], MPREV[p0:p1]):
                continue
            row = k + dlen[c]
            for j in range(p0, p1):
                m = MNEW[j]
                cnt = hd[j]
                if m == MPREV[j] and cnt == 0:
                    continue
                if m:
                    if MPREV[j] == 0:
                        # a cut-off stretch ended at t - 1: restore the free decay from t on
                        lr = t - RUN_T[j]
                        g = GT[lr - 1] if lr > 0 else 0.0
                        a = QP[lr] * RUN_ZT[j] + d64 * g * RUN_Z[j]
                        b = DP[lr] * RUN_Z[j]
                        if row < n_steps:
                            if ev_n >= ev_cap:
                                raise RuntimeError("fast engine: event buffer full")
                            EVR[ev_n] = row
                            EVJ[ev_n] = j
                            EVA[ev_n] = a
                            EVB[ev_n] = b
                            ev_n += 1
                    if cnt and row < n_steps:
                        if ev_n >= ev_cap:
                            raise RuntimeError("fast engine: event buffer full")
                        EVR[ev_n] = row
                        EVJ[ev_n] = j
                        EVA[ev_n] = 0.0
                        EVB[ev_n] = cnt
                        ev_n += 1
                else:
                    if MPREV[j]:
                        # z~ pushed now is at or below the cut-off: cancel its free decay
                        p = np.float64(PSPL[pos, j])
                        zo = np.float64(ZOLD[j])
                        if row < n_steps:
                            if ev_n >= ev_cap:
                                raise RuntimeError("fast engine: event buffer full")
                            EVR[ev_n] = row
                            EVJ[ev_n] = j
                            EVA[ev_n] = -p
                            EVB[ev_n] = -zo
                            ev_n += 1
                        RUN_T[j] = t
                        RUN_ZT[j] = p
                        RUN_Z[j] = zo
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
        _err_row(E[k], TREF, err_cut)
        if reg_on:
            if int_exp:
                _reg(RS[:n_hid_q], HET[:n_hid_q], TREF[:n_hid_q], err_cut, rho, ia)
            else:
                _reg_pow(RS[:n_hid_q], HET[:n_hid_q], TREF[:n_hid_q], err_cut, rho, reg_a)

    return rec_n, ev_n


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
    S, E, n, q_f, d_f, k_f, DK, GK, blocks, ev_lo, ev_hi, EVR, EVJ, EVA, EVB,
    goff, nin, moff, M, PD, PG, dlen, XL, ALPHA, BETA,
):  # fmt: skip
    """The chunk's plasticity from per-neuron series and presynaptic events (SPEC 5), backwards.

    For each post column i (``blocks``: rows of (first, last) post index):
    ``Et(k) = sum_{m>=k} G(m-k) E(k)`` as ``c (q Eq(k) - d Ed(k))`` with ``Eq(k) = E(k) +
    q Eq(k+1)``, ``Ed`` likewise and ``c = kk/(q-d)``; the three right-hand factors ``y = S Et``
    (el_sum), ``S d^(n-k)`` (el, ``DK``), ``S G(n-1-k)`` (el_flt, ``GK``), and for each their
    discounted sums ``Rq(k) = y(k) + q Rq(k+1)``, ``Rd`` likewise. An event (row r, pre j, a, b)
    adds ``a Rq(r) + b d c (Rq(r) - Rd(r))`` = sum over k >= r of its presynaptic trace times
    y(k) to row j of M (PD, PG). Rows k < D take x from the delay line, ``XL[k, pre]`` (dense).
    ``ALPHA = q Eq(0)``, ``BETA = Et(0)``. All float64. Releases the GIL: blocks of columns can
    run in threads.
    """
    cq = k_f / (q_f - d_f)
    dc = d_f * cq
    L = goff.shape[0] - 2
    for b in range(blocks.shape[0]):
        i0, i1 = blocks[b, 0], blocks[b, 1]
        w = i1 - i0
        eq = np.zeros(w)
        ed = np.zeros(w)
        y = np.zeros(w)
        r0 = np.zeros(w)
        r1 = np.zeros(w)
        r2 = np.zeros(w)
        r3 = np.zeros(w)
        r4 = np.zeros(w)
        r5 = np.zeros(w)
        # connections whose post columns overlap the block, and their events (newest first)
        cs = np.empty(L, np.int64)
        nc = 0
        for c in range(L):
            if goff[c + 2] - nin > i0 and goff[c + 1] - nin < i1:
                cs[nc] = c
                nc += 1
        e_ptr = np.empty(L, np.int64)
        for c in range(L):
            e_ptr[c] = ev_hi[c] - 1
        yd = np.zeros(w)
        yg = np.zeros(w)
        for k in range(n - 1, -1, -1):
            srow = S[k, i0:i1]
            _sweep_err(E[k, i0:i1], srow, eq, ed, y, q_f, d_f, cq)
            _sweep_r(y, r0, r1, q_f, d_f)
            _sweep_rs(srow, DK[k], r2, r3, q_f, d_f)
            _sweep_rs(srow, GK[k], r4, r5, q_f, d_f)
            for u in range(nc):
                c = cs[u]
                if k >= dlen[c]:
                    continue
                # a row fed by the delay line: x pushed in the previous chunk, one row only
                qa = goff[c + 1] - nin
                npost = goff[c + 2] - goff[c + 1]
                lo = max(i0, qa)
                hi = min(i1, qa + npost)
                for i in range(lo - i0, hi - i0):
                    v = np.float64(srow[i])
                    yd[i] = v * DK[k]
                    yg[i] = v * GK[k]
                for j in range(goff[c], goff[c + 1]):
                    x = XL[k, j]
                    if x != 0.0:
                        base = moff[c] + (j - goff[c]) * npost + (lo - qa)
                        _add_x(M[base : base + hi - lo], PD[base : base + hi - lo], PG[base : base + hi - lo], x,
                               y[lo - i0 : hi - i0], yd[lo - i0 : hi - i0], yg[lo - i0 : hi - i0])  # fmt: skip
            for u in range(nc):
                c = cs[u]
                ep = e_ptr[c]
                if ep < ev_lo[c] or EVR[ep] != k:
                    continue
                qa = goff[c + 1] - nin
                npost = goff[c + 2] - goff[c + 1]
                lo = max(i0, qa)
                hi = min(i1, qa + npost)
                p0 = goff[c]
                while ep >= ev_lo[c] and EVR[ep] == k:
                    base = moff[c] + (EVJ[ep] - p0) * npost + (lo - qa)
                    _apply_event(M[base : base + hi - lo], PD[base : base + hi - lo], PG[base : base + hi - lo],
                                 EVA[ep], EVB[ep] * dc, r0[lo - i0 : hi - i0], r1[lo - i0 : hi - i0],
                                 r2[lo - i0 : hi - i0], r3[lo - i0 : hi - i0], r4[lo - i0 : hi - i0],
                                 r5[lo - i0 : hi - i0])  # fmt: skip
                    ep -= 1
                e_ptr[c] = ep
        for i in range(w):
            ALPHA[i0 + i] = q_f * eq[i]
            BETA[i0 + i] = cq * (q_f * eq[i] - d_f * ed[i])


@njit(cache=True, error_model="numpy")
def _sweep_err(e32, s32, eq, ed, y, q_f, d_f, cq):
    for i in range(e32.shape[0]):
        e = np.float64(e32[i])
        a = e + q_f * eq[i]
        bd = e + d_f * ed[i]
        eq[i] = a
        ed[i] = bd
        y[i] = np.float64(s32[i]) * (cq * (q_f * a - d_f * bd))


@njit(cache=True, error_model="numpy")
def _sweep_r(y, r0, r1, q_f, d_f):
    for i in range(y.shape[0]):
        v = y[i]
        r0[i] = v + q_f * r0[i]
        r1[i] = v + d_f * r1[i]


@njit(cache=True, error_model="numpy")
def _sweep_rs(s32, f, r0, r1, q_f, d_f):
    for i in range(s32.shape[0]):
        v = np.float64(s32[i]) * f
        r0[i] = v + q_f * r0[i]
        r1[i] = v + d_f * r1[i]


@njit(cache=True, error_model="numpy")
def _add_x(m, pd, pg, x, y, yd, yg):
    for i in range(m.shape[0]):
        m[i] += x * y[i]
        pd[i] += x * yd[i]
        pg[i] += x * yg[i]


@njit(cache=True, error_model="numpy")
def _apply_event(m, pd, pg, a, bb, r0, r1, r2, r3, r4, r5):
    for i in range(m.shape[0]):
        m[i] += a * r0[i] + bb * (r0[i] - r1[i])
        pd[i] += a * r2[i] + bb * (r2[i] - r3[i])
        pg[i] += a * r4[i] + bb * (r4[i] - r5[i])


@njit(cache=True, error_model="numpy", nogil=True)
def synapse_update(EL, ELF, ELS, W, M, PD, PG, alpha, beta, rs, dn, qn, gn1):
    """Per synapse: el_sum += M + el_flt alpha + el beta - w rs; then the end-of-chunk el, el_flt.

    ``M`` is the chunk's product X^T (S Et); ``PD``/``PG`` the products giving the chunk's
    own contribution to el/el_flt. Coefficients as in SPEC 5 (see engine.fast).
    """
    npre, npost = EL.shape
    for j in range(npre):
        for i in range(npost):
            e0 = np.float64(EL[j, i])
            f0 = np.float64(ELF[j, i])
            g = np.float64(M[j, i]) + f0 * alpha[i] + e0 * beta[i] - np.float64(W[j, i]) * rs[i]
            ELS[j, i] = np.float32(np.float64(ELS[j, i]) + g)
            EL[j, i] = np.float32(dn * e0 + PD[j, i])
            ELF[j, i] = np.float32(qn * f0 + gn1 * e0 + PG[j, i])
