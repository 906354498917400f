"""Cost measures: the reference's reported mean-square error (MODEL.md 2.9) and an offline van
Rossum distance between recorded and target spike trains."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from superspike.params import RuleParams, cost_scale


def reported_mse(avg: np.ndarray, t: float, rule: RuleParams) -> float:
    """MSE(t) = K mean_i(avg_i) / (1 - exp(-t/tau_cost) + 1e-9) (MODEL.md 2.9; no square root,
    as in the reference). ``avg`` is the squared-error average of the output neurons (of all output
    groups, concatenated), ``t`` in s."""
    return float(cost_scale(rule) * float(np.mean(avg, dtype=np.float64)) / (1 - math.exp(-t / rule.tau_cost) + 1e-9))


def _kernel_terms(kernel: str, tau: float, tau_rise: float, tau_decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and time constants of the exponentials that make up the kernel."""
    if kernel == "single":
        return np.array([1.0]), np.array([float(tau)])
    if kernel == "double":
        return np.array([1.0, -1.0]), np.array([float(tau_decay), float(tau_rise)])
    raise ValueError(f"kernel must be 'single' or 'double', got {kernel!r}")


@njit(cache=True)
def _decayed_sum(src: np.ndarray, at: np.ndarray, tau: float, strict: bool) -> float:
    """sum over pairs src_i <= at_j (src_i < at_j if ``strict``) of exp(-(at_j - src_i)/tau), both
    sorted ascending, in one merged pass: a running sum of the sources, decayed to each query."""
    total = 0.0
    s = 0.0  # sum of exp(-(t_s - src_i)/tau) over the sources passed so far
    t_s = 0.0
    i = 0
    for j in range(at.shape[0]):
        t = at[j]
        while i < src.shape[0] and (src[i] < t or (not strict and src[i] == t)):
            s = s * math.exp(-(src[i] - t_s) / tau) + 1.0
            t_s = src[i]
            i += 1
        if i:
            total += s * math.exp(-(t - t_s) / tau)
    return total


@njit(cache=True)
def _pair_sum(a: np.ndarray, b: np.ndarray, coef: np.ndarray, tau: np.ndarray) -> float:
    """sum_{i,j} integral k(t - a_i) k(t - b_j) dt, in closed form, for k = sum_m coef_m
    exp(-t/tau_m): the product of components m (of a's spike) and n (of b's) integrates to
    coef_m coef_n tau_m tau_n / (tau_m + tau_n) times the earlier spike's component decayed over
    the gap (a's when the two coincide). ``a`` and ``b`` sorted ascending; linear in their length."""
    nt = coef.shape[0]
    total = 0.0
    for m in range(nt):
        for n in range(nt):
            w = coef[m] * coef[n] * tau[m] * tau[n] / (tau[m] + tau[n])
            # a_i <= b_j: a's spike is the earlier, its component m decays; b_j < a_i: b's, n
            total += w * (_decayed_sum(a, b, tau[m], False) + _decayed_sum(b, a, tau[n], True))
    return total


@njit(cache=True)
def _distances(xs: np.ndarray, xb: np.ndarray, ys: np.ndarray, yb: np.ndarray, coef: np.ndarray, tau: np.ndarray):
    """Van Rossum distance of every neuron k between spikes xs[xb[k]:xb[k+1]] and ys[yb[k]:yb[k+1]]
    (each neuron's spikes sorted ascending)."""
    zero = np.zeros(1)
    norm = _pair_sum(zero, zero, coef, tau)
    n = xb.shape[0] - 1
    out = np.zeros(n)
    for k in range(n):
        a, b = xs[xb[k] : xb[k + 1]], ys[yb[k] : yb[k + 1]]
        if a.shape[0] or b.shape[0]:
            d2 = _pair_sum(a, a, coef, tau) + _pair_sum(b, b, coef, tau) - 2 * _pair_sum(a, b, coef, tau)
            out[k] = math.sqrt(max(d2, 0.0) / norm)
    return out


def van_rossum_distance(
    x: np.ndarray,
    y: np.ndarray,
    kernel: str = "double",
    tau: float = 10e-3,
    tau_rise: float = 5e-3,
    tau_decay: float = 10e-3,
) -> float:
    """Van Rossum distance between two spike trains (times in s), computed exactly.

    D^2 = integral (f_x - f_y)^2 dt / integral k^2 dt, with f the spike train filtered by k:
    ``kernel="double"`` is the paper's double exponential exp(-t/tau_decay) - exp(-t/tau_rise),
    ``"single"`` is exp(-t/tau). The normalisation makes one unmatched spike cost D = 1. For the
    single exponential this is exactly ``elephant.spike_train_dissimilarity.van_rossum_distance``
    with ``time_constant = tau`` (elephant normalises the same way); van Rossum's (2001) own
    D^2 = (1/tau) integral (f_x - f_y)^2 dt is smaller by sqrt(2): D_2001 = D / sqrt(2).
    """
    x = np.sort(np.asarray(x, dtype=np.float64))
    y = np.sort(np.asarray(y, dtype=np.float64))
    coef, taus = _kernel_terms(kernel, tau, tau_rise, tau_decay)
    return float(_distances(x, np.array([0, x.size]), y, np.array([0, y.size]), coef, taus)[0])


def van_rossum_per_neuron(
    x_times: np.ndarray,
    x_ids: np.ndarray,
    y_times: np.ndarray,
    y_ids: np.ndarray,
    n: int,
    kernel: str = "double",
    tau: float = 10e-3,
    tau_rise: float = 5e-3,
    tau_decay: float = 10e-3,
) -> np.ndarray:
    """Van Rossum distance of each of ``n`` neurons between two rasters (times in s); the kernel
    as in :func:`van_rossum_distance`."""
    xo, yo = np.lexsort((x_times, x_ids)), np.lexsort((y_times, y_ids))  # by neuron, then time
    xs = np.ascontiguousarray(np.asarray(x_times, dtype=np.float64)[xo])
    ys = np.ascontiguousarray(np.asarray(y_times, dtype=np.float64)[yo])
    xb = np.searchsorted(np.asarray(x_ids)[xo], np.arange(n + 1))
    yb = np.searchsorted(np.asarray(y_ids)[yo], np.arange(n + 1))
    coef, taus = _kernel_terms(kernel, tau, tau_rise, tau_decay)
    out = _distances(xs, xb, ys, yb, coef, taus)
    return out
