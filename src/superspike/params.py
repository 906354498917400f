"""Model constants: the neuron (MODEL.md 1) and the rule (MODEL.md 2), each defined once, in SI units.

Durations are seconds, potentials volts, weights volts (a weight is the jump of the synaptic
current, which enters the membrane equation directly; MODEL.md 1). Conversion of a duration to
time steps is :func:`steps`, the reference's ``floor(x / dt)`` in float64 (MODEL.md 6.2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, overload

import numpy as np

from superspike.errors import ConfigError


@overload
def steps(seconds: float, dt: float, tolerance: float = 0.0) -> int: ...
@overload
def steps(seconds: np.ndarray, dt: float, tolerance: float = 0.0) -> np.ndarray: ...
def steps(seconds: float | np.ndarray, dt: float, tolerance: float = 0.0) -> int | np.ndarray:
    """Time step of a time, or whole steps in a duration: ``floor(seconds / dt)`` in float64 (MODEL.md 6.2).

    This is the reference's conversion, used for every duration and spike time; 1.89 s at
    dt = 0.1 ms gives 18899 steps, 0.8 ms gives 8. A number gives an int, an array an int64
    array. ``tolerance`` > 0 (in steps) first snaps a quotient that lies that close to a whole
    number onto it: for durations read back from a file, where 1.5 s may come back as 14999.99..
    steps (not for anything the reference converts itself).
    """
    if isinstance(seconds, np.ndarray):
        x = np.asarray(seconds, np.float64) / float(dt)
        if tolerance > 0:
            near = np.abs(x - np.round(x)) < tolerance
            x = np.where(near, np.round(x), x)
        return np.floor(x).astype(np.int64)
    x = float(seconds) / float(dt)
    if tolerance > 0 and abs(x - round(x)) < tolerance:
        return round(x)
    return math.floor(x)


@dataclass(frozen=True)
class NeuronParams:
    """Current-based LIF neuron (MODEL.md 1). All times in s, potentials in V."""

    dt: float = 1e-4  #: time step, s
    u_rest: float = -60e-3  #: resting and reset potential, V
    threshold: float = -50e-3  #: firing threshold, V (the test is strict: U > threshold)
    tau_mem: float = 10e-3  #: membrane time constant, s
    tau_syn: float = 5e-3  #: synaptic current time constant, s
    refractory: float = 5e-3  #: absolute refractory period, s (U clamped at u_rest)
    axonal_delay: float = 0.8e-3  #: spike transmission delay, s

    def __post_init__(self) -> None:
        _finite(self, "neuron")
        for name in ("dt", "tau_mem", "tau_syn"):
            _positive(self, name)
        for name in ("tau_mem", "tau_syn"):
            if getattr(self, name) <= self.dt:
                raise ConfigError(f"neuron.{name}", f"must be larger than dt = {self.dt} s")
        for name in ("refractory", "axonal_delay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"neuron.{name}", "must not be negative")
        if self.delay_steps < 1:
            raise ConfigError("neuron.axonal_delay", "must be at least one time step")
        if self.threshold <= self.u_rest:
            raise ConfigError("neuron.threshold", "must be above u_rest")

    @property
    def delay_steps(self) -> int:
        """Axonal delay in steps (8 by default)."""
        return steps(self.axonal_delay, self.dt)

    @property
    def refractory_steps(self) -> int:
        """Refractory period in steps (50 by default)."""
        return steps(self.refractory, self.dt)


@dataclass(frozen=True)
class RuleParams:
    """The SuperSpike rule (MODEL.md 2). Times in s, potentials in V."""

    tau_rise: float = 5e-3  #: rise of the double-exponential kernel alpha (el, tr_err, z), s
    tau_decay: float = 10e-3  #: decay of alpha (el_flt, tr_err_flt, z~), s
    beta: float = 1e3  #: surrogate steepness, 1/V (1/mV)
    u_cutoff: float = -80e-3  #: sigma'(U) = 0 below this potential, V (reference cut-off)
    psp_cutoff: float | None = None  #: skip pres with z~ <= this (None: 1e-7, 1e-5 for random/uniform)
    error_cutoff: float = 1e-7  #: skip posts with |tr_err_flt| below this
    update_interval: float = 0.5  #: t_b, time between weight updates, s
    tau_rms: float = 30.0  #: time constant of the RMaxProp/RMSprop second moment, s
    w_max: float = 0.1  #: weights are clipped to [-w_max, w_max], V
    tau_cost: float = 10.0  #: time constant of the squared-error average (MODEL.md 2.9), s

    def __post_init__(self) -> None:
        _finite(self, "rule")
        for name in ("tau_rise", "tau_decay", "beta", "update_interval", "tau_rms", "w_max", "tau_cost"):
            _positive(self, name, table="rule")
        if self.tau_rise >= self.tau_decay:  # the kernel's peak a*b/(a-b) needs a < b (MODEL.md 2.9)
            raise ConfigError("rule.tau_rise", f"must be smaller than rule.tau_decay = {self.tau_decay} s")
        if self.psp_cutoff is not None and self.psp_cutoff < 0:
            raise ConfigError("rule.psp_cutoff", "must not be negative")
        if self.error_cutoff < 0:
            raise ConfigError("rule.error_cutoff", "must not be negative")

    def psp_cutoff_for(self, feedback: str) -> float:
        """The PSP cut-off of step 4b: the reference's random-feedback build uses 1e-5 (MODEL.md 2.6)."""
        if self.psp_cutoff is not None:
            return self.psp_cutoff
        return 1e-5 if feedback in ("random", "uniform") else 1e-7


