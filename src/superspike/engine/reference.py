"""The readable reference engine: SPEC 2.1, one time step at a time, in float32, in the
reference's order of operations. It is the oracle every faster engine is tested against.

Read :func:`_simulate` beside SPEC.md: section 1 (neuron update, delivery) and the numbered
plasticity steps of 2.1 appear in that order, with the same numbers in the comments. Step 5
(the weight update every 5000 steps) is the optimiser's (``superspike.optim``); the engine
stops after an update step so that the run loop can apply it (see ``run.Simulation``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.typed import List

from superspike.engine.base import Engine, StepResult
from superspike.engine.state import State
from superspike.rule.surrogate import surrogate
from superspike.task.windows import WindowReplay


@njit(cache=True)
def _simulate(
    t0, n_steps, cf, ci,
    in_ptr, in_ids, tg_ptr, tg_ids,
    HIST, TGH, U, I, REF,
    W, FB, EL, ELF, ELS, ERR, TRE, TREF, AVG, HET, ERRH, TRP, TRZ, SIGL, PSPL,
    REC_T, REC_I, rec_n,
    has_win, wo_ptr, wo_ids, wc_ptr, wc_ids, WIN,
):  # fmt: skip
    # float32 constants (see ReferenceEngine._constants)
    u_rest, thr, k_mem, dec_syn = cf[0], cf[1], cf[2], cf[3]
    dec_rise, k_rise, k_decay, dec_avg = cf[4], cf[5], cf[6], cf[7]
    dt, beta, u_cut, psp_cut, err_cut = cf[8], cf[9], cf[10], cf[11], cf[12]
    rho, reg_a, dec_het = cf[13], cf[14], cf[15]
    L, delay, ref_steps, fb_lag = ci[0], ci[1], ci[2], ci[3]
    symmetric, reg_on, linear, mask = ci[4] == 1, ci[5] == 1, ci[6] == 1, ci[7]
    p_in, p_tg = in_ptr.shape[0] - 1, tg_ptr.shape[0] - 1
    nout = TGH.shape[1]

    for t in range(t0, t0 + n_steps):
        slot = t & mask
        dslot = (t - delay) & mask  # spikes emitted `delay` steps ago arrive now (SPEC 1)

        # -- input and target replay on the loop grid (SPEC 3) --------------------------------
        h0 = HIST[0]
        h0[slot, :] = 0
        s = t % p_in
        for k in range(in_ptr[s], in_ptr[s + 1]):
            h0[slot, in_ids[k]] += 1
        TGH[slot, :] = 0
        s = t % p_tg
        for k in range(tg_ptr[s], tg_ptr[s + 1]):
            TGH[slot, tg_ids[k]] += 1

        # -- neuron groups (SPEC 1): membrane, threshold/refractoriness, current decay --------
        for g in range(1, L + 1):
            u, cur, ref, h = U[g - 1], I[g - 1], REF[g - 1], HIST[g]
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
                    n = rec_n[g - 1]
                    REC_T[g - 1][n] = t
                    REC_I[g - 1][n] = i
                    rec_n[g - 1] = n + 1

        # -- spike delivery: I_syn += w for spikes emitted at t - delay (SPEC 1) --------------
        for c in range(L):
            pre, w, cur = HIST[c], W[c], I[c]
            for j in range(w.shape[0]):
                for _ in range(pre[dslot, j]):
                    for i in range(w.shape[1]):
                        cur[i] = cur[i] + w[j, i]

        # -- plasticity step 1: traces of every connection, before any of steps 2-6 -----------
        for c in range(L):
            trp, pre = TRP[c], HIST[c]
            for j in range(trp.shape[0]):
                trp[j] = (trp[j] + pre[dslot, j]) * dec_rise  # z, delayed spikes
            err, tre, tref = ERR[c], TRE[c], TREF[c]
            for i in range(err.shape[0]):
                tre[i] = tre[i] + k_rise * (err[i] - tre[i])  # err from the previous step
                tref[i] = tref[i] + k_decay * (tre[i] - tref[i])
            if reg_on and c < L - 1:
                het, post = HET[c], HIST[c + 1]
                for i in range(het.shape[0]):
                    het[i] = (het[i] + post[slot, i]) * dec_het  # undelayed own spikes (2.3)

        # -- steps 2-6, connection by connection, in creation order --------------------------
        for c in range(L):
            w, el, elf, els = W[c], EL[c], ELF[c], ELS[c]
            err, tref, avg, het, errh = ERR[c], TREF[c], AVG[c], HET[c], ERRH[c]
            trp, trz, sigl, pspl = TRP[c], TRZ[c], SIGL[c], PSPL[c]
            npre, npost = w.shape[0], w.shape[1]

            # 2. squared-error average
            for i in range(npost):
                avg[i] = avg[i] * dec_avg + dt * tref[i] * tref[i]

            # 3. error: output mismatch, or the error of the layer above fed back (SPEC 2.2)
            if c == L - 1 and has_win:
                # windows of opportunity (superspike.task.windows, SPEC 4 Fig. 5), on the same
                # delayed clock as the target: windows closing at t - delay give +1 if missed,
                # then opening windows open; an own spike outside a window gives -1, inside 0
                own = HIST[L]
                for i in range(nout):
                    err[i] = np.float32(0.0)
                if t >= delay:
                    s = (t - delay) % (wo_ptr.shape[0] - 1)
                    for k in range(wc_ptr[s], wc_ptr[s + 1]):
                        i = wc_ids[k]
                        if WIN[i] == 1:
                            err[i] += np.float32(1.0)
                        WIN[i] = 0
                    for k in range(wo_ptr[s], wo_ptr[s + 1]):
                        WIN[wo_ids[k]] = 1
                    for i in range(nout):
                        if own[dslot, i] > 0:
                            if WIN[i] == 0:
                                err[i] -= np.float32(own[dslot, i])
                            else:
                                WIN[i] = 2
            elif c == L - 1:
                tg, own = TGH, HIST[L]
                for i in range(nout):
                    err[i] = np.float32(tg[dslot, i] - own[dslot, i])
            else:
                up = ERRH[c + 1]
                lslot = (t - fb_lag) & mask
                for i in range(npost):
                    acc = np.float32(0.0)
                    if symmetric:  # W_out^T err_out(t-1), current forward weights
                        wu = W[c + 1]
                        for k in range(wu.shape[1]):
                            acc += wu[i, k] * up[lslot, k]
                    else:  # B^T err_out(t-1-delay): the error travels like a spike
                        b = FB[c + 1]
                        for k in range(b.shape[0]):
                            acc += b[k, i] * up[lslot, k]
                    err[i] = acc
            for i in range(npost):
                errh[slot, i] = err[i]

            # 4a. push sigma'(U_post) (U after this step's update) and z~ into the delay lines;
            #     read the values pushed D steps ago
            D = sigl.shape[0]
            pos = t % D
            u = U[c]
            sig_d = np.empty(npost, np.float32)
            for i in range(npost):
                sig_d[i] = sigl[pos, i]
                sigl[pos, i] = np.float32(1.0) if linear else surrogate(u[i], thr, beta, u_cut)
            psp_d = np.empty(npre, np.float32)
            for j in range(npre):
                psp_d[j] = pspl[pos, j]
                pspl[pos, j] = trz[j]

            # 4b. Hebbian coincidence into the eligibility trace, pres above the cut-off only
            for j in range(npre):
                if psp_d[j] > psp_cut:
                    for i in range(npost):
                        el[j, i] += psp_d[j] * sig_d[i]

            # 4c. double-exponential filter of the eligibility trace
            for j in range(npre):
                for i in range(npost):
                    elf[j, i] = elf[j, i] + k_decay * (el[j, i] - elf[j, i])
                    el[j, i] = el[j, i] * dec_rise

            # 4d. accumulate error x eligibility (- regulariser), posts with an error only
            active = np.empty(npost, np.bool_)
            reg = np.zeros(npost, np.float32)
            for i in range(npost):
                active[i] = abs(tref[i]) >= err_cut
                if reg_on and c < L - 1:
                    reg[i] = rho * het[i] ** reg_a
            for j in range(npre):
                for i in range(npost):
                    if active[i]:
                        els[j, i] += elf[j, i] * tref[i] - w[j, i] * reg[i]

            # 6. z~ follows z
            for j in range(npre):
                trz[j] = trz[j] + k_decay * (trp[j] - trz[j])


class ReferenceEngine(Engine):
    """Per-step, per-synapse simulation of SPEC 2.1 (compiled with numba, float32)."""

    name = "reference"
    supports_windows = True

    def advance(self, state: State, n_steps: int) -> StepResult:
        """Advance ``state`` by ``n_steps`` steps with fixed weights; return the spikes emitted."""
        spec = self.network.spec
        L = spec.n_connections
        sizes = spec.sizes
        cap = [n * (n_steps // (spec.neuron.refractory_steps + 1) + 1) for n in sizes[1:]]
        rec_t = List([np.empty(k, np.int64) for k in cap])
        rec_i = List([np.empty(k, np.int64) for k in cap])
        rec_n = np.zeros(L, np.int64)
        g, cs = state.groups, state.conns
        fb = List([self.feedback.get(c, _EMPTY) for c in range(L)])
        win = self.windows if self.windows is not None else _NO_WINDOWS
        _simulate(
            state.clock, n_steps, self._cf, self._ci,
            self.input.ptr, self.input.ids, self.target.ptr, self.target.ids,
            List([x.hist for x in g]), state.target_hist,
            List([x.u for x in g[1:]]), List([x.i_syn for x in g[1:]]), List([x.ref for x in g[1:]]),
            List([c.w for c in cs]), fb, List([c.el for c in cs]), List([c.el_flt for c in cs]),
            List([c.el_sum for c in cs]), List([c.err for c in cs]), List([c.tr_err for c in cs]),
            List([c.tr_err_flt for c in cs]), List([c.avg for c in cs]), List([c.het for c in cs]),
            List([c.err_hist for c in cs]), List([c.tr_pre for c in cs]), List([c.tr_psp for c in cs]),
            List([c.sig_line for c in cs]), List([c.psp_line for c in cs]),
            rec_t, rec_i, rec_n,
            self.windows is not None, win.open_ptr, win.open_ids, win.close_ptr, win.close_ids, state.window_state,
        )  # fmt: skip
        state.clock += n_steps
        return StepResult([(rec_t[k][: rec_n[k]].copy(), rec_i[k][: rec_n[k]].copy()) for k in range(L)])


_EMPTY = np.zeros((1, 1), np.float32)
_NO_WINDOWS = WindowReplay.empty()
