"""The fast engine (SPEC 5): per-neuron forward simulation plus a few float32 matrix products.

Within one call the weights are fixed, so the forward dynamics do not depend on the rule. A
compiled kernel (:func:`~superspike.engine._fast_kernels.forward`) runs the neurons, traces,
errors and delay lines exactly as the reference engine does (SPEC 1, 2.1 steps 1-3, 4a, 6) and
records per-neuron time series over the chunk's steps k = 0..n-1:

- ``x_j(k)``: the delayed z~ of pre j with the PSP cut-off applied (step 4b),
- ``s_i(k)``: the delayed sigma'(U) of post i,
- ``e_i(k)``: tr_err_flt of post i where |tr_err_flt| >= the error cut-off, else 0 (step 4d),
- ``sum_k rho h_i(k)^a`` over active steps (regulariser, SPEC 2.3).

Per synapse, with a(k) = x_j(k) s_i(k), steps 4b-4d read (el, el_flt stored after a step)::

    el'(k)  = el(k-1) + a(k);   el_flt(k) = q el_flt(k-1) + kk el'(k);   el(k) = d el'(k)
    el_sum += el_flt(k) e_i(k) - w r_i(k)

with kk = dt/tau_decay, q = 1 - kk, d = exp(-dt/tau_rise). Solving the linear recursion, a unit
coincidence at step s reaches el_flt at step m >= s with weight G(m - s),
``G(l) = kk sum_{r=0}^{l} q^(l-r) d^r``, so over the chunk (el0, f0 the values carried in)::

    el_sum += X^T (S * Et) + f0 * alpha + el0 * beta - w * sum_k r(k)
    Et(s)   = sum_{m>=s} G(m-s) e(m)            (errors filtered backwards in time)
    alpha   = sum_m e(m) q^(m+1),  beta = Et(0)
    el      = d^n el0 + X^T (S * d^(n-k))
    el_flt  = q^n f0 + G(n-1) el0 + X^T (S * G(n-1-k))

X (steps x pre) and S * ... (steps x post) are float32 arrays, so each line is one sgemm. The two
forward kernels d^(n-k) and G(n-1-k) fall below 1e-10 of their peak after about 1150 and 2400
steps, so their products run over the chunk's last steps only; what is left out is far below
float32 resolution (tests/test_fast_engine.py checks against full-length products).

Errors of hidden layers are per-neuron and event-driven (the output error is nonzero only at
target and own spike events), with the reference's float32 sums (SPEC 2.2).
"""

from __future__ import annotations

import numpy as np

from superspike.engine import _fast_kernels as fk
from superspike.engine.base import Engine, StepResult
from superspike.engine.state import State, ring_size
from superspike.network import Network
from superspike.task.raster import Task
from superspike.task.windows import WindowReplay

#: relative size below which the forward kernels d^m and G(m) are cut off (see module docstring)
KERNEL_TOL = 1e-10
_NO_WINDOWS = WindowReplay.empty()
#: longest chunk simulated at once; longer calls are split (memory does not grow with n_steps)
MAX_BLOCK = 5000


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
    """Number of final steps (for el, for el_flt) whose contribution to the end state exceeds
    ``tol`` times the kernel's peak; earlier steps are below float32 resolution."""
    n = 1 << 20
    G, Dk = forward_kernels(k_decay, dec_rise, n)
    below = np.flatnonzero(Dk < tol * Dk.max())
    wd = int(below[0]) if below.size else n
    peak = int(np.argmax(G))
    below = np.flatnonzero(G[peak:] < tol * G.max())
    wg = peak + int(below[0]) if below.size else n
    return wd, wg


