"""The surrogate partial derivative sigma'(U) (MODEL.md 2): the fast-sigmoid derivative."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def surrogate(u: np.float32, threshold: np.float32, beta: np.float32, u_cutoff: np.float32) -> np.float32:
    """sigma'(U) = beta / (1 + |beta (U - threshold)|)^2, and 0 below ``u_cutoff`` (1/V).

    float32 in, float32 out, as in the reference.
    """
    if u < u_cutoff:
        return np.float32(0.0)
    x = np.float32(1.0) + abs(beta * (u - threshold))
    return beta / (x * x)


def surrogate_array(u: np.ndarray, threshold: float, beta: float, u_cutoff: float) -> np.ndarray:
    """Vectorised sigma'(U) for arrays (float32), same arithmetic as :func:`surrogate`."""
    u = np.asarray(u, dtype=np.float32)
    b, th = np.float32(beta), np.float32(threshold)
    x = np.float32(1.0) + np.abs(b * (u - th))
    out = b / (x * x)
    return np.where(u < np.float32(u_cutoff), np.float32(0.0), out).astype(np.float32)
