"""Cost measures: the reference's reported mean-square error (MODEL.md 2.9) and an offline van
Rossum distance between recorded and target spike trains."""

from __future__ import annotations

import math

import numpy as np

from superspike.params import RuleParams, cost_scale


def reported_mse(avg: np.ndarray, t: float, rule: RuleParams) -> float:
    """MSE(t) = K mean_i(avg_i) / (1 - exp(-t/tau_cost) + 1e-9) (MODEL.md 2.9; no square root,
    as in the reference). ``avg`` is the squared-error average of the output neurons (of all output
    groups, concatenated), ``t`` in s."""
    return float(cost_scale(rule) * float(np.mean(avg, dtype=np.float64)) / (1 - math.exp(-t / rule.tau_cost) + 1e-9))


def _kernel_terms(kernel: str, tau: float, tau_rise: float, tau_decay: float) -> list[tuple[float, float]]:
    """(coefficient, time constant) of the exponentials that make up the kernel."""
    if kernel == "single":
        return [(1.0, tau)]
    if kernel == "double":
        return [(1.0, tau_decay), (-1.0, tau_rise)]
    raise ValueError(f"kernel must be 'single' or 'double', got {kernel!r}")


def _pair_sum(a: np.ndarray, b: np.ndarray, terms: list[tuple[float, float]]) -> float:
    """sum_{i,j} integral k(t - a_i) k(t - b_j) dt, in closed form."""
    if a.size == 0 or b.size == 0:
        return 0.0
    d = b[None, :] - a[:, None]
    total = 0.0
    for cm, tm in terms:
        for cn, tn in terms:
            w = cm * cn * tm * tn / (tm + tn)
            # the earlier spike's component decays over the gap |d|
            total += w * (np.exp(-np.abs(d[d >= 0]) / tm).sum() + np.exp(-np.abs(d[d < 0]) / tn).sum())
    return float(total)


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
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    terms = _kernel_terms(kernel, tau, tau_rise, tau_decay)
    norm = _pair_sum(np.zeros(1), np.zeros(1), terms)
    d2 = _pair_sum(x, x, terms) + _pair_sum(y, y, terms) - 2 * _pair_sum(x, y, terms)
    return math.sqrt(max(d2, 0.0) / norm)


def van_rossum_per_neuron(
    x_times: np.ndarray, x_ids: np.ndarray, y_times: np.ndarray, y_ids: np.ndarray, n: int, **kw: float | str
) -> np.ndarray:
    """Van Rossum distance of each of ``n`` neurons between two rasters (times in s)."""
    out = np.zeros(n)
    xo, yo = np.argsort(x_ids, kind="stable"), np.argsort(y_ids, kind="stable")
    xs, xi, ys, yi = x_times[xo], x_ids[xo], y_times[yo], y_ids[yo]
    xb = np.searchsorted(xi, np.arange(n + 1))
    yb = np.searchsorted(yi, np.arange(n + 1))
    for k in range(n):
        a, b = xs[xb[k] : xb[k + 1]], ys[yb[k] : yb[k + 1]]
        if a.size or b.size:
            out[k] = van_rossum_distance(a, b, **kw)  # type: ignore[arg-type]
    return out