class FastEngine(Engine):
    """Per-neuron compiled forward kernel plus float32 BLAS products per chunk (SPEC 5).

    Interchangeable with :class:`~superspike.engine.reference.ReferenceEngine`: it advances the
    same :class:`State`, and every field equals the reference's at return (to float tolerance;
    spikes, neuron and trace states exactly).
    """

    name = "fast"
    supports_windows = True

    def __init__(self, network: Network, task: Task, max_block: int = MAX_BLOCK, tol: float = KERNEL_TOL) -> None:
        super().__init__(network, task)
        spec = network.spec
        self.L = L = spec.n_connections
        sizes = spec.sizes
        self.nin = sizes[0]
        self.goff = np.zeros(L + 2, np.int64)
        np.cumsum(sizes, out=self.goff[1:])
        self.N = N = int(self.goff[-1])
        self.NP = int(self.goff[L])  # pre space: groups 0..L-1
        self.NQ = N - self.nin  # post space: groups 1..L
        self.grp = np.repeat(np.arange(L + 1), sizes).astype(np.int64)
        self.dlen = np.array([spec.delay_line_steps(c) for c in range(L)], np.int64)
        self.R = ring_size(spec.neuron.delay_steps, spec.feedback_lag())
        self.woff = np.zeros(L + 1, np.int64)
        np.cumsum([a * b for a, b in spec.shapes], out=self.woff[1:])
        fshapes = [(sizes[c + 2], sizes[c + 1]) for c in range(L - 1)]
        self.foff = np.zeros(max(L, 1), np.int64)
        for c in range(1, L - 1):
            self.foff[c] = self.foff[c - 1] + fshapes[c - 1][0] * fshapes[c - 1][1]
        self.FF = np.zeros(max(1, sum(a * b for a, b in fshapes)), np.float32)
        self.symmetric = spec.feedback == "symmetric"
        if not self.symmetric:
            for c in range(L - 1):
                b = self.feedback[c + 1]
                self.FF[self.foff[c] : self.foff[c] + b.size] = b.ravel()
        self.max_block = int(max_block)
        cf = self._cf
        self.k_decay, self.dec_rise = float(cf[6]), float(cf[4])
        self.q = 1.0 - self.k_decay
        self.wd, self.wg = kernel_windows(self.k_decay, self.dec_rise, tol)
        G, Dk = forward_kernels(self.k_decay, self.dec_rise, max(self.max_block, self.wg, self.wd) + 1)
        self._G, self._Dk = G, Dk
        #: float32 kernels of the end-of-chunk products, reversed: row n - w + r of the chunk
        #: gets d^(w - r) (el) and G(w - 1 - r) (el_flt)
        self._DKr = Dk[: self.wd][::-1].astype(np.float32)
        self._GKr = G[: self.wg][::-1].astype(np.float32)
        self.nblk = 2
        #: how often a full-length end product was needed (the window test failed)
        self.full_end_products = 0
        self._buffers_n = 0
        self._UPK = np.zeros(max(sizes), np.int64)
        #: wall time spent in the forward kernel and in the products (s), for benchmarks
        self.timing = {"forward": 0.0, "backward": 0.0, "products": 0.0, "synapses": 0.0, "other": 0.0}
        self.flops = 0.0

    # -- buffers ----------------------------------------------------------------------------
    def _ensure_buffers(self, n: int) -> None:
        if n <= self._buffers_n:
            return
        f32 = np.float32
        self.X = np.empty((n, self.NP), f32)
        self.S = np.empty((n, self.NQ), f32)
        self.E = np.empty((n, self.NQ), f32)
        self.YD = np.empty((min(n, self.wd), self.NQ), f32)
        self.YG = np.empty((min(n, self.wg), self.NQ), f32)
        self.XMAX = np.zeros((n, self.L), np.int32)
        self.SMAX = np.zeros((n, self.L), np.int32)
        self._buffers_n = n

    def _end_products(self, c: int, n: int, XMAX: np.ndarray, SMAX: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's own contributions to el and el_flt at its end, for connection c:
        ``X^T (S d^(n-k))`` and ``X^T (S G(n-1-k))`` over the last wd / wg steps.

        The steps left out contribute at most ``sum_k kernel(k) max_j x_j(k) max_i s_i(k)``; if
        that exceeds 1e-7 of the largest entry (a whole layer went quiet, SPEC 5), the product
        is redone over the whole chunk.
        """
        goff, nin = self.goff, self.nin
        a, b = goff[c + 1] - nin, goff[c + 2] - nin
        p0, p1 = goff[c], goff[c + 1]
        out = []
        for kern, w, Y in ((self._DKr, min(n, self.wd), self.YD), (self._GKr, min(n, self.wg), self.YG)):
            Sw = self.S[n - w : n, a:b]
            Yw = Y[:w, : b - a]
            np.multiply(Sw, kern[len(kern) - w :, None], out=Yw)
            P = self.X[n - w : n, p0:p1].T @ Yw
            self.flops += 2.0 * w * (p1 - p0) * (b - a)
            if w < n:
                # bound of the left-out steps k < n - w (their kernel weights are below kern[0])
                full = self._Dk if kern is self._DKr else self._G
                m = np.arange(n - w)
                kw = full[n - 1 - m]
                xm = XMAX[: n - w, c].view(np.float32).astype(np.float64)
                sm = SMAX[: n - w, c].view(np.float32).astype(np.float64)
                bound = float(np.dot(kw, xm * sm))
                if bound > 1e-7 * float(np.abs(P).max(initial=0.0)):
                    self.full_end_products += 1
                    Yf = (self.S[:n, a:b] * full[:n][::-1, None]).astype(np.float32)
                    P = self.X[:n, p0:p1].T @ Yf
                    self.flops += 2.0 * n * (p1 - p0) * (b - a)
            out.append(P)
        return out[0], out[1]

    def advance(self, state: State, n_steps: int) -> StepResult:
        """Advance ``state`` by ``n_steps`` steps with fixed weights; return the spikes emitted."""
        if n_steps < 1:
            raise ValueError("n_steps must be at least 1")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        done = 0
        while done < n_steps:
            n = min(self.max_block, n_steps - done)
            parts.append(self._advance_block(state, n))
            done += n
        t, i = (parts[0] if len(parts) == 1 else (np.concatenate([p[0] for p in parts]),
                                                   np.concatenate([p[1] for p in parts])))
        out = []
        for g in range(1, self.L + 1):
            m = (i >= self.goff[g]) & (i < self.goff[g + 1])
            out.append((t[m], i[m] - self.goff[g]))
        return StepResult(out)

    def _advance_block(self, state: State, n: int) -> tuple[np.ndarray, np.ndarray]:
        import time

        t_start = time.perf_counter()
        L, N, nin, goff = self.L, self.N, self.nin, self.goff
        spec = self.network.spec
        self._ensure_buffers(max(n, min(self.max_block, 5000)))
        f32 = np.float32
        R = self.R
        # -- pack the state into the flat layout of the kernels --------------------------------
        HIST = np.empty((R, N), np.int8)
        for g, gs in enumerate(state.groups):
            HIST[:, goff[g] : goff[g + 1]] = gs.hist
        lif = state.groups[1:]
        U = np.concatenate([g.u for g in lif])
        I = np.concatenate([g.i_syn for g in lif])
        REF = np.concatenate([g.ref for g in lif])
        cs = state.conns
        ERR = np.concatenate([c.err for c in cs])
        TRE = np.concatenate([c.tr_err for c in cs])
        TREF = np.concatenate([c.tr_err_flt for c in cs])
        AVG = np.concatenate([c.avg for c in cs])
        HET = np.concatenate([c.het for c in cs])
        ERRH = np.concatenate([c.err_hist for c in cs], axis=1)
        TRP = np.concatenate([c.tr_pre for c in cs])
        TRZ = np.concatenate([c.tr_psp for c in cs])
        Dmax = int(self.dlen.max())
        SIGL = np.zeros((Dmax, self.NQ), f32)
        PSPL = np.zeros((Dmax, self.NP), f32)
        for c, cc in enumerate(cs):
            D = self.dlen[c]
            SIGL[:D, goff[c + 1] - nin : goff[c + 2] - nin] = cc.sig_line
            PSPL[:D, goff[c] : goff[c + 1]] = cc.psp_line
        WF = np.concatenate([c.w.ravel() for c in cs])
        if self.symmetric:
            for c in range(L - 1):
                wt = cs[c + 1].w.T
                self.FF[self.foff[c] : self.foff[c] + wt.size] = wt.ravel()
        SPK = np.empty((R, N), np.int64)
        SPKN = np.zeros(R, np.int64)
        fk.rebuild_spike_lists(HIST, SPK, SPKN)
        RS = np.zeros(self.NQ, np.float64)
        cap = self.NQ * (n // (spec.neuron.refractory_steps + 1) + 1)
        REC_T = np.empty(cap, np.int64)
        REC_I = np.empty(cap, np.int64)
        win = self.windows if self.windows is not None else _NO_WINDOWS
        WIN = state.window_state if self.windows is not None else np.zeros(0, np.int8)
        XMAX = self.XMAX
        SMAX = self.SMAX
        t0 = state.clock
        t1 = time.perf_counter()
        nrec = fk.forward(
            t0, n, self._cf, self._ci, L, nin, goff, self.grp, self.dlen,
            self.input.ptr, self.input.ids, self.target.ptr, self.target.ids,
            HIST, state.target_hist, SPK, SPKN, U, I, REF, WF, self.woff, self.FF, self.foff,
            ERR, TRE, TREF, AVG, HET, ERRH, TRP, TRZ, SIGL, PSPL,
            self.X, self.S, self.E, RS, self._UPK, n - min(n, self.wd), XMAX, SMAX, REC_T, REC_I,
            self.windows is not None, win.open_ptr, win.open_ids, win.close_ptr, win.close_ids, WIN,
        )  # fmt: skip
        t2 = time.perf_counter()
        # -- unpack the per-neuron state --------------------------------------------------------
        for g, gs in enumerate(state.groups):
            gs.hist[...] = HIST[:, goff[g] : goff[g + 1]]
        for g, gs in enumerate(lif):
            a, b = goff[g + 1] - nin, goff[g + 2] - nin
            gs.u[...] = U[a:b]
            gs.i_syn[...] = I[a:b]
            gs.ref[...] = REF[a:b]
        for c, cc in enumerate(cs):
            a, b = goff[c + 1] - nin, goff[c + 2] - nin
            p0, p1 = goff[c], goff[c + 1]
            cc.err[...] = ERR[a:b]
            cc.tr_err[...] = TRE[a:b]
            cc.tr_err_flt[...] = TREF[a:b]
            cc.avg[...] = AVG[a:b]
            cc.het[...] = HET[a:b]
            cc.err_hist[...] = ERRH[:, a:b]
            cc.tr_pre[...] = TRP[p0:p1]
            cc.tr_psp[...] = TRZ[p0:p1]
            D = self.dlen[c]
            cc.sig_line[...] = SIGL[:D, a:b]
            cc.psp_line[...] = PSPL[:D, p0:p1]
        # -- plasticity over the chunk (SPEC 5) -------------------------------------------------
        t3 = time.perf_counter()
        ends = [self._end_products(c, n, XMAX, SMAX) for c in range(L)]
        t4 = time.perf_counter()
        ALPHA = np.empty(self.NQ)
        BETA = np.empty(self.NQ)
        fk.backward(self.S, self.E, n, self.q, self.dec_rise, self.k_decay, ALPHA, BETA, self.nblk)
        t5 = time.perf_counter()
        dn = self.dec_rise**n
        qn = self.q**n
        gn1 = float(self._G[n - 1])
        tp = t4 - t3
        ts = 0.0
        for c, cc in enumerate(cs):
            a, b = goff[c + 1] - nin, goff[c + 2] - nin
            p0, p1 = goff[c], goff[c + 1]
            ta = time.perf_counter()
            M = self.X[:n, p0:p1].T @ self.S[:n, a:b]
            self.flops += 2.0 * n * (p1 - p0) * (b - a)
            tb = time.perf_counter()
            PD, PG = ends[c]
            fk.synapse_update(cc.el, cc.el_flt, cc.el_sum, cc.w, M, PD, PG, ALPHA[a:b], BETA[a:b], RS[a:b],
                             dn, qn, gn1)  # fmt: skip
            tc = time.perf_counter()
            tp += tb - ta
            ts += tc - tb
        state.clock += n
        tm = self.timing
        tm["forward"] += t2 - t1
        tm["backward"] += t5 - t4
        tm["products"] += tp
        tm["synapses"] += ts
        tm["other"] += (time.perf_counter() - t_start) - (t2 - t1) - (t5 - t4) - tp - ts
        return REC_T[:nrec].copy(), REC_I[:nrec].copy()
