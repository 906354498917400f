"""Step 5 of the rule (MODEL.md 2.7): every update interval, turn the accumulated gradient into a weight change.

``rmaxprop`` is the reference's rule: a per-parameter learning rate with
``grad2 = max(g^2, gamma * grad2)``, so that |dw| <= eta per update. ``rmsprop`` uses the usual
running average and ``fixed`` a plain learning rate (the paper's Fig. 1 compares the three).

The memory of the second moment is ``gamma = exp(-update_interval / tau)``, with ``tau`` the
rule's ``tau_rms`` (30 s; MODEL.md 2.7) unless RMSprop is given its own. RMSprop as the reference
has it (in its source, commented out) starts its running average from 0 with that 30 s memory,
so its first steps divide by a second moment far below g^2 and can be several times eta
(after one update sqrt(grad2) = sqrt(1 - gamma) |g|, a step of 7.8 eta). Two options change
that, both off by default: a shorter memory ``tau``, and ``bias_correction``, which divides
the second moment by ``1 - gamma^t`` after its t-th update (as Adam does), so that an average
of equal gradients is their square from the first update on. ``grad2`` itself stays the
uncorrected average (it is the state a checkpoint saves); the correction needs the update count,
which the caller gives (the simulation derives it from its clock, so a resumed run continues it).

Optimisers work on arrays (a plastic connection's ``w``, ``el_sum`` and ``grad2``, changed in
place) and know nothing of the engines or their state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from superspike.errors import ConfigError

if TYPE_CHECKING:
    from superspike.params import RuleParams


class Optimizer:
    """Base: computes the interval's mean gradient, updates grad2, resets el_sum, applies dw."""

    name = "base"

    def __init__(self, update_interval: float, tau_rms: float, epsilon: float, w_max: float) -> None:
        self.gamma = np.float32(math.exp(-update_interval / tau_rms))
        self.epsilon = np.float32(epsilon)
        self.w_max = np.float32(w_max)

    def step(
        self,
        w: np.ndarray,
        el_sum: np.ndarray,
        grad2: np.ndarray,
        n_steps: int,
        eta: float,
        learning: bool,
        count: int | None = None,
    ) -> None:
        """One update of the weights ``w`` from the gradient ``el_sum`` summed over ``n_steps``
        steps, with the second moment ``grad2``; all float32 arrays of one shape, changed in place.
        ``count``: how many updates grad2 has had, this one included (1 for the first); only an
        optimiser with bias correction needs it.

        grad2 and el_sum evolve even when ``learning`` is off (burn-in, MODEL.md 2.10).
        """
        g = el_sum / np.float32(n_steps)
        self._moment(grad2, g)
        el_sum[...] = 0
        if learning:
            w += self._delta(g, self._second_moment(grad2, count), np.float32(eta))
            np.clip(w, -self.w_max, self.w_max, out=w)

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        pass

    def _second_moment(self, grad2: np.ndarray, count: int | None) -> np.ndarray:
        return grad2

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
    """grad2 = gamma grad2 + (1 - gamma) g^2; dw = eta g / (sqrt(grad2) + epsilon).

    ``bias_correction``: dw = eta g / (sqrt(grad2 / (1 - gamma^t)) + epsilon) after the t-th
    update of grad2 (Adam's correction of an average started at 0). Off: the reference's RMSprop.
    """

    name = "rmsprop"

    def __init__(
        self, update_interval: float, tau_rms: float, epsilon: float, w_max: float, bias_correction: bool = False
    ) -> None:
        super().__init__(update_interval, tau_rms, epsilon, w_max)
        self.bias_correction = bool(bias_correction)

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        grad2 *= self.gamma
        grad2 += (np.float32(1) - self.gamma) * g * g

    def _second_moment(self, grad2: np.ndarray, count: int | None) -> np.ndarray:
        if not self.bias_correction:
            return grad2
        if count is None or count < 1:
            raise ValueError(f"RMSprop with bias correction needs the update count (1 for the first), got {count!r}")
        # 1 - gamma^t in float64 (gamma^t underflows harmlessly to 0 for long runs), then float32
        return grad2 / np.float32(1.0 - float(self.gamma) ** count)


class Fixed(Optimizer):
    """dw = eta g: one learning rate for all weights (grad2 is kept as a diagnostic)."""

    name = "fixed"

    def _moment(self, grad2: np.ndarray, g: np.ndarray) -> None:
        np.maximum(g * g, self.gamma * grad2, out=grad2)

    def _delta(self, g: np.ndarray, grad2: np.ndarray, eta: np.float32) -> np.ndarray:
        return eta * g


OPTIMIZERS: dict[str, type[Optimizer]] = {o.name: o for o in (RMaxProp, RMSprop, Fixed)}


def make_optimizer(
    name: str,
    rule: RuleParams,
    epsilon: float = 1e-12,
    *,
    rms_tau: float | None = None,
    rms_bias_correction: bool = False,
) -> Optimizer:
    """The optimiser ``name`` for a network with the rule constants ``rule`` (update interval,
    ``tau_rms``, ``w_max``). ``rms_tau`` (s; None: ``rule.tau_rms``) and ``rms_bias_correction``
    are RMSprop's own options (the run options of the same names); another optimiser given
    one of them is an error naming it."""
    cls = get_optimizer(name)
    if cls is not RMSprop:
        for key, value in (("rms_tau", rms_tau), ("rms_bias_correction", rms_bias_correction)):
            if value not in (None, False):
                raise ConfigError(key, f"is an option of the rmsprop optimizer; optimizer is {name!r}")
        return cls(rule.update_interval, rule.tau_rms, epsilon, rule.w_max)
    if rms_tau is not None and not (isinstance(rms_tau, (int, float)) and math.isfinite(rms_tau) and rms_tau > 0):
        raise ConfigError("rms_tau", f"must be a positive number of seconds, got {rms_tau!r}")
    tau = rule.tau_rms if rms_tau is None else rms_tau
    return RMSprop(rule.update_interval, tau, epsilon, rule.w_max, bias_correction=rms_bias_correction)


def get_optimizer(name: str) -> type[Optimizer]:
    """The optimiser class registered under ``name``."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ConfigError("optimizer", f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