@dataclass(frozen=True)
class RegularizerParams:
    """Heterosynaptic activity regulariser of hidden layers (MODEL.md 2.8)."""

    strength: float = 1.0  #: rho, dimensionless
    exponent: float = 4.0  #: a, dimensionless
    tau: float = 100e-3  #: tau_het, time constant of the activity trace h, s

    def __post_init__(self) -> None:
        for name, key in (("strength", "reg_strength"), ("exponent", "reg_exponent"), ("tau", "reg_tau")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(key, f"must be a finite number, got {value!r}")
        if self.strength < 0:
            raise ConfigError("reg_strength", "must not be negative")
        if self.exponent < 0:
            raise ConfigError("reg_exponent", "must not be negative")
        _positive(self, "tau", key="reg_tau")


def cost_scale(rule: RuleParams) -> float:
    """K of MODEL.md 2.9: normalises the squared-error average to a mean-square error (1.2e6)."""
    a, b = rule.tau_decay, rule.tau_rise
    peak = a * b / (a - b)
    return 1.0 / (peak**2 * (a / 2 + b / 2 - 2 * a * b / (a + b))) / rule.tau_cost


def params_to_dict(p: Any) -> dict[str, Any]:
    """A parameter dataclass as a plain dict, without unset (None) entries (for TOML)."""
    return {k: v for k, v in asdict(p).items() if v is not None}


def params_from_dict(cls: type, data: dict[str, Any], table: str) -> Any:
    """Build a parameter dataclass from a TOML table, naming unknown keys and wrong types."""
    valid = {f.name: f for f in fields(cls)}
    for key, value in data.items():
        if key not in valid:
            raise ConfigError(f"{table}.{key}", f"unknown key; valid keys: {', '.join(valid)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{table}.{key}", f"must be a number, got {value!r}")
    return cls(**{k: float(v) for k, v in data.items()})


def _finite(obj: Any, table: str) -> None:
    """Every set field is a finite real number (NaN passes every comparison, so check first)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{table}.{f.name}", f"must be a finite number, got {value!r}")


def _positive(obj: Any, name: str, table: str = "neuron", key: str | None = None) -> None:
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(key or f"{table}.{name}", f"must be a positive number, got {value!r}")
