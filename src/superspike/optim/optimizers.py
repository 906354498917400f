"""Step 5 of SPEC 2.1: every update interval, turn the accumulated gradient into a weight change.

``rmaxprop`` is the reference's rule: a per-parameter learning rate with
``grad2 = max(g^2, gamma * grad2)``, so that |dw| <= eta per update. ``rmsprop`` uses the usual
running average and ``fixed`` a plain learning rate (the paper's Fig. 1 compares the three).
"""

from __future__ import annotations

import math

import numpy as np

from superspike.engine.state import ConnectionState
from superspike.errors import ConfigError


class Optimizer:
    """Base: computes the interval's mean gradient, updates grad2, resets el_sum, applies dw."""

    name = "base"

    def __init__(self, update_interval: float, tau_rms: float, epsilon: float, w_max: float) -> None:
        self.gamma = np.float32(math.exp(-update_interval / tau_rms))
        self.epsilon = np.float32(epsilon)
        self.w_max = np.float32(w_max)

    def step(self, conn: ConnectionState, n_steps: int, eta: float, learning: bool) -> None:
        """Apply one update to ``conn`` from the gradient summed over ``n_steps`` steps.

        grad2 and el_sum evolve even when ``learning`` is off (burn-in, SPEC 3).
        """
        g = conn.el_sum / np.float32(n_steps)
        self._moment(conn.grad2, g)
        conn.el_sum[...] = 0
        if learning:
            conn.w += self._delta(g, conn.grad2, np.float32(eta))
            np.clip(conn.w, -self.w_max, self.w_max, out=conn.w)

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        pass

    def _delta(self, g: np.ndarray, grad2: np.ndarray, eta: np.float32) -> np.ndarray:
        raise NotImplementedError


class RMaxProp(Optimizer):
    """grad2 = max(g^2, gamma grad2); dw = eta g / (sqrt(grad2) + epsilon) (the reference)."""

    name = "rmaxprop"

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        np.maximum(g * g, self.gamma * grad2, out=grad2)

    def _delta(self, g: np.ndarray, grad2: np.ndarray, eta: np.float32) -> np.ndarray:
        return eta * g / (np.sqrt(grad2) + self.epsilon)


class RMSprop(RMaxProp):
    """grad2 = gamma grad2 + (1 - gamma) g^2; dw = eta g / (sqrt(grad2) + epsilon)."""

    name = "rmsprop"

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        grad2 *= self.gamma
        grad2 += (np.float32(1) - self.gamma) * g * g


class Fixed(Optimizer):
    """dw = eta g: one learning rate for all weights (grad2 is kept as a diagnostic)."""

    name = "fixed"

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        np.maximum(g * g, self.gamma * grad2, out=grad2)

    def _delta(self, g: np.ndarray, grad2: np.ndarray, eta: np.float32) -> np.ndarray:
        return eta * g


OPTIMIZERS: dict[str, type[Optimizer]] = {o.name: o for o in (RMaxProp, RMSprop, Fixed)}


def get_optimizer(name: str) -> type[Optimizer]:
    """The optimiser class registered under ``name``."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ConfigError("optimizer", f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
