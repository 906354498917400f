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
from numba import njit, prange

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
def _z(TRP, hd, dec_rise):
    for j in range(TRP.shape[0]):
        TRP[j] = (TRP[j] + hd[j]) * dec_rise


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
def _psp_line(Xrow, line, TRZ, psp_cut):
    for j in range(Xrow.shape[0]):
        p = line[j]
        Xrow[j] = p if p > psp_cut else np.float32(0.0)
        line[j] = TRZ[j]


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
def _ztilde(TRZ, TRP, k_decay):
    for j in range(TRZ.shape[0]):
        TRZ[j] = TRZ[j] + k_decay * (TRP[j] - TRZ[j])


@njit(cache=True, error_model="numpy")
def forward(
    t0, n_steps, cf, ci, L, nin, goff, grp, dlen,
    in_ptr, in_ids, tg_ptr, tg_ids,
    HIST, TGH, SPK, SPKN,
    U, I, REF,
    WF, woff, FF, foff,
    ERR, TRE, TREF, AVG, HET, ERRH, TRP, TRZ, SIGL, PSPL,
    X, S, E, RS, UPK, k_old, XMAX, SMAX,
    REC_T, REC_I,
    has_win, wo_ptr, wo_ids, wc_ptr, wc_ids, WIN,
):  # fmt: skip
    """Forward dynamics of ``n_steps`` steps with fixed weights; record the per-neuron series.

    Reproduces the neuron, trace, error and delay-line arithmetic of the reference engine
    (SPEC 1, 2.1 steps 1-3, 4a, 6) operation for operation in float32, so spikes are identical.
    Instead of steps 4b-4d it records, for chunk step k: ``X[k, pre]`` the delayed z~ with the PSP
    cut-off applied (0 where z~ <= cut-off), ``S[k, post]`` the delayed sigma'(U), ``E[k, post]``
    tr_err_flt where |tr_err_flt| >= error cut-off (else 0), and accumulates in ``RS[post]`` the
    regulariser factor rho h^a of active posts (float32 per step, summed in float64). For steps
    k < ``k_old`` it also records the largest x and s of each connection in ``XMAX[k, c]``,
    ``SMAX[k, c]`` (int32 bit patterns of non-negative float32), which bound the part of the
    chunk left out of the end-of-chunk eligibility products. Returns the number of spikes
    recorded in ``REC_T``/``REC_I`` (step, global index).
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

        # -- plasticity step 1: traces ----------------------------------------------------------
        _z(TRP, hd[:NP], dec_rise)  # z, delayed spikes
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
            _psp_line(X[k, p0:p1], PSPL[pos, p0:p1], TRZ[p0:p1], psp_cut)
            if k < k_old:
                XMAX[k, c] = _max_nonneg(X[k, p0:p1])
                SMAX[k, c] = _max_nonneg(S[k, q0:q1])

        # -- 4d (the per-neuron factors): error of active posts, regulariser -------------------
        _err_row(E[k], TREF, err_cut)
        if reg_on:
            if int_exp:
                _reg(RS[:n_hid_q], HET[:n_hid_q], TREF[:n_hid_q], err_cut, rho, ia)
            else:
                _reg_pow(RS[:n_hid_q], HET[:n_hid_q], TREF[:n_hid_q], err_cut, rho, reg_a)

        # -- 6. z~ follows z ------------------------------------------------------------------
        _ztilde(TRZ, TRP, k_decay)

    return rec_n


@njit(parallel=True, cache=True, error_model="numpy")
def backward(S, E, n, q_f, d_f, k_f, ALPHA, BETA, nblk):
    """Backward-filter the errors of a chunk; ``S <- S * Et`` in place (rows 0..n-1).

    For every post column: ``Et(k) = sum_{m>=k} G(m-k) E(m)`` with G the response of el_flt to a
    unit coincidence (SPEC 5), via ``Bd(k) = E(k) + d Bd(k+1)``, ``Et(k) = q Et(k+1) + kk Bd(k)``
    (float64). ``ALPHA = sum_k E(k) q^(k+1)`` and ``BETA = Et(0)`` weigh the eligibility carried
    into the chunk. Columns are split into ``nblk`` blocks run in parallel.
    """
    NQ = S.shape[1]
    step = (NQ + nblk - 1) // nblk
    for b in prange(nblk):
        a0 = b * step
        a1 = min(NQ, a0 + step)
        if a1 <= a0:
            continue
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


@njit(parallel=True, cache=True, error_model="numpy")
def synapse_update(EL, ELF, ELS, W, M, PD, PG, alpha, beta, rs, dn, qn, gn1):
    """Per synapse: el_sum += M + el_flt alpha + el beta - w rs; then the end-of-chunk el, el_flt.

    ``M`` is the chunk's product X^T (S Et); ``PD``/``PG`` the products giving the chunk's
    own contribution to el/el_flt. Coefficients as in SPEC 5 (see engine.fast).
    """
    npre, npost = EL.shape
    for j in prange(npre):
        for i in range(npost):
            e0 = np.float64(EL[j, i])
            f0 = np.float64(ELF[j, i])
            g = np.float64(M[j, i]) + f0 * alpha[i] + e0 * beta[i] - np.float64(W[j, i]) * rs[i]
            ELS[j, i] = np.float32(np.float64(ELS[j, i]) + g)
            EL[j, i] = np.float32(dn * e0 + PD[j, i])
            ELF[j, i] = np.float32(qn * f0 + gn1 * e0 + PG[j, i])
