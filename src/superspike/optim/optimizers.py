"""Step 5 of the rule (MODEL.md 2.7): every update interval, turn the accumulated gradient into a weight change.

``rmaxprop`` is the reference's rule: a per-parameter learning rate with
``grad2 = max(g^2, gamma * grad2)``, so that |dw| <= eta per update. ``rmsprop`` uses the usual
running average and ``fixed`` a plain learning rate (the paper's Fig. 1 compares the three).

Optimisers work on arrays (a plastic connection's ``w``, ``el_sum`` and ``grad2``, changed in
place) and know nothing of the engines or their state.
"""

from __future__ import annotations

import math

import numpy as np

from superspike.errors import ConfigError


class Optimizer:
    """Base: computes the interval's mean gradient, updates grad2, resets el_sum, applies dw."""

    name = "base"

    def __init__(self, update_interval: float, tau_rms: float, epsilon: float, w_max: float) -> None:
        self.gamma = np.float32(math.exp(-update_interval / tau_rms))
        self.epsilon = np.float32(epsilon)
        self.w_max = np.float32(w_max)

    def step(
        self, w: np.ndarray, el_sum: np.ndarray, grad2: np.ndarray, n_steps: int, eta: float, learning: bool
    ) -> None:
        """One update of the weights ``w`` from the gradient ``el_sum`` summed over ``n_steps``
        steps, with the second moment ``grad2``; all float32 arrays of one shape, changed in place.

        grad2 and el_sum evolve even when ``learning`` is off (burn-in, MODEL.md 2.10).
        """
        g = el_sum / np.float32(n_steps)
        self._moment(grad2, g)
        el_sum[...] = 0
        if learning:
            w += self._delta(g, grad2, np.float32(eta))
            np.clip(w, -self.w_max, self.w_max, out=w)

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
